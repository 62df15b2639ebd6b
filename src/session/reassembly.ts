// Reassembly of handshake messages split into fragments (src/wire/handshake-frame.ts), with bounded memory:
// a fixed number of messages in progress (all together and per source address), a byte budget, and a
// deadline. A fragment is buffered only after the device authenticated what it can of it (mac1 and, under
// load, mac2 for INIT; a receiver index naming a handshake of ours for RESP and FINAL), so a stranger
// cannot make a node hold anything; the bounds limit what a mesh member can. The oldest message in
// progress gives way to a new one; fragments that contradict a message in progress are ignored.
import {
  REASSEMBLY_MAX_BYTES, REASSEMBLY_MAX_MESSAGES, REASSEMBLY_MAX_PER_SOURCE, REASSEMBLY_TIMEOUT_MS,
} from "./crypto-adapter.js";

interface Partial {
  source: string;
  count: number;
  parts: (Buffer | undefined)[];
  have: number;
  bytes: number;
  startedAt: number;
}

export interface ReassemblyLimits {
  maxMessages: number;
  maxPerSource: number;
  maxBytes: number;
  timeoutMs: number;
}

export const DEFAULT_REASSEMBLY_LIMITS: ReassemblyLimits = {
  maxMessages: REASSEMBLY_MAX_MESSAGES, maxPerSource: REASSEMBLY_MAX_PER_SOURCE, maxBytes: REASSEMBLY_MAX_BYTES, timeoutMs: REASSEMBLY_TIMEOUT_MS,
};

/** What became of a fragment: the whole message, "pending" (kept), or why it was not kept. */
export type ReassemblyResult = Uint8Array | "pending" | "duplicate" | "mismatch";

export class Reassembler {
  /** Messages in progress, oldest first (Map keeps insertion order). */
  private readonly partials = new Map<string, Partial>();
  private bytes = 0;
  constructor(
    private readonly limits: ReassemblyLimits = DEFAULT_REASSEMBLY_LIMITS,
    /** A message in progress was given up: evicted for a newer one, or its deadline passed. */
    private readonly onGiveUp: (why: "evicted" | "expired") => void = () => {},
  ) {}

  /**
   * Adds one fragment of the message `key` (which names its type, indexes and source); returns the message
   * once every fragment is there. The chunk is copied.
   */
  add(key: string, source: string, index: number, count: number, chunk: Uint8Array, now: number): ReassemblyResult {
    this.expire(now);
    let p = this.partials.get(key);
    if (p && p.count !== count) return "mismatch";
    if (p?.parts[index]) return "duplicate";
    this.makeRoom(source, chunk.length, p ? key : undefined);
    if (!p) {
      p = { source, count, parts: new Array(count), have: 0, bytes: 0, startedAt: now };
      this.partials.set(key, p);
    }
    p.parts[index] = Buffer.from(chunk);
    p.have++;
    p.bytes += chunk.length;
    this.bytes += chunk.length;
    if (p.have < p.count) return "pending";
    this.remove(key, p);
    return Buffer.concat(p.parts as Buffer[]);
  }

  /** Forgets messages older than the deadline. */
  expire(now: number): void {
    for (const [key, p] of this.partials) {
      if (now - p.startedAt < this.limits.timeoutMs) break;
      this.remove(key, p);
      this.onGiveUp("expired");
    }
  }

  get size(): number {
    return this.partials.size;
  }

  get bufferedBytes(): number {
    return this.bytes;
  }

  /** Room for `more` bytes (and, for a new message, for one more message from `source`): the oldest give way. */
  private makeRoom(source: string, more: number, keep?: string): void {
    if (keep === undefined) {
      const mine = [...this.partials.keys()].filter((k) => this.partials.get(k)!.source === source);
      if (mine.length >= this.limits.maxPerSource) this.evict(mine[0]);
      while (this.partials.size >= this.limits.maxMessages) this.evict(this.partials.keys().next().value!);
    }
    for (const key of this.partials.keys()) {
      if (this.bytes + more <= this.limits.maxBytes) break;
      if (key !== keep) this.evict(key);
    }
  }

  private evict(key: string): void {
    const p = this.partials.get(key);
    if (!p) return;
    this.remove(key, p);
    this.onGiveUp("evicted");
  }

  private remove(key: string, p: Partial): void {
    this.partials.delete(key);
    this.bytes -= p.bytes;
  }
}
