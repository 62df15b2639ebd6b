// Collects errors and warnings with line numbers from YAML node offsets, capped so a broken 1 MB file
// yields a readable list rather than thousands of lines.
import type { LineCounter, Node as YamlNode } from "yaml";
import { MAX_ISSUES } from "./limits.js";
import type { PolicyIssue } from "./types.js";

export type Where = YamlNode | { line: number; column?: number } | null | undefined;

export class Issues {
  readonly errors: PolicyIssue[] = [];
  readonly warnings: PolicyIssue[] = [];
  private dropped = 0;

  constructor(private readonly lines?: LineCounter) {}

  error(where: Where, message: string): void { this.add(where, message, "error"); }
  warning(where: Where, message: string): void { this.add(where, message, "warning"); }

  get hasErrors(): boolean { return this.errors.length > 0; }

  /** Line and column (1-based) of a YAML node, or line 1 when the node has no position. */
  position(where: Where): { line: number; column?: number } {
    if (!where) return { line: 1 };
    if ("line" in where && typeof where.line === "number") return { line: where.line, column: where.column };
    const offset = (where as YamlNode).range?.[0];
    if (offset === undefined || !this.lines) return { line: 1 };
    const p = this.lines.linePos(offset);
    return { line: Math.max(1, p.line), column: p.col };
  }

  private add(where: Where, message: string, severity: PolicyIssue["severity"]): void {
    const list = severity === "error" ? this.errors : this.warnings;
    if (this.errors.length + this.warnings.length >= MAX_ISSUES) {
      this.dropped++;
      // An error beyond the cap must still make the result fail.
      if (severity === "error" && this.errors.length === 0) this.errors.push({ line: 1, message, severity });
      return;
    }
    const { line, column } = this.position(where);
    list.push(column === undefined ? { line, message, severity } : { line, column, message, severity });
  }

  /** Orders issues by line and appends one saying how many were left out, if any. */
  finish(): void {
    const byLine = (a: PolicyIssue, b: PolicyIssue) => a.line - b.line || (a.column ?? 0) - (b.column ?? 0);
    this.errors.sort(byLine);
    this.warnings.sort(byLine);
    if (this.dropped === 0) return;
    const target = this.errors.length > 0 ? this.errors : this.warnings;
    target.push({ line: target[target.length - 1]?.line ?? 1, message: `${this.dropped} more issue(s) not shown`, severity: target === this.errors ? "error" : "warning" });
  }
}
