// The day-in-the-life schedule: independent actors, each using the mesh at random moments separated by random
// rests, as people do (a laptop reaching a dashboard now and then). Rests are drawn from buckets that straddle
// every rest threshold of a node (25 s+ NAT holds, 45 s session rest, 60 s stream idle, 120 s+ rekey), so a
// run of a few minutes meets each of them several times. Pure scheduling and bookkeeping; the uses are the
// test's.

/** Rest buckets in seconds: [low, high). Each is equally likely (short rests twice: people come back soon, too). */
export const REST_BUCKETS_S: readonly [number, number][] = [[0, 5], [0, 5], [5, 30], [30, 50], [50, 75], [75, 150]];
/** Every actor's second rest is one of these, so each actor rests past the longest threshold at least once. */
export const LONG_REST_S: readonly [number, number] = [121, 150];

/** The thresholds a run must have rested past (seconds), with what each one is. */
export const THRESHOLDS_S: readonly { s: number; what: string }[] = [
  { s: 25, what: "NAT hold" },
  { s: 45, what: "session rest" },
  { s: 60, what: "stream idle" },
  { s: 120, what: "rekey after time" },
];

export interface Use {
  actor: string;
  /** Which two parties this use joins; rests are measured per pair too (another actor may have used it). */
  pair: string;
  atS: number;
  restS: number;
  pairRestS: number;
  ms: number;
  ok: boolean;
  detail: string;
}

export interface Actor {
  name: string;
  pair: string;
  /** One use, one try: resolves with a short detail on success, throws on failure. */
  use(): Promise<string>;
}

/** A small seeded PRNG (mulberry32): a failing run can be replayed with its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pickRestS(rand: () => number): number {
  const [lo, hi] = REST_BUCKETS_S[Math.floor(rand() * REST_BUCKETS_S.length)];
  return lo + rand() * (hi - lo);
}

/**
 * Runs every actor until durationS has passed: rest, use, record, again. A use that does not fit before the end
 * is not started. Every use is bounded by its own timeout (the actor's), so the run is bounded too.
 */
export async function runDay(actors: Actor[], durationS: number, seed: number, onUse?: (u: Use) => void): Promise<Use[]> {
  const t0 = Date.now();
  const end = t0 + durationS * 1000;
  const uses: Use[] = [];
  const pairLast = new Map<string, number>();
  await Promise.all(actors.map(async (actor, i) => {
    const rand = prng(seed * 1000 + i);
    let last = t0;
    // The first use comes within the first few seconds, so every actor starts from a fresh mesh once.
    let rest = rand() * 5;
    for (;;) {
      if (Date.now() + rest * 1000 >= end) break;
      await new Promise((r) => setTimeout(r, rest * 1000));
      const start = Date.now();
      const restS = (start - last) / 1000;
      const pairRestS = (start - (pairLast.get(actor.pair) ?? t0)) / 1000;
      pairLast.set(actor.pair, start);
      let ok = true;
      let detail: string;
      try {
        detail = await actor.use();
      } catch (err) {
        ok = false;
        detail = (err as Error).message.split("\n")[0].slice(0, 160);
      }
      last = Date.now();
      pairLast.set(actor.pair, last);
      const u: Use = { actor: actor.name, pair: actor.pair, atS: (start - t0) / 1000, restS, pairRestS, ms: last - start, ok, detail };
      uses.push(u);
      onUse?.(u);
      rest = uses.filter((x) => x.actor === actor.name).length === 1 ? LONG_REST_S[0] + rand() * (LONG_REST_S[1] - LONG_REST_S[0]) : pickRestS(rand);
    }
  }));
  return uses.sort((a, b) => a.atS - b.atS);
}

/** The table of uses, and a summary per actor and per threshold. */
export function renderDay(uses: Use[]): string {
  const rows = uses.map((u) =>
    `${u.atS.toFixed(1).padStart(7)}  ${u.actor.padEnd(16)} rest ${u.restS.toFixed(1).padStart(6)} s  pair rest ${u.pairRestS.toFixed(1).padStart(6)} s  ` +
    `${String(u.ms).padStart(6)} ms  ${u.ok ? "ok  " : "FAIL"}  ${u.detail}`);
  const actors = [...new Set(uses.map((u) => u.actor))].map((a) => {
    const mine = uses.filter((u) => u.actor === a);
    const ms = mine.map((u) => u.ms).sort((x, y) => x - y);
    const p = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))];
    return `  ${a.padEnd(16)} ${String(mine.length).padStart(4)} uses  ${mine.filter((u) => !u.ok).length} failed  ` +
      `latency median ${p(0.5)} ms, max ${ms[ms.length - 1]} ms  longest rest ${Math.max(...mine.map((u) => u.pairRestS)).toFixed(0)} s`;
  });
  const past = THRESHOLDS_S.map((t) => `  after a rest past ${t.s} s (${t.what}): ${restedPast(uses, t.s).length} uses, ` +
    `${restedPast(uses, t.s).filter((u) => !u.ok).length} failed`);
  return [" at (s)  actor", ...rows, "per actor:", ...actors, "per threshold (pair rest):", ...past].join("\n");
}

export function restedPast(uses: Use[], s: number): Use[] {
  return uses.filter((u) => u.pairRestS > s);
}
