// Password attempts (console logins, device logins): a token bucket per key (a username, a source address, a
// device): a burst, then one attempt per refill interval. Bounded memory: past MAX_KEYS the table starts over,
// which at worst gives a burst back to keys seen before.
const MAX_KEYS = 10_000;

export class AttemptLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly burst: number, readonly refillMs: number) {}

  /** Takes one attempt for `key`; false when it has none left now. */
  allow(key: string, now = Date.now()): boolean {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size > MAX_KEYS) this.buckets.clear();
      this.buckets.set(key, (b = { tokens: this.burst, at: now }));
    }
    b.tokens = Math.min(this.burst, b.tokens + (now - b.at) / this.refillMs);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
