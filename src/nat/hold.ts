// Holding a direct path's NAT mappings while its peer is at rest (docs/nat.md "At rest"). A direct path runs
// through a conntrack entry (or a home router's mapping) on each side; an entry lives as long as packets keep
// refreshing it, and one packet in either direction refreshes both NATs' entries. So one side of the pair (the
// holder) sends one small packet per hold interval, and the interval is the longest one this pair's NATs have
// been seen to survive, never shorter than HOLD.minMs.
//
// How long the NATs keep a quiet mapping is measured, not assumed: while the session's keys are fresh, a hold is
// a sealed path probe that the peer answers. An answer after a silence of S proves the mappings survive S; the
// next hold then waits up to HOLD.growth times longer. No answer (after retries) means the mapping lapsed
// after S: the interval never comes near S again, and the path is recovered at once. With stale keys a hold is
// an unauthenticated STUN Binding Indication (RFC 8445 section 11: ICE's keepalive, 20 bytes, never answered)
// sent at the longest interval already proven. Pure functions: the path manager (paths.ts) acts on them.

export const HOLD = {
  /**
   * Never more often: WireGuard's persistent keepalive and Tailscale's heartbeat use 25 s, below the 30 s that
   * the shortest common UDP timeouts allow (Linux conntrack's unreplied timeout, some home routers).
   */
  minMs: 25_000,
  /** Never less often, whatever was measured: RFC 4787 REQ-5 asks NATs for at least 2 minutes, most give more. */
  maxMs: 600_000,
  /** A measured hold waits this much longer than the longest silence proven so far (25, 37, 56, 84, 127 s, ...). */
  growth: 1.5,
  /** After a lapse at a silence of L, holds stay below this fraction of L. */
  lapseMargin: 0.8,
  /** An unanswered measured hold is sent again after this long (a lost packet is not a lapsed mapping)... */
  retryMs: 1_000,
  /** ...and the mapping counts as lapsed when nothing answered for this long. */
  lapseAfterMs: 3_000,
} as const;

/** What is known about one pair's NAT mappings: the longest silence survived, the shortest that broke them. */
export interface HoldEvidence {
  survivedMs: number;
  /** Infinity until a lapse was seen. */
  lapsedMs: number;
}

export function newHoldEvidence(): HoldEvidence {
  return { survivedMs: 0, lapsedMs: Infinity };
}

/**
 * The silence to leave before the next hold. `measured`: the hold will be answered (a sealed probe), so it may
 * try a longer silence than proven; an unanswered hold (STUN indication) only repeats what is proven.
 */
export function holdInterval(e: HoldEvidence, measured: boolean): number {
  const proven = Math.max(HOLD.minMs, e.survivedMs);
  const ceiling = Math.min(HOLD.maxMs, e.lapsedMs * HOLD.lapseMargin);
  const want = measured ? proven * HOLD.growth : proven;
  return Math.max(HOLD.minMs, Math.min(want, ceiling));
}

/** A hold answered after this much silence. */
export function survived(e: HoldEvidence, silenceMs: number): HoldEvidence {
  return { survivedMs: Math.max(e.survivedMs, silenceMs), lapsedMs: e.lapsedMs };
}

/** A hold after this much silence found the mapping gone. */
export function lapsed(e: HoldEvidence, silenceMs: number): HoldEvidence {
  const lapsedMs = Math.min(e.lapsedMs, silenceMs);
  return { survivedMs: Math.min(e.survivedMs, lapsedMs * HOLD.lapseMargin), lapsedMs };
}

/** One side of a pair as the hold decision sees it: its name and whether it sits behind no NAT at all. */
export interface HoldSide {
  name: string;
  /** True when STUN saw the side's own interface address and port (nothing to hold on its side); undefined: not known. */
  noNat?: boolean;
}

/**
 * Which side of a pair holds. A side with no NAT has no mapping to keep: it never holds, and two such sides
 * hold nothing at all. A NAT side whose peer has none holds alone. Two NAT sides (or an unknown one): the name
 * that sorts first, known to both without a message; either side's packets refresh both NATs' entries, so it
 * does not matter which NAT is the stricter one. Each side learns the other's noNat from its path probes.
 */
export function isHolder(self: HoldSide, peer: HoldSide): boolean {
  if (self.noNat) return false;
  if (peer.noNat) return true;
  return self.name < peer.name;
}
