// NAT depth by measurement: how many routers stand between this node and the STUN server, found the way
// traceroute does it (STUN Binding requests sent with IP TTL 1, 2, ... from the node's own socket; the lowest
// TTL that gets an answer is the hop count). The low-TTL punch must pass every NAT in front of us (a home NAT
// behind a carrier NAT needs one hop more than a home NAT alone) and die before the peer's NAT (docs/nat.md).
import type { StunClient, StunServerAddress } from "./stun.js";

/** Highest TTL tried: STUN servers further than this count as "far" (the punch TTL is capped anyway). */
export const HOPS_MAX_TTL = 12;
const HOPS_TIMEOUT_MS = 1_000;
/** The punch TTL without a measurement, and its bounds (docs/nat.md: TTL 2 passes one NAT and its first hop). */
export const PUNCH_TTL_DEFAULT = 2;
export const PUNCH_TTL_MIN = 2;
export const PUNCH_TTL_MAX = 4;

/**
 * After the first answer, lower TTLs still have this long, and at least as long again as that answer took: all
 * requests leave together and take the same path, so a lower TTL that reaches the server answers about as fast.
 * The requests that die on the way never answer, and waiting out their timeout held every punch round back by a
 * whole second after start (the lab's dual-stack pair went direct 1.3 s after "up", not 0.3 s).
 */
const HOPS_GRACE_MS = 50;

/** The lowest TTL whose Binding request the server answered, or undefined when none did. */
export function measureHops(stun: Pick<StunClient, "request">, server: StunServerAddress, maxTtl = HOPS_MAX_TTL): Promise<number | undefined> {
  const t0 = performance.now();
  let lowest: number | undefined;
  let pending = maxTtl;
  return new Promise((resolve) => {
    let grace: NodeJS.Timeout | undefined;
    const finish = () => { clearTimeout(grace); resolve(lowest); };
    for (let ttl = 1; ttl <= maxTtl; ttl++) {
      stun.request(server, HOPS_TIMEOUT_MS, { ttl }).then(() => {
        lowest = Math.min(lowest ?? ttl, ttl);
        grace ??= setTimeout(finish, Math.max(HOPS_GRACE_MS, performance.now() - t0));
      }, () => undefined).finally(() => { if (--pending === 0) finish(); });
    }
  });
}

/**
 * The punch TTL for a hop count to the STUN server (pure). A server reached with TTL h sits behind h - 1
 * routers; the STUN server (the relay) is at least one router beyond our last NAT, so h - 1 passes every NAT
 * of ours and expires at the first router beyond them in the lab. Capped: on the internet the server is many
 * hops away, and a TTL that large would reach the peer's NAT; a deeper carrier NAT than the cap is documented.
 */
export function punchTtlFor(hops: number | undefined): number {
  if (hops === undefined) return PUNCH_TTL_DEFAULT;
  return Math.max(PUNCH_TTL_MIN, Math.min(PUNCH_TTL_MAX, hops - 1));
}
