// A set of half-open byte ranges [start, end), kept sorted and merged in one flat array
// ([s0, e0, s1, e1, ...]). Used for a stream's acknowledged and lost data; it stays small because data is
// mostly acknowledged in order.

export class RangeSet {
  private r: number[] = [];

  get isEmpty(): boolean {
    return this.r.length === 0;
  }

  /** Number of ranges (for tests and bounds). */
  get count(): number {
    return this.r.length / 2;
  }

  get firstStart(): number {
    return this.r.length ? this.r[0] : Infinity;
  }

  get firstEnd(): number {
    return this.r.length ? this.r[1] : Infinity;
  }

  clear(): void {
    this.r.length = 0;
  }

  add(start: number, end: number): void {
    if (end <= start) return;
    const r = this.r;
    // Fast path: appending at or past the end.
    const n = r.length;
    if (n === 0 || start > r[n - 1]) {
      r.push(start, end);
      return;
    }
    if (start >= r[n - 2]) {
      if (end > r[n - 1]) r[n - 1] = end;
      return;
    }
    // General case: find the first range whose end >= start, merge everything that touches [start, end).
    let i = 0;
    while (i < n && r[i + 1] < start) i += 2;
    let j = i;
    let s = start;
    let e = end;
    while (j < n && r[j] <= end) {
      s = Math.min(s, r[j]);
      e = Math.max(e, r[j + 1]);
      j += 2;
    }
    r.splice(i, j - i, s, e);
  }

  remove(start: number, end: number): void {
    if (end <= start || this.r.length === 0) return;
    const r = this.r;
    const out: number[] = [];
    let changed = false;
    for (let i = 0; i < r.length; i += 2) {
      const s = r[i];
      const e = r[i + 1];
      if (e <= start || s >= end) {
        out.push(s, e);
        continue;
      }
      changed = true;
      if (s < start) out.push(s, start);
      if (e > end) out.push(end, e);
    }
    if (changed) this.r = out;
  }

  /** Removes everything below `at`. */
  removeBelow(at: number): void {
    const r = this.r;
    let i = 0;
    while (i < r.length && r[i + 1] <= at) i += 2;
    if (i > 0) r.splice(0, i);
    if (r.length && r[0] < at) r[0] = at;
  }

  /** True when [start, end) is entirely inside the set. */
  covers(start: number, end: number): boolean {
    const r = this.r;
    for (let i = 0; i < r.length; i += 2) if (r[i] <= start && end <= r[i + 1]) return true;
    return false;
  }

  /** Total bytes in the set. */
  get size(): number {
    let n = 0;
    for (let i = 0; i < this.r.length; i += 2) n += this.r[i + 1] - this.r[i];
    return n;
  }

  /** The ranges as [start, end] pairs (tests, logs). */
  toArray(): [number, number][] {
    const out: [number, number][] = [];
    for (let i = 0; i < this.r.length; i += 2) out.push([this.r[i], this.r[i + 1]]);
    return out;
  }
}
