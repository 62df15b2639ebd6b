// What counts as "our network changed" (pure; network-watch.ts reads the host and acts): the host's usable
// interface addresses and its default routes, compared between two looks; and a wake-up, told by a timer that
// ran far later than it was due (the process was stopped, or the machine slept). Either way every NAT mapping and
// connection this node held may be gone, and the mesh starts over from the new network (docs/networks.md "Nodes
// that move").
import { networkInterfaces } from "node:os";
import { isOverlayAddress } from "../wire/constants.js";
import { usableIpv6 } from "./interfaces.js";

/** One look at the host's network: sorted entries, so two looks compare entry by entry. */
export interface NetworkSnapshot {
  /** "IFACE ADDRESS" for every address a peer could reach us at (no loopback, link-local or overlay address). */
  addresses: string[];
  /** "default IFACE via GATEWAY" per default route (IPv4 and IPv6): an address is of no use before its route is. */
  routes: string[];
}

export interface NetworkDiff {
  added: string[];
  removed: string[];
}

/**
 * A timer ran this many times its period late at the least before it counts as a wake-up, and never less than
 * WAKE_MIN_LATE_MS: a busy 2-core host stalls the event loop for a second now and then, while the shortest state a
 * pause can spoil (the peer's 3 s path timeout; NAT entries, 30 s and up) takes longer to lapse.
 */
export const WAKE_LATE_FACTOR = 2;
export const WAKE_MIN_LATE_MS = 5_000;

/** A moment on both clocks: the monotonic one stops during a suspend on Linux, the wall clock does not. */
export interface Instant { wallMs: number; monoMs: number }

/**
 * How long the process slept (pure): how much later than `dueAt` the timer ran at `ranAt`, on whichever clock
 * says more; 0 when that is within the allowance for a timer of this period. A wall clock stepped forward (NTP)
 * reads as a wake-up too, which costs one round of re-probing.
 */
export function sleptMs(dueAt: Instant, ranAt: Instant, periodMs: number): number {
  const late = Math.max(ranAt.wallMs - dueAt.wallMs, ranAt.monoMs - dueAt.monoMs);
  return late > Math.max(WAKE_LATE_FACTOR * periodMs, WAKE_MIN_LATE_MS) ? Math.round(late) : 0;
}

/** The addresses entry of a snapshot from an os.networkInterfaces() table (pure). */
export function addressEntries(ifaces: ReturnType<typeof networkInterfaces>): string[] {
  const out: string[] = [];
  for (const [name, list] of Object.entries(ifaces)) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if (a.family === "IPv4" ? isOverlayAddress(a.address) : !usableIpv6(a.address)) continue;
      out.push(`${name} ${a.address}`);
    }
  }
  return out.sort();
}

/** 32 hex digits of /proc/net/ipv6_route as an address (full form, enough to compare). */
function hexV6(h: string): string {
  return (h.match(/.{4}/g) ?? []).join(":");
}

/** A little-endian hex IPv4 address of /proc/net/route as dotted quad. */
function hexV4(h: string): string {
  const n = parseInt(h, 16);
  return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join(".");
}

/**
 * The default routes in the text of /proc/net/route and /proc/net/ipv6_route (pure): IPv4 lines with destination
 * and mask 0; IPv6 lines with destination ::/0, up (flag 1) and not on loopback (the kernel's unreachable entries).
 */
export function defaultRoutes(v4Text: string, v6Text: string): string[] {
  const out: string[] = [];
  for (const line of v4Text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    const up = (parseInt(f[3], 16) & 1) === 1;
    if (f.length >= 8 && f[1] === "00000000" && f[7] === "00000000" && up) out.push(`default ${f[0]} via ${hexV4(f[2])}`);
  }
  for (const line of v6Text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^0{32}$/.test(f[0]) || f[1] !== "00" || f[9] === "lo" || !(parseInt(f[8], 16) & 1)) continue;
    out.push(`default ${f[9]} via ${hexV6(f[4])}`);
  }
  return out.sort();
}

/** What changed between two looks (pure), or undefined when nothing did. */
export function diffNetwork(before: NetworkSnapshot, after: NetworkSnapshot): NetworkDiff | undefined {
  const was = new Set([...before.addresses, ...before.routes]);
  const now = new Set([...after.addresses, ...after.routes]);
  const added = [...now].filter((e) => !was.has(e));
  const removed = [...was].filter((e) => !now.has(e));
  return added.length || removed.length ? { added, removed } : undefined;
}

/**
 * Whether a change took away what our paths ran on (pure): an address or a default route gone, or a default route
 * new (an address back with its route after a link was down, the egress moved). Then every NAT mapping and
 * connection may be dead. An address added alone (a second network joined, a container bridge) leaves every
 * path as it was: it is only reported, as a new candidate.
 */
export function movedAway(diff: NetworkDiff): boolean {
  return diff.removed.length > 0 || diff.added.some((e) => e.startsWith("default "));
}
