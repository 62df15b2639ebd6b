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

/**
 * The addresses of this host's interfaces for one family. A daemon bound to one address offers only that one;
 * one bound to all offers every non-loopback address of the family, and loopback only when it has nothing
 * else (single-host meshes).
 */
export function localAddresses(bindHost: string, family: 4 | 6 = 4, ifaces: Interfaces = networkInterfaces()): string[] {
  if (bindHost !== "0.0.0.0" && bindHost !== "::") return [bindHost];
  const all: string[] = [];
  for (const list of Object.values(ifaces)) {
    for (const a of list ?? []) {
      // Never the TUN device's own overlay address (see isOverlayAddress).
      if (family === 4 && a.family === "IPv4" && !isOverlayAddress(a.address)) all.push(a.address);
      if (family === 6 && a.family === "IPv6" && (usableIpv6(a.address) || a.address === "::1")) all.push(a.address);
    }
  }
  const external = all.filter((a) => !a.startsWith("127.") && a !== "::1");
  return external.length ? external : all;
}
