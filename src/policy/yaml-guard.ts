// A pre-scan of the policy text before the YAML parser sees it. The yaml package handles ordinary input
// well but some tiny hostile shapes cost it seconds or all memory (measured: 600 KB of "? " aborts Node
// with an out-of-memory RegExp failure; 300 KB of "&x " anchors runs for minutes; deep compact nesting
// takes seconds). A policy needs none of these shapes, so they are refused here with a line number.
import { MAX_INDENT, MAX_NESTING } from "./limits.js";

/** Leading block indicators ("- ", "? ", ": ") one line may open: "- allow:" needs one. */
const MAX_COMPACT_INDICATORS = 2;
/** "key: " separators on one line: a flow-style rule has about five. */
const MAX_KEYS_PER_LINE = 64;

export interface GuardIssue { line: number; column: number; message: string }

export function guardYaml(text: string): GuardIssue | undefined {
  let line = 1, col = 0;
  let depth = 0;
  let quote = 0; // 0, '"' or "'" as char codes; quoted scalars may span lines
  let atLineStart = true, leading = 0, keys = 0;
  let prev = 10;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    col++;
    if (c === 10) { line++; col = 0; atLineStart = true; leading = 0; keys = 0; prev = c; continue; }
    if (quote !== 0) {
      if (quote === 34 && c === 92) { i++; col++; continue; } // backslash escape in "..."
      if (c === quote) quote = 0;
      prev = c;
      continue;
    }
    if (atLineStart && c === 32) {
      if (col > MAX_INDENT) return { line, column: col, message: `indentation deeper than ${MAX_INDENT} columns` };
      prev = c;
      continue;
    }
    const tokenStart = prev === 10 || prev === 32 || prev === 9 || prev === 13 || (depth > 0 && (prev === 91 || prev === 123 || prev === 44));
    const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 10;
    const nextIsSpace = next === 32 || next === 10 || next === 9 || next === 13;
    if (tokenStart) {
      if (c === 35) { // comment: skip to end of line
        while (i + 1 < text.length && text.charCodeAt(i + 1) !== 10) i++;
        continue;
      }
      if ((c === 45 || c === 63 || c === 58) && nextIsSpace) { // "- ", "? ", ": "
        if (atLineStart && ++leading > MAX_COMPACT_INDICATORS) return { line, column: col, message: "too many block indicators on one line (nested collections like \"- - -\" are not used in a policy)" };
        prev = c;
        continue;
      }
      if (c === 42 && (nextIsSpace || next === 44 || next === 125 || next === 93)) {
        return { line, column: col, message: `a bare * is YAML alias syntax: quote the selector ("*")` };
      }
      if (c === 64 || c === 96) return { line, column: col, message: `a value starting with ${String.fromCharCode(c)} must be quoted ("@group")` };
      if ((c === 38 || c === 42 || c === 33) && !nextIsSpace) {
        return { line, column: col, message: "YAML anchors (&), aliases (*) and tags (!) are not allowed in a policy" };
      }
      if (c === 34 || c === 39) { quote = c; atLineStart = false; prev = c; continue; }
    }
    atLineStart = false;
    if (c === 91 || c === 123) {
      if (++depth > MAX_NESTING) return { line, column: col, message: `collections nested deeper than ${MAX_NESTING} levels` };
    } else if (c === 93 || c === 125) {
      if (depth > 0) depth--;
    } else if (c === 58 && (nextIsSpace || (depth > 0 && (next === 44 || next === 125 || next === 93)))) {
      if (++keys > MAX_KEYS_PER_LINE) return { line, column: col, message: `more than ${MAX_KEYS_PER_LINE} keys on one line` };
    }
    prev = c;
  }
  return undefined;
}
