// Password attempts (console logins, device logins): token buckets (a burst, then one attempt per refill
// interval), bounded in memory in a way an attacker cannot turn into a reset.
//   - The source's bucket (an address by sourceKey(), or an authenticated device) is checked first: a source
//     that has spent its attempts is refused before anything else is looked up or remembered.
//   - A username's bucket exists only for a user that exists. Names of no user share UNKNOWN_SLOTS buckets
//     by a keyed hash (the key is random per process), so unknown names cost fixed memory and are still
//     held to a rate, as a real user's name is (no enumeration by "is this name limited?").
//   - When a table is full, the least recently used key is forgotten first among those whose bucket is
//     full again (forgetting them changes nothing), else the least recently used one. The table is never
//     emptied: flooding it with new keys gives back at most the attempts of the keys it pushes out, and
//     only after the flood itself has spent one attempt per key.
import { createHmac, randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import { HttpError } from "./http.js";

/** Keys one table holds at most (a key is ~100 bytes): about 1 MB. */
export const MAX_ATTEMPT_KEYS = 10_000;
/** Buckets shared by the names of no user. */
export const UNKNOWN_SLOTS = 1_024;

interface Bucket { tokens: number; at: number }

export class AttemptLimiter {
  /** In least-recently-used order: a key is moved to the end each time it is used. */
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly burst: number, readonly refillMs: number, private readonly maxKeys = MAX_ATTEMPT_KEYS) {}

  get size(): number {
    return this.buckets.size;
  }

  /** Takes one attempt for `key`; false when it has none left now. */
  allow(key: string, now = Date.now()): boolean {
    let b = this.buckets.get(key);
    if (b) this.buckets.delete(key);
    else {
      if (this.buckets.size >= this.maxKeys) this.evictOne(now);
      b = { tokens: this.burst, at: now };
    }
    this.buckets.set(key, b);
    b.tokens = Math.min(this.burst, b.tokens + (now - b.at) / this.refillMs);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private evictOne(now: number): void {
    let oldest: string | undefined;
    for (const [k, b] of this.buckets) {
      oldest ??= k;
      if (b.tokens + (now - b.at) / this.refillMs >= this.burst) return void this.buckets.delete(k);
    }
    if (oldest !== undefined) this.buckets.delete(oldest);
  }
}

/** The password-attempt policy of one login endpoint: per source first, then per username. */
export class PasswordThrottle {
  private readonly sources: AttemptLimiter;
  private readonly users: AttemptLimiter;
  private readonly hashKey = randomBytes(16);

  constructor(burst: number, readonly refillMs: number) {
    this.sources = new AttemptLimiter(burst, refillMs);
    // Keys here are existing users and the shared slots: room for both, so a flood cannot push a user out.
    this.users = new AttemptLimiter(burst, refillMs, MAX_ATTEMPT_KEYS + UNKNOWN_SLOTS);
  }

  /** First: one attempt from `source`; false: refuse it (429) before looking the user up. */
  allowSource(source: string, now = Date.now()): boolean {
    return this.sources.allow(source, now);
  }

  /** Then: one attempt at `username` (`exists`: a user of that name exists); false: refuse it (429). */
  allowUser(username: string, exists: boolean, now = Date.now()): boolean {
    return this.users.allow(exists ? `u:${username}` : `?:${this.slot(username)}`, now);
  }

  /** Keys held, for tests and metrics. */
  get keys(): { sources: number; users: number } {
    return { sources: this.sources.size, users: this.users.size };
  }

  private slot(username: string): number {
    return createHmac("sha256", this.hashKey).update(username).digest().readUInt32BE(0) % UNKNOWN_SLOTS;
  }
}

/** The 429 of a refused attempt, with Retry-After set on the answer: throw it. */
export function tooManyLogins(res: ServerResponse, refillMs: number): HttpError {
  res.setHeader("retry-after", String(Math.ceil(refillMs / 1000)));
  return new HttpError(429, "too_many_logins", "too many login attempts: wait a few seconds");
}
