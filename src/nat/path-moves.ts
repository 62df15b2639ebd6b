// Nodes that move (docs/networks.md "Nodes that move"): the path manager's rules for a change of our own network
// and for a peer that moved. Pure functions over one peer's path state; src/nat/paths.ts acts on them.
import { sameEndpoint, type Endpoint } from "../addr/endpoint.js";
import type { Candidate, PeerPaths } from "./path-types.js";

/**
 * An authenticated packet over the relay while our path to the peer is direct: the peer no longer sends on the
 * direct path (it moved, or doubts the path). The direct path is revalidated (a probe now, data over the relay as
 * well, until it answers: one round trip when it works) unless it was heard from within this long, or the last such
 * doubt is younger than the heartbeat (a peer that keeps sending over the relay costs a probe a second, no more).
 * A mover's first packets over the relay are its call-me-maybe and whatever it sends, within milliseconds of its move.
 */
export const RELAY_RX_DOUBT_MS = 100;

/**
 * Our own address, NAT or route changed, or we slept: every NAT mapping our side held is gone or unknown. What our
 * candidates' answers proved no longer holds (the next probe of each is punched first, as for a new peer, so no
 * full-TTL packet of ours reaches the peer's NAT before its own opening packet: docs/nat.md), punch rounds and
 * sprays start over, and nothing waits on an answer to a packet sent from the old address. The peer's
 * candidates stay: it did not move.
 */
export function forgetOwnMappings(s: PeerPaths): void {
  for (const c of s.candidates.values()) {
    c.punchedAt = 0;
    c.lastProbeAt = 0;
    c.lastPongAt = 0;
    c.lastHeardAt = 0;
  }
  s.round = { failed: 0, startedAt: 0, quietUntil: 0, quietSince: 0 };
  s.peerPunchedAt = 0;
  s.lastCallMeMaybeAt = 0;
  s.silentSince = undefined;
  s.sprayQueue = undefined;
  s.hold.pending = undefined;
  s.suspectSince = undefined;
  s.revalidateSince = undefined;
  s.joinUntil = undefined;
}

/**
 * Whether the peer moved to another of its direct addresses (pure): our current direct path is in doubt since
 * `since` (revalidated or suspect) and nothing came from it after that, while the peer's data now comes from
 * another candidate that answered our probe since then. The peer chose that path and it works both ways: the
 * current one is given up at once instead of after the path timeout (WireGuard roams on the first packet).
 */
export function peerRoamed(s: PeerPaths, current: Candidate | undefined, heardAt: (c: Candidate) => number,
  lastData: { at: number; from?: Endpoint }): Candidate | undefined {
  const since = s.revalidateSince ?? s.suspectSince;
  if (since === undefined || !current || heardAt(current) >= since || lastData.at < since || !lastData.from) return undefined;
  for (const c of s.candidates.values()) {
    if (c !== current && c.lastPongAt >= since && sameEndpoint(c.endpoint, lastData.from)) return c;
  }
  return undefined;
}
