// Output helpers shared by every verb: one JSON document with --json, aligned text otherwise.
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 2) { super(message); }
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v), 2) + "\n");
}

export function printFields(rows: [string, string | number | undefined][]): void {
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) if (v !== undefined) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
}

export function printTable(header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  for (const r of cells) process.stdout.write(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join("  ") + "\n");
}

export function humanDuration(ms: number): string {
  const neg = ms < 0;
  let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const parts = d ? [`${d}d`, `${h}h`] : h ? [`${h}h`, `${m}m`] : m ? [`${m}m`, `${s}s`] : [`${s}s`];
  return (neg ? "-" : "") + parts.join("");
}

export function splitList(v: string | undefined): string[] {
  return (v ?? "").split(",").map((x) => x.trim()).filter(Boolean);
}
