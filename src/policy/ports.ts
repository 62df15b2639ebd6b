// Port lists: parsing "443" / 443 / "8000-8100", and set operations on flat sorted range lists
// [lo0, hi0, lo1, hi1, ...] where null means every port.

/** One entry of a `ports:` list; a message naming the problem on bad input. */
export function parsePortEntry(v: unknown): [number, number] | { error: string } {
  if (typeof v === "number") return single(v, String(v));
  if (typeof v !== "string") return { error: `port ${JSON.stringify(v) ?? String(v)} is not a number or a "lo-hi" range` };
  const s = v.trim();
  if (/^\d+$/.test(s)) return single(Number(s), s);
  const m = /^(\d+)\s*-\s*(\d+)$/.exec(s);
  if (!m) return { error: `port "${v}" is not a number or a "lo-hi" range` };
  const lo = Number(m[1]), hi = Number(m[2]);
  for (const p of [lo, hi]) if (p < 1 || p > 65535) return { error: `port range "${v}": ${p} is outside 1-65535` };
  if (lo > hi) return { error: `port range "${v}" is reversed (write "${hi}-${lo}")` };
  return [lo, hi];
}

function single(p: number, shown: string): [number, number] | { error: string } {
  if (!Number.isInteger(p)) return { error: `port ${shown} is not an integer` };
  if (p < 1 || p > 65535) return { error: `port ${shown} is outside 1-65535` };
  return [p, p];
}

/** Sorted, merged (adjacent and overlapping ranges joined), flat. */
export function normalizeRanges(ranges: [number, number][]): number[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: number[] = [];
  for (const [lo, hi] of sorted) {
    const n = out.length;
    if (n > 0 && lo <= out[n - 1] + 1) out[n - 1] = Math.max(out[n - 1], hi);
    else out.push(lo, hi);
  }
  return out;
}

export function intersectRanges(a: number[] | null, b: number[] | null): number[] | null {
  if (a === null) return b === null ? null : [...b];
  if (b === null) return [...a];
  const out: number[] = [];
  let i = 0, j = 0;
  while (i < a.length && j < b.length) {
    const lo = Math.max(a[i], b[j]), hi = Math.min(a[i + 1], b[j + 1]);
    if (lo <= hi) out.push(lo, hi);
    if (a[i + 1] < b[j + 1]) i += 2; else j += 2;
  }
  return out;
}

/** True when every port of `inner` is in `outer` (both normalized). */
export function rangesContain(outer: number[] | null, inner: number[] | null): boolean {
  if (outer === null) return true;
  if (inner === null) return outer.length === 2 && outer[0] === 1 && outer[1] === 65535;
  let i = 0;
  for (let j = 0; j < inner.length; j += 2) {
    while (i < outer.length && outer[i + 1] < inner[j]) i += 2;
    if (i >= outer.length || outer[i] > inner[j] || outer[i + 1] < inner[j + 1]) return false;
  }
  return true;
}

/** Binary search over a normalized list: allocation-free, for the per-flow path. */
export function portInRanges(ranges: number[], port: number): boolean {
  let lo = 0, hi = (ranges.length >> 1) - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (port < ranges[2 * mid]) hi = mid - 1;
    else if (port > ranges[2 * mid + 1]) lo = mid + 1;
    else return true;
  }
  return false;
}

export function rangesText(r: number[] | null): string {
  if (r === null) return "all ports";
  const parts: string[] = [];
  for (let i = 0; i < r.length; i += 2) parts.push(r[i] === r[i + 1] ? `${r[i]}` : `${r[i]}-${r[i + 1]}`);
  return parts.join(",");
}
