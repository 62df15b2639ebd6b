// The node's own traffic, for `ember status`: every datagram of its UDP socket (sessions, STUN, probes, punches,
// holds) and every frame on its relay connections and coordination stream, as totals and as a rate over the
// last minute. Counts are what the daemon hands to (or gets from) the kernel: UDP payloads and relay frames
// before TLS; IP, UDP, TCP and TLS headers and TCP's own acknowledgements are not in them (docs/nat.md "At rest"
// counts those on the interface).
import { repeat, type RestClock } from "../clock/rest-clock.js";

export interface TrafficTotals { txPackets: number; txBytes: number; rxPackets: number; rxBytes: number }

/** Samples kept: one per SAMPLE_MS, enough to span a minute. */
const SAMPLE_MS = 10_000;
const WINDOW_MS = 60_000;

export function addTotals(a: TrafficTotals, b: TrafficTotals): TrafficTotals {
  return { txPackets: a.txPackets + b.txPackets, txBytes: a.txBytes + b.txBytes, rxPackets: a.rxPackets + b.rxPackets, rxBytes: a.rxBytes + b.rxBytes };
}

export const ZERO_TRAFFIC: TrafficTotals = { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 };

export class TrafficMeter {
  private readonly samples: { at: number; t: TrafficTotals }[] = [];
  private stopSampling?: () => void;

  /** clock: the node's rest clock (samples on its beat, with the other periodic work); an interval without. */
  constructor(private readonly read: () => TrafficTotals, private readonly clock?: RestClock, private readonly now: () => number = Date.now) {}

  start(): void {
    this.sample();
    this.stopSampling = repeat(this.clock, SAMPLE_MS, () => this.sample());
  }

  stop(): void {
    this.stopSampling?.();
    this.stopSampling = undefined;
  }

  private sample(): void {
    this.samples.push({ at: this.now(), t: this.read() });
    while (this.samples.length > WINDOW_MS / SAMPLE_MS + 1) this.samples.shift();
  }

  totals(): TrafficTotals {
    return this.read();
  }

  /** The rate over the last minute (over the time since start when that is shorter), scaled to one minute. */
  perMinute(): TrafficTotals & { windowS: number } {
    const now = this.now();
    const t = this.read();
    const from = this.samples.find((s) => now - s.at <= WINDOW_MS + SAMPLE_MS / 2) ?? this.samples[0];
    const span = from ? now - from.at : 0;
    if (!from || span <= 0) return { ...ZERO_TRAFFIC, windowS: 0 };
    const k = WINDOW_MS / span;
    const r = (a: number, b: number) => Math.round((a - b) * k);
    return {
      txPackets: r(t.txPackets, from.t.txPackets), txBytes: r(t.txBytes, from.t.txBytes),
      rxPackets: r(t.rxPackets, from.t.rxPackets), rxBytes: r(t.rxBytes, from.t.rxBytes),
      windowS: Math.round(span / 1000),
    };
  }
}
