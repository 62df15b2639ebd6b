// The coordination server's figures against bare node:https measured in the same run (issue 30): each ratio
// beside its target, and whether the run met it. Pure: bench/coord.ts measures, this judges.

/** Targets of issue 30, as multiples of the floor measured on the same machine in the same run. */
export const COORD_TARGETS = {
  /** Server CPU per enrollment / the floor's per enrollment-shaped connection. */
  enrollCpu: 2,
  /** Server CPU per map stream / the floor's per map-stream-shaped connection. */
  streamCpu: 2,
  /** Server memory per connected node / the floor's per idle mTLS connection after a 40 KB answer. */
  memory: 1.25,
  /** Two replicas: the other replica's CPU applying a foreign enrollment / the enrolling replica's. */
  foreignEnroll: 0.25,
} as const;

export interface CoordFigures {
  serverCpuMsPerEnroll: number;
  serverCpuMsPerStream: number;
  kibPerNode: number;
  /** Two or more replicas only: the other replica's CPU share of an enrollment it did not take. */
  foreignShare?: number;
}

export interface FloorFiguresForRatio {
  enrollCpuMs: number;
  streamCpuMs: number;
  kibPerConnection: number;
}

export interface Ratio { what: string; ratio: number; target: number; met: boolean }

/** Each figure over its floor, judged against its target (at or below it meets it). */
export function coordRatios(f: CoordFigures, floor: FloorFiguresForRatio): Ratio[] {
  const judge = (what: string, ratio: number, target: number): Ratio => ({ what, ratio, target, met: ratio <= target });
  const rows = [
    judge("server CPU per enrollment / floor", f.serverCpuMsPerEnroll / floor.enrollCpuMs, COORD_TARGETS.enrollCpu),
    judge("server CPU per map stream / floor", f.serverCpuMsPerStream / floor.streamCpuMs, COORD_TARGETS.streamCpu),
    judge("server memory per node / floor", f.kibPerNode / floor.kibPerConnection, COORD_TARGETS.memory),
  ];
  if (f.foreignShare !== undefined) {
    rows.push(judge("foreign enrollment / own (CPU)", f.foreignShare, COORD_TARGETS.foreignEnroll));
  }
  return rows;
}

/** One line per ratio: "  server CPU per enrollment / floor  2.21x  target <= 2x  not met". */
export function formatRatios(rows: Ratio[]): string[] {
  const width = Math.max(...rows.map((r) => r.what.length));
  return rows.map((r) => `  ${r.what.padEnd(width)}  ${r.ratio.toFixed(2)}x  target <= ${r.target}x  ${r.met ? "met" : "not met"}`);
}
