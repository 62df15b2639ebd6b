// Named counters: every refusal and drop reason of a listener is one key, fixed at construction, so a
// typo is a type error and stats() always shows every reason, zero or not.
export class Counters<K extends string> {
  private readonly values: Record<K, number>;

  constructor(keys: readonly K[]) {
    this.values = Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
  }

  inc(key: K, n = 1): void {
    this.values[key] += n;
  }

  get(key: K): number {
    return this.values[key];
  }

  snapshot(): Record<K, number> {
    return { ...this.values };
  }
}
