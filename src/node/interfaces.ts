// Local interface addresses: the first direct candidates a node offers its peers.
import { networkInterfaces } from "node:os";
import { isOverlayAddress } from "../wire/constants.js";

/**
 * IPv4 addresses of this host's interfaces. A daemon bound to one address offers only that one; one bound
 * to all offers every non-loopback address, and loopback only when it has nothing else (single-host meshes).
 */
export function localAddresses(listenHost: string): string[] {
  if (listenHost !== "0.0.0.0" && listenHost !== "::") return [listenHost];
  const all: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    // Never the TUN device's own overlay address (see isOverlayAddress).
    for (const a of list ?? []) if (a.family === "IPv4" && !isOverlayAddress(a.address)) all.push(a.address);
  }
  const external = all.filter((a) => !a.startsWith("127."));
  return external.length ? external : all;
}
