// Local interface addresses: the first direct candidates a node offers its peers.
import { networkInterfaces } from "node:os";
import { isIP } from "node:net";
import { isOverlayAddress } from "../wire/constants.js";

type Interfaces = ReturnType<typeof networkInterfaces>;

/**
 * An IPv6 address a peer elsewhere can send to: global unicast or unique-local (fc00::/7). Never link-local
 * (fe80::/10: it needs a scope id that means nothing on the peer's host), never v4-mapped or multicast.
 */
export function usableIpv6(address: string): boolean {
  const a = address.toLowerCase();
  if (isIP(a) !== 6 || a === "::" || a.startsWith("::ffff:")) return false;
  const first = parseInt(a.split(":")[0] || "0", 16);
  if ((first & 0xffc0) === 0xfe80 || (first & 0xff00) === 0xff00) return false;
  return true;
}

const isLoopback = (a: string) => a.startsWith("127.") || a === "::1";

/** The interface addresses of one family that peers could use (loopback included; overlay and link-local never). */
function familyAddresses(family: 4 | 6, ifaces: Interfaces): string[] {
  const all: string[] = [];
  for (const list of Object.values(ifaces)) {
    for (const a of list ?? []) {
      // Never the TUN device's own overlay address (see isOverlayAddress).
      if (family === 4 && a.family === "IPv4" && !isOverlayAddress(a.address)) all.push(a.address);
      if (family === 6 && a.family === "IPv6" && (usableIpv6(a.address) || a.address === "::1")) all.push(a.address);
    }
  }
  return all;
}

/**
 * The addresses of this host's interfaces for one family. A daemon bound to one address offers only that one;
 * one bound to all offers every non-loopback address of the family, and loopback only when the host has no
 * other address in either family (single-host meshes). An IPv4-only host offered [::1] to its peers, and an
 * IPv6-only one 127.0.0.1: addresses that lead each peer to itself.
 */
export function localAddresses(bindHost: string, family: 4 | 6 = 4, ifaces: Interfaces = networkInterfaces()): string[] {
  if (bindHost !== "0.0.0.0" && bindHost !== "::") return [bindHost];
  const all = familyAddresses(family, ifaces);
  const external = all.filter((a) => !isLoopback(a));
  if (external.length) return external;
  const other = familyAddresses(family === 4 ? 6 : 4, ifaces);
  return other.some((a) => !isLoopback(a)) ? [] : all;
}

/** Whether the host has an address of this family beside loopback: without one, nothing of that family can be sent. */
export function hasRoutableAddress(family: 4 | 6, ifaces: Interfaces = networkInterfaces()): boolean {
  return familyAddresses(family, ifaces).some((a) => !isLoopback(a));
}
