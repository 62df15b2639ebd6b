// Overlay IPv4 addresses for TUN mode, chosen by the coordination server: one per identity (tenant + name).
// The first choice is a hash of "tenant/name" into the overlay prefix, so a fresh database (or another replica
// racing the same enrollment) mostly picks the same address; on collision the next free one is taken. The
// store keeps the choice, so it never moves once made (docs/coord.md, "Overlay addresses").
import { createHash } from "node:crypto";
import { OVERLAY_NETWORK, OVERLAY_PREFIX_LENGTH } from "../wire/constants.js";

export const OVERLAY_BASE = ipv4ToInt(OVERLAY_NETWORK);
export const OVERLAY_SIZE = 2 ** (32 - OVERLAY_PREFIX_LENGTH);

export class OverlayPoolExhausted extends Error {}

/**
 * Not x.x.x.0 or x.x.x.255: people read those as network and broadcast addresses, and the prefix's own network
 * (100.64.0.0) and broadcast (100.127.255.255) addresses are among them.
 */
export function usableOverlayAddress(ip: number): boolean {
  const last = ip & 0xff;
  return last !== 0 && last !== 255 && ip >>> 0 >= OVERLAY_BASE && ip >>> 0 < OVERLAY_BASE + OVERLAY_SIZE;
}

/** The hash's first choice for an identity (may be unusable or taken: chooseOverlayAddress walks on). */
export function preferredOverlayAddress(tenant: string, name: string): number {
  const h = createHash("sha256").update(`${tenant}/${name}`).digest();
  return OVERLAY_BASE + (h.readUInt32BE(0) % OVERLAY_SIZE);
}

/** The first usable address from the identity's hash onward (wrapping) that `taken` says is free. */
export function chooseOverlayAddress(tenant: string, name: string, taken: (ip: number) => boolean): number {
  const start = preferredOverlayAddress(tenant, name) - OVERLAY_BASE;
  for (let i = 0; i < OVERLAY_SIZE; i++) {
    const ip = OVERLAY_BASE + ((start + i) % OVERLAY_SIZE);
    if (usableOverlayAddress(ip) && !taken(ip)) return ip;
  }
  throw new OverlayPoolExhausted(`no free overlay address left in ${OVERLAY_NETWORK}/${OVERLAY_PREFIX_LENGTH}`);
}

export function ipv4ToInt(s: string): number {
  const p = s.split(".").map(Number);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

export function intToIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}
