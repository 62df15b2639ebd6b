// The lab's emulated links, named in one place (issue 26). "up" is the site's uplink (router -> core),
// "down" the downlink (core -> router). Figures from the issue; where it names none (queue sizes, the
// low-orbit rates) the choice and its reason are given here and in docs/networks.md.

/** One direction of a link. */
export interface LinkDirection {
  /** One-way delay; with delayMaxMs, the low end of a base delay re-drawn every delayStepMs. */
  delayMs: number;
  delayMaxMs?: number;
  delayStepMs?: number;
  /** Each frame's delay varies uniformly by +- jitterMs (order is kept unless `reorder`). */
  jitterMs?: number;
  /** Independent random loss, percent. */
  lossPercent?: number;
  /** Rate limit in kbit/s (absent: unlimited) and its drop-tail queue in bytes. */
  rateKbit?: number;
  queueBytes?: number;
  /** Let jitter reorder frames (off: a frame never overtakes the one ahead, as on most real links). */
  reorder?: boolean;
}

export interface LinkProfile {
  readonly name: string;
  readonly up: LinkDirection;
  readonly down: LinkDirection;
  /** The whole link goes dark for outageMs every outageEveryMs (the first one an interval after start). */
  readonly outageEveryMs?: number;
  readonly outageMs?: number;
}

/** Bytes a queue holds for `ms` at `kbit` per second: link buffers are sized in time at their rate. */
export function queueFor(kbit: number, ms: number): number {
  return Math.round((kbit * 1000 / 8) * (ms / 1000));
}

/**
 * Geostationary satellite: 300 ms each way, 1% loss, 20 Mbit/s down / 5 up. Terminal buffers of 250 ms at
 * the rate (satellite modems buffer deeply; below the 600 ms BDP so a sender that fills it pays in loss).
 */
export const GEO: LinkProfile = {
  name: "geo",
  down: { delayMs: 300, lossPercent: 1, rateKbit: 20_000, queueBytes: queueFor(20_000, 250) },
  up: { delayMs: 300, lossPercent: 1, rateKbit: 5_000, queueBytes: queueFor(5_000, 250) },
};

/**
 * Low-orbit satellite: one-way delay re-drawn between 25 and 50 ms every 15 s (a satellite handover), jitter
 * 10 ms, a 150 ms outage every 15 s. Rates (the issue names none): 50 Mbit/s down, 10 up, typical of
 * consumer low-orbit service; 100 ms buffers.
 */
export const LEO: LinkProfile = {
  name: "leo",
  down: { delayMs: 25, delayMaxMs: 50, delayStepMs: 15_000, jitterMs: 10, rateKbit: 50_000, queueBytes: queueFor(50_000, 100) },
  up: { delayMs: 25, delayMaxMs: 50, delayStepMs: 15_000, jitterMs: 10, rateKbit: 10_000, queueBytes: queueFor(10_000, 100) },
  outageEveryMs: 15_000,
  outageMs: 150,
};

/** Cellular: 60 ms +- 30 ms jitter, 0.5% loss, 10 Mbit/s up, 30 down; 200 ms buffers (radio bearers buffer). */
export const CELLULAR: LinkProfile = {
  name: "cellular",
  down: { delayMs: 60, jitterMs: 30, lossPercent: 0.5, rateKbit: 30_000, queueBytes: queueFor(30_000, 200) },
  up: { delayMs: 60, jitterMs: 30, lossPercent: 0.5, rateKbit: 10_000, queueBytes: queueFor(10_000, 200) },
};

export const LINK_PROFILES: Readonly<Record<string, LinkProfile>> = { geo: GEO, leo: LEO, cellular: CELLULAR };

/** The emulator's direction spec (`--ab`/`--ba` KEY=VAL,...). */
export function directionSpec(d: LinkDirection): string {
  const kv: [string, number | undefined][] = [
    ["delay", d.delayMs], ["delaymax", d.delayMaxMs], ["delaystep", d.delayStepMs], ["jitter", d.jitterMs],
    ["loss", d.lossPercent], ["rate", d.rateKbit], ["queue", d.queueBytes], ["reorder", d.reorder ? 1 : undefined],
  ];
  for (const [k, v] of kv) {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new Error(`link profile: ${k} must be a non-negative number, got ${v}`);
  }
  if (d.lossPercent !== undefined && d.lossPercent > 100) throw new Error(`link profile: loss is a percentage 0..100, got ${d.lossPercent}`);
  if (d.delayMaxMs !== undefined && d.delayMaxMs < d.delayMs) throw new Error(`link profile: delayMaxMs ${d.delayMaxMs} is below delayMs ${d.delayMs}`);
  return kv.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`).join(",");
}
