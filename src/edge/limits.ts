// Admission of outside connections at the public edge, decided before any TLS work so a flood costs one accept
// and one close per refused connection: a token bucket of new connections per source, a cap on each source's
// concurrent connections, and a global cap on concurrent external connections. A source is what sourceKey()
// makes of the address (an IPv4 address, an IPv6 /64), as on every other listener: a host holds a whole /64,
// so per-address budgets on IPv6 would be no limit at all. Pure: the caller passes the clock and acts on the verdict.
import { sourceKey } from "../addr/source-key.js";

export interface EdgeLimits {
  /** New connections per second per source (IPv4 address, IPv6 /64: the bucket's refill rate). */
  ratePerSource: number;
  /** The bucket's size: a burst a source may open at once. */
  burstPerSource: number;
  /** Concurrent connections per source (IPv4 address, IPv6 /64). */
  concurrentPerSource: number;
  /** Concurrent external connections in all. */
  maxConnections: number;
  /** A connection must finish its TLS handshake (and, with token auth, send its request head) within this. */
  handshakeTimeoutMs: number;
}

/** Sane defaults for a public listener: a browser opens a handful of connections; a scanner is slowed to a trickle. */
export const EDGE_LIMIT_DEFAULTS: EdgeLimits = {
  ratePerSource: 20,
  burstPerSource: 40,
  concurrentPerSource: 64,
  maxConnections: 4_096,
  handshakeTimeoutMs: 10_000,
};

export type Admission = { ok: true } | { ok: false; reason: "rate" | "source_concurrency" | "global_concurrency" };

interface SourceState { tokens: number; at: number; active: number }

/** Sources tracked at most; past it, idle ones are forgotten first, then new sources share one bucket. */
const MAX_SOURCES = 100_000;
const SHARED = "(many sources)";

export class SourceLimiter {
  private readonly sources = new Map<string, SourceState>();
  private active = 0;
  readonly refused = { rate: 0, source_concurrency: 0, global_concurrency: 0 };
  admitted = 0;

  constructor(readonly limits: EdgeLimits) {}

  get connections(): number {
    return this.active;
  }

  /** One new connection from the address `source` at `now` (ms); on ok the caller must release(source) when it closes. */
  admit(source: string, now: number): Admission {
    if (this.active >= this.limits.maxConnections) return this.refuse("global_concurrency");
    const key = this.keyFor(sourceKey(source), now);
    let s = this.sources.get(key);
    if (!s) this.sources.set(key, (s = { tokens: this.limits.burstPerSource, at: now, active: 0 }));
    s.tokens = Math.min(this.limits.burstPerSource, s.tokens + ((now - s.at) / 1000) * this.limits.ratePerSource);
    s.at = now;
    if (s.active >= this.limits.concurrentPerSource) return this.refuse("source_concurrency");
    if (s.tokens < 1) return this.refuse("rate");
    s.tokens -= 1;
    s.active++;
    this.active++;
    this.admitted++;
    return { ok: true };
  }

  release(source: string): void {
    const s = this.sources.get(sourceKey(source)) ?? this.sources.get(SHARED);
    if (!s || s.active === 0) return;
    s.active--;
    this.active--;
  }

  /** Forgets sources with nothing open and a full bucket (nothing to remember); call now and then. */
  prune(now: number): void {
    for (const [k, s] of this.sources) {
      if (s.active === 0 && s.tokens + ((now - s.at) / 1000) * this.limits.ratePerSource >= this.limits.burstPerSource) this.sources.delete(k);
    }
  }

  private keyFor(source: string, now: number): string {
    if (this.sources.has(source) || this.sources.size < MAX_SOURCES) return source;
    this.prune(now);
    return this.sources.size < MAX_SOURCES ? source : SHARED;
  }

  private refuse(reason: "rate" | "source_concurrency" | "global_concurrency"): Admission {
    this.refused[reason]++;
    return { ok: false, reason };
  }
}
