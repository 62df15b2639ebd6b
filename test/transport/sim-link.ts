// A simulated network for stream-layer tests: a virtual clock and a pair of DatagramLinks with delay,
// jitter (reordering), loss, duplication, an MTU that can change mid-transfer, a send buffer whose
// capacity makes send() return false, and an optional bottleneck rate. Everything runs in virtual time,
// so a transfer that would take a minute at 20% loss takes a fraction of a second, and reproduces
// exactly from a seed.
import type { Clock, TimerHandle } from "../../src/transport/clock.js";
import type { DatagramLink } from "../../src/transport/link.js";
import { StreamMux } from "../../src/transport/mux.js";
import type { MuxOptions } from "../../src/transport/options.js";

interface TimerEvent {
  at: number;
  seq: number;
  fn: () => void;
  live: boolean;
}

/** Virtual time: timers fire in order when run() advances the clock. */
export class SimClock implements Clock {
  t = 0;
  private seq = 0;
  private heap: TimerEvent[] = [];
  events = 0;

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const e: TimerEvent = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, live: true };
    this.push(e);
    return e;
  }

  clearTimer(handle: TimerHandle): void {
    (handle as TimerEvent).live = false;
  }

  /** Timers still pending (live). */
  get pending(): number {
    return this.heap.filter((e) => e.live).length;
  }

  /**
   * Runs events in time order until `until()` holds, virtual time passes `maxTimeMs`, or nothing is left.
   * Between instants it yields to the real event loop so node:stream callbacks and microtasks run.
   * Returns true when `until()` held.
   */
  async run(until: () => boolean, maxTimeMs = 600_000, maxEvents = 5_000_000): Promise<boolean> {
    const end = this.t + maxTimeMs;
    let n = 0;
    for (;;) {
      await new Promise<void>((r) => setImmediate(r));
      if (until()) return true;
      const next = this.peek();
      if (!next) {
        // Nothing scheduled: give application code one more turn to produce work.
        await new Promise<void>((r) => setImmediate(r));
        if (until()) return true;
        if (!this.peek()) return false;
        continue;
      }
      if (next.at > end || n > maxEvents) return false;
      this.t = Math.max(this.t, next.at);
      // Everything due at this instant, then let the application react.
      while (this.heap.length && this.heap[0].at <= this.t) {
        const e = this.pop()!;
        if (!e.live) continue;
        e.live = false;
        n++;
        this.events++;
        e.fn();
      }
    }
  }

  /** Advances time with nothing else happening (for idle tests), running due timers on the way. */
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    await this.run(() => false, ms);
    this.t = Math.max(this.t, target);
  }

  private peek(): TimerEvent | undefined {
    while (this.heap.length && !this.heap[0].live) this.pop();
    return this.heap[0];
  }

  private push(e: TimerEvent): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p], h[i])) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }

  private pop(): TimerEvent | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l], h[m])) m = l;
        if (r < h.length && less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}

