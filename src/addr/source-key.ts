// The key a per-source limit counts a client under: its IPv4 address, or the /64 of its IPv6 address (one
// subscriber's prefix: every address of it is one source).
import { isIPv6 } from "node:net";

/** The address a per-source limit counts: an IPv4 address (also IPv4-mapped), or the /64 of an IPv6 one. */
export function sourceKey(address: string | undefined): string {
  if (!address) return "?";
  if (address.startsWith("::ffff:") && address.includes(".")) return address.slice(7);
  if (!isIPv6(address)) return address;
  const [head, tail] = address.split("::");
  const left = head ? head.split(":") : [];
  const right = tail !== undefined && tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, "")).join(":")}::/64`;
}
