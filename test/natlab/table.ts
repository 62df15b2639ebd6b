// The natlab result table: scenario, expected, observed, time. Rows are added by any check (lab self-checks now,
// EmberNet scenarios later) and printed as aligned plain text.

export interface ResultRow {
  scenario: string;
  expected: string;
  observed: string;
  /** Milliseconds the scenario took (or time to connect), null when not meaningful. */
  ms: number | null;
  ok: boolean;
}

export class ResultTable {
  readonly rows: ResultRow[] = [];

  add(row: ResultRow): ResultRow {
    this.rows.push(row);
    return row;
  }

  get allOk(): boolean {
    return this.rows.every((r) => r.ok);
  }

  render(): string {
    const head = ["", "scenario", "expected", "observed", "time"];
    const body = this.rows.map((r) => [r.ok ? "ok" : "FAIL", r.scenario, r.expected, r.observed, r.ms === null ? "-" : `${r.ms} ms`]);
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
    return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
  }
}