function less(a: TimerEvent, b: TimerEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

export interface LinkConditions {
  /** One-way delay, ms. */
  delayMs: number;
  /** Extra uniform random delay in [0, jitterMs): reorders packets. */
  jitterMs: number;
  /** Probability a datagram is lost. */
  loss: number;
  /** Probability a datagram is delivered twice. */
  duplicate: number;
  /** Largest payload (link.maxPayload()); may change at any time. */
  mtu: number;
  /** Datagrams the sender's queue holds; send() returns false when full. Infinity: never full. */
  capacity: number;
  /** Bottleneck rate, bytes per ms (Infinity: no serialization delay). */
  rateBytesPerMs: number;
  /** Datagrams the bottleneck queue holds before it drops new ones (a drop-tail router). */
  queueLimit: number;
}

export const DEFAULT_CONDITIONS: LinkConditions = {
  delayMs: 5, jitterMs: 0, loss: 0, duplicate: 0, mtu: 1400, capacity: Infinity, rateBytesPerMs: Infinity, queueLimit: Infinity,
};

/** Deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One direction of the simulated path, seen from the sender as its DatagramLink. */
export class SimLink implements DatagramLink {
  cond: LinkConditions;
  /** Where datagrams arrive (the peer's handleDatagram), and who hears onWritable. */
  deliverTo: ((payload: Uint8Array) => void) | null = null;
  owner: StreamMux | null = null;
  /** Counters for assertions. */
  sent = 0;
  sentBytes = 0;
  lost = 0;
  /** Dropped by the bottleneck queue (congestion), as opposed to random loss. */
  queueDrops = 0;
  duplicated = 0;
  refused = 0;
  delivered = 0;
  /** Largest payload ever offered, and offers above maxPayload() at the time (must stay 0). */
  largestPayload = 0;
  oversize = 0;
  /** Every send's time (for "nothing sent at rest" checks). */
  sendTimes: number[] = [];
  private queued = 0;
  private blocked = false;
  private lastDeparture = 0;

  constructor(private readonly clock: SimClock, cond: Partial<LinkConditions>, private readonly rand: () => number) {
    this.cond = { ...DEFAULT_CONDITIONS, ...cond };
  }

  maxPayload(): number {
    return this.cond.mtu;
  }

  send(payload: Uint8Array): boolean {
    if (payload.length > this.cond.mtu) this.oversize++;
    this.largestPayload = Math.max(this.largestPayload, payload.length);
    if (this.queued >= this.cond.capacity) {
      this.blocked = true;
      this.refused++;
      return false;
    }
    const copy = Uint8Array.from(payload); // the mux reuses its buffer after send() returns
    this.sent++;
    this.sentBytes += payload.length;
    this.sendTimes.push(this.clock.now());
    if (this.queued >= this.cond.queueLimit) {
      this.queueDrops++;
      return true; // sent, as far as the sender can tell; the router dropped it
    }
    this.queued++;
    const now = this.clock.now();
    const serialize = this.cond.rateBytesPerMs === Infinity ? 0 : payload.length / this.cond.rateBytesPerMs;
    const departure = Math.max(now, this.lastDeparture) + serialize;
    this.lastDeparture = departure;
    this.clock.setTimer(() => this.depart(copy), departure - now);
    return true;
  }

  private depart(payload: Uint8Array): void {
    this.queued--;
    if (this.blocked && this.queued <= this.cond.capacity / 2) {
      this.blocked = false;
      this.owner?.onWritable();
    }
    if (this.rand() < this.cond.loss) {
      this.lost++;
      return;
    }
    const copies = this.rand() < this.cond.duplicate ? 2 : 1;
    if (copies === 2) this.duplicated++;
    for (let i = 0; i < copies; i++) {
      const delay = this.cond.delayMs + this.rand() * this.cond.jitterMs;
      this.clock.setTimer(() => {
        this.delivered++;
        this.deliverTo?.(payload);
      }, delay);
    }
  }
}

export interface SimPair {
  clock: SimClock;
  /** a's outgoing link (a -> b) and b's (b -> a). */
  ab: SimLink;
  ba: SimLink;
  a: StreamMux;
  b: StreamMux;
}

/** Two muxes joined by a simulated path (the same conditions both ways unless `back` is given). */
export function simPair(
  cond: Partial<LinkConditions> = {},
  optsA: MuxOptions = {},
  optsB: MuxOptions = {},
  seed = 1,
  back?: Partial<LinkConditions>,
): SimPair {
  const clock = new SimClock();
  const rand = prng(seed);
  const ab = new SimLink(clock, cond, rand);
  const ba = new SimLink(clock, back ?? cond, rand);
  const a = new StreamMux(ab, { clock, ...optsA });
  const b = new StreamMux(ba, { clock, ...optsB });
  ab.owner = a;
  ba.owner = b;
  ab.deliverTo = (p) => b.handleDatagram(p);
  ba.deliverTo = (p) => a.handleDatagram(p);
  return { clock, ab, ba, a, b };
}
