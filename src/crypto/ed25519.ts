// Raw Ed25519 public keys to node KeyObjects (cached: the same peers handshake again and again).
import { createPublicKey, type KeyObject } from "node:crypto";

const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const cache = new Map<string, KeyObject>();

export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  const k = Buffer.from(raw).toString("hex");
  let key = cache.get(k);
  if (!key) {
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: "der", type: "spki" });
    cache.set(k, key);
    if (cache.size > 4096) cache.delete(cache.keys().next().value!);
  }
  return key;
}
