// The TUN channel's keys. The native addon seals TUN_DATA under keys of its own, derived one-way from the
// session's transport keys: it keeps its own counters, and a counter space is safe only under a key no one
// else counts with. Both ends derive the same pair (my send key is the peer's receive key).
import { blake2s } from "@noble/hashes/blake2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { KEY_SIZE } from "../wire/constants.js";

const LABEL = new TextEncoder().encode("embernet-tun:v1");

/** HMAC-BLAKE2s(transportKey, "embernet-tun:v1"): the TUN key of one direction of a session. */
export function tunKey(transportKey: Uint8Array): Uint8Array {
  if (transportKey.length !== KEY_SIZE) throw new Error(`transport key must be ${KEY_SIZE} bytes, got ${transportKey.length}`);
  return hmac(blake2s, transportKey, LABEL);
}
