// Which of two answering direct paths to a peer is better (pure, as magicsock's betterAddr): the path manager
// asks it for each candidate and acts on the answer elsewhere (paths.ts choose()). Hysteresis numbers are here.
import { familyOf, type Endpoint } from "../addr/endpoint.js";

/**
 * Another path must be at least 20% faster to win (RTTs on one LAN or one region jitter by a few ms), and the
 * current one is kept while within 25% of the best.
 */
export const SWITCH_FASTER = 0.8;
export const KEEP_WITHIN = 1.25;
/**
 * A direct IPv6 path is preferred to an IPv4 one while its RTT is within 10% of it: IPv6 crosses no NAT, so its
 * path holds without keepalives and survives the NAT's restarts (Tailscale prefers IPv6 the same way).
 */
export const IPV6_PREFER_WITHIN = 1.1;

export interface ScoredPath {
  endpoint: Endpoint;
  rttMs: number;
  /** The path traffic uses now (the hysteresis keeps it). */
  current: boolean;
}

function isIpv6(ep: Endpoint): boolean {
  return ep.kind === "udp" && familyOf(ep.host) === 6;
}

/** Whether `candidate` should replace `best` as the chosen direct path. */
export function betterPath(candidate: ScoredPath, best: ScoredPath | undefined): boolean {
  if (!best) return true;
  const c6 = isIpv6(candidate.endpoint);
  const b6 = isIpv6(best.endpoint);
  if (c6 && !b6 && candidate.rttMs <= best.rttMs * IPV6_PREFER_WITHIN) return true;
  if (b6 && !c6 && best.rttMs <= candidate.rttMs * IPV6_PREFER_WITHIN) return false;
  if (candidate.current) return candidate.rttMs < best.rttMs * KEEP_WITHIN;
  return candidate.rttMs < best.rttMs * SWITCH_FASTER;
}
