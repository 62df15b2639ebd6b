// A peer's path state as ember peers and ember status show it (pure: the path manager passes what it knows).
import { describeEndpoint } from "../addr/endpoint.js";
import { holdInterval } from "./hold.js";
import type { PeerPaths } from "./path-types.js";
import { notDirectReason } from "./punch-rules.js";

export interface PathFacts {
  idle: boolean;
  /** Our side holds the pair's direct path at rest (hold.ts isHolder). */
  holder: boolean;
  /** The session is fresh enough for a sealed hold (the hold interval then counts as measured). */
  measured: boolean;
  session: boolean;
  /** Some candidate is of a family we have an address in. */
  sendable: boolean;
  mapping?: string;
  pathTimeoutMs: number;
}

export function pathReport(s: PeerPaths, now: number, f: PathFacts) {
  return {
    path: s.path ? (s.path.kind === "relay" ? `relay:${s.path.relay}` : "direct") : "-",
    notDirect: notDirectReason({
      direct: s.path?.kind === "udp", session: f.session, candidates: s.candidates.size, sendable: f.sendable,
      failedRounds: s.round.failed, quiet: now < s.round.quietUntil, ownMapping: f.mapping, sprayed: !!s.spray,
    }),
    round: { failed: s.round.failed, quietS: Math.max(0, Math.round((s.round.quietUntil - now) / 1000)) },
    endpoint: describeEndpoint(s.path),
    sinceMs: s.pathSince === undefined ? undefined : now - s.pathSince,
    activity: f.idle ? "idle" as const : "active" as const,
    revalidating: s.revalidateSince !== undefined,
    candidates: [...s.candidates.values()].map((c) => ({
      endpoint: describeEndpoint(c.endpoint), rttMs: c.rttMs, alive: now - c.lastPongAt <= f.pathTimeoutMs, probes: c.probes, pongs: c.pongs, ...(c.prflx ? { prflx: true } : {}),
    })),
    switches: s.switches,
    wakes: s.wakes,
    hold: {
      holder: f.holder,
      intervalS: Math.round(holdInterval(s.hold.evidence, f.measured) / 1000),
      survivedS: Math.round(s.hold.evidence.survivedMs / 1000),
      lapsedS: Number.isFinite(s.hold.evidence.lapsedMs) ? Math.round(s.hold.evidence.lapsedMs / 1000) : null,
      holds: s.hold.holds, indications: s.hold.indications,
    },
    spray: s.spray ? { attempts: s.spray.attempts, probes: s.spray.probes, hit: s.spray.hit ?? null } : undefined,
  };
}

export type PathReport = ReturnType<typeof pathReport>;
