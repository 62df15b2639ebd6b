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
/**
 * And within this many milliseconds whatever the ratio: one probe's RTT varies by a few ms with the event loop
 * of a busy host, so at LAN RTTs a ratio alone flipped between families on noise (lab: IPv4 won the first round
 * at 2.5 ms against IPv6's later answer, and took the path back 5 s on with 0.6 against a stale 1.5 ms).
 */
export const IPV6_PREFER_SLACK_MS = 5;

/**
 * A path is scored on the lowest of its last RTT_WINDOW round trips (a min filter: queueing and a busy event loop
 * only ever add to an RTT). A candidate that has answered fewer than CONFIRM_SAMPLES probes is unconfirmed: each
 * answer brings the next probe at once (and a tick every CONFIRM_PROBE_MS, should one be lost), and it cannot take
 * a live direct path's place. One sample is no verdict: in the lab IPv6's first reply took 7.8 ms, the next ones
 * 1 ms, and IPv4 held the path for 5 s on its one 2.2 ms sample; with confirmation by the tick alone the two
 * families flipped three times in a second.
 */
export const RTT_WINDOW = 4;
export const CONFIRM_SAMPLES = 3;
export const CONFIRM_PROBE_MS = 250;

/** The samples with a new one (the last RTT_WINDOW kept), and the RTT the path is scored on. */
export function withRttSample(samples: readonly number[] | undefined, rttMs: number): { samples: number[]; rttMs: number } {
  const next = [...(samples ?? []), rttMs].slice(-RTT_WINDOW);
  return { samples: next, rttMs: Math.min(...next) };
}

export interface ScoredPath {
  endpoint: Endpoint;
  rttMs: number;
  /** The path traffic uses now (the hysteresis keeps it). */
  current: boolean;
}

function isIpv6(ep: Endpoint): boolean {
  return ep.kind === "udp" && familyOf(ep.host) === 6;
}

/** Whether an IPv6 path's RTT counts as similar to an IPv4 path's (then IPv6 is preferred). */
function similar(v6RttMs: number, v4RttMs: number): boolean {
  return v6RttMs <= v4RttMs * IPV6_PREFER_WITHIN + IPV6_PREFER_SLACK_MS;
}

/** Whether `candidate` should replace `best` as the chosen direct path. */
export function betterPath(candidate: ScoredPath, best: ScoredPath | undefined): boolean {
  if (!best) return true;
  const c6 = isIpv6(candidate.endpoint);
  const b6 = isIpv6(best.endpoint);
  if (c6 && !b6 && similar(candidate.rttMs, best.rttMs)) return true;
  if (b6 && !c6 && similar(best.rttMs, candidate.rttMs)) return false;
  if (candidate.current) return candidate.rttMs < best.rttMs * KEEP_WITHIN;
  return candidate.rttMs < best.rttMs * SWITCH_FASTER;
}
