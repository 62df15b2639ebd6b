// Token buckets for handshake initiations: one overall, one per source endpoint (bounded table).
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(private readonly ratePerS: number, private readonly burst: number, now: number) {
    this.tokens = burst;
    this.last = now;
  }
  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerS);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

const MAX_SOURCES = 8192;

export class HandshakeRateLimiter {
  private readonly global: TokenBucket;
  private readonly sources = new Map<string, TokenBucket>();

  constructor(private readonly cfg: { ratePerS: number; burst: number; perSourceRatePerS: number; perSourceBurst: number }, now: number) {
    this.global = new TokenBucket(cfg.ratePerS, cfg.burst, now);
  }

  allow(source: string, now: number): boolean {
    let b = this.sources.get(source);
    if (!b) {
      if (this.sources.size >= MAX_SOURCES) this.sources.delete(this.sources.keys().next().value!);
      b = new TokenBucket(this.cfg.perSourceRatePerS, this.cfg.perSourceBurst, now);
      this.sources.set(source, b);
    }
    return b.take(now) && this.global.take(now);
  }
}
