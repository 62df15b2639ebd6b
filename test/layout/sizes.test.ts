// Sizes a reader can hold (issue 25): no file of src/ over 600 lines, and no function over 100 lines where the
// node is composed (src/node, the path manager, the session device, the coordination server's modules). A
// function is found by its declaration line and ends at the closing brace at its own indentation: the tree's
// formatting (two-space indents, a closing brace on its own line) is what makes that enough.
import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";

const root = resolve(import.meta.dirname, "../..");
const MAX_FILE_LINES = 600;
const MAX_FUNCTION_LINES = 100;
const KEYWORDS = new Set(["if", "for", "while", "switch", "catch", "return", "await", "new", "typeof", "do", "else"]);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
  });
}

const DECLARATION = /^(\s*)(?:export\s+)?(?:default\s+)?(?:(?:private|public|protected|static|async|readonly|override|get|set)\s+)*(?:function\s*\*?\s*)?([\w#$]+)\s*(?:<[^(]*>)?\s*\(/;

/** Functions and methods of a source text longer than max lines: "name (line N): L lines". */
export function longFunctions(text: string, max: number): string[] {
  const lines = text.split("\n");
  const found: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = DECLARATION.exec(lines[i]);
    if (!m || KEYWORDS.has(m[2])) continue;
    const indent = m[1];
    // The body opens on this line or on the line that ends a wrapped signature, at the same indentation.
    let open = -1;
    for (let j = i; j < Math.min(lines.length, i + 12); j++) {
      if (/\{\s*$/.test(lines[j]) && (j === i || lines[j].startsWith(indent) && !lines[j].startsWith(indent + " "))) { open = j; break; }
      if (j > i && /;\s*$/.test(lines[j])) break;
    }
    if (open < 0 || (open === i && !/\)[^()]*\{\s*$/.test(lines[i]) && !/\(\s*\{\s*$/.test(lines[i]))) continue;
    const close = lines.findIndex((l, k) => k > open && new RegExp(`^${indent}\\}[;,)]*\\s*$`).test(l));
    if (close < 0) continue;
    const length = close - i + 1;
    if (length > max) found.push(`${m[2]} (line ${i + 1}): ${length} lines`);
  }
  return found;
}

const composed = (p: string) => {
  const r = relative(root, p);
  return r.startsWith("src/node/") || r.startsWith("src/coord/") || r === "src/nat/paths.ts" || r === "src/session/device.ts";
};

describe("sizes", () => {
  it(`no file of src/ is over ${MAX_FILE_LINES} lines`, () => {
    const over = sources(join(root, "src"))
      .map((p) => ({ file: relative(root, p), lines: readFileSync(p, "utf8").trimEnd().split("\n").length }))
      .filter((f) => f.lines > MAX_FILE_LINES)
      .map((f) => `${f.file}: ${f.lines} lines`);
    expect(over).toEqual([]);
  });

  it(`no function over ${MAX_FUNCTION_LINES} lines in src/node, src/coord, src/nat/paths.ts, src/session/device.ts`, () => {
    const over = sources(join(root, "src")).filter(composed)
      .flatMap((p) => longFunctions(readFileSync(p, "utf8"), MAX_FUNCTION_LINES).map((f) => `${relative(root, p)}: ${f}`));
    expect(over).toEqual([]);
  });

  it("the function finder sees a method, a wrapped signature and a top-level function, and skips control flow", () => {
    const body = (n: number) => Array.from({ length: n }, (_, k) => `    x${k}();`).join("\n");
    const text = [
      "export function top(a: number): void {", body(3), "}",
      "class C {",
      "  private async method(a: string): Promise<void> {", body(5), "  }",
      "  wrapped(", "    a: string,", "  ): number {", body(2), "    return 1;", "  }",
      "  run(): void {", "    if (x) {", body(1), "    }", "  }",
      "}",
    ].join("\n");
    expect(longFunctions(text, 5)).toEqual(["method (line 7): 7 lines", "wrapped (line 14): 7 lines"]);
    expect(longFunctions(text, 1).map((f) => f.split(" ")[0])).toEqual(["top", "method", "wrapped", "run"]);
  });
});
