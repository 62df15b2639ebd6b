// The path manager's pure rules about punching (src/nat/paths.ts acts on them): when full-TTL probes may follow
// a punch, how long to stay quiet after failed rounds, and why a peer is not on a direct path.
import { endpointKey, type Endpoint } from "../addr/endpoint.js";
import type { NotDirectReason, PathTimers } from "./path-types.js";

/** Ports next to a target's that a sequential allocator may give the peer's next mapping, before random ones. */
const SPRAY_NEIGHBOURS = 16;

/**
 * Why a peer is not on a direct path (pure; ember peers shows it). Our own netcheck knows UDP blocked and an
 * endpoint-dependent mapping; a failed punch round (quiet, then again) means a conntrack clash is suspected;
 * a spray without a hit means the peer's mapping is endpoint-dependent. Policy is the caller's (no session).
 */
export function notDirectReason(f: {
  direct: boolean; session: boolean; candidates: number; sendable?: boolean; failedRounds: number; quiet: boolean; ownMapping?: string; sprayed: boolean;
}): NotDirectReason | undefined {
  if (f.direct) return undefined;
  if (f.ownMapping === "udp-blocked") return "udp blocked";
  if (!f.session) return "no session";
  if (f.candidates === 0) return "no candidates";
  if (f.sendable === false) return "no common address family";
  if (f.ownMapping === "endpoint-dependent" || f.sprayed) return "endpoint-dependent NAT";
  if (f.failedRounds > 0 || f.quiet) return "mapping clash suspected";
  return "no candidate answered";
}

/**
 * Whether full-TTL probes may go to a candidate we punched at punchedAt (pure): the lead has passed, and when a
 * relay carries call-me-maybe, the peer has punched since our round began (its call-me-maybe or acknowledgement
 * arrived), so no full-TTL packet of ours can reach its NAT before its own opening packet left (docs/nat.md).
 */
export function punchDone(punchedAt: number, peerPunchedAt: number, viaRelay: boolean, now: number, t: Pick<PathTimers, "punchLeadMs" | "roundMs">): boolean {
  if (now - punchedAt < t.punchLeadMs) return false;
  return !viaRelay || (peerPunchedAt > 0 && now - peerPunchedAt <= t.roundMs);
}

/** The quiet after `failed` earlier failed rounds (pure): quietMs, doubled per round, capped. */
export function quietFor(failed: number, t: Pick<PathTimers, "quietMs" | "quietMaxMs">): number {
  return Math.min(t.quietMaxMs, t.quietMs * 2 ** Math.min(failed, 8));
}

/**
 * The probes of one spray (pure but for the random ports): for each target, its neighbouring ports first
 * (sequential allocators), then random ones, the budget split evenly, no endpoint twice.
 */
export function sprayQueue(targets: (Endpoint & { kind: "udp" })[], budget: number, random = Math.random): Endpoint[] {
  const queue: Endpoint[] = [];
  const seen = new Set(targets.map(endpointKey));
  const per = Math.max(1, Math.floor(budget / targets.length));
  for (const t of targets) {
    const add = (port: number): void => {
      const ep: Endpoint = { kind: "udp", host: t.host, port };
      if (port > 0 && port < 65536 && !seen.has(endpointKey(ep))) { seen.add(endpointKey(ep)); queue.push(ep); }
    };
    const start = queue.length;
    for (let d = 1; d <= SPRAY_NEIGHBOURS && queue.length - start < per; d++) { add(t.port + d); if (queue.length - start < per) add(t.port - d); }
    for (let tries = 0; queue.length - start < per && tries < per * 4; tries++) add(1024 + Math.floor(random() * (65536 - 1024)));
  }
  return queue;
}
