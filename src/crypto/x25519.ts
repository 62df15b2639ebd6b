// X25519 with node:crypto (native) on raw 32-byte keys.
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from "node:crypto";

const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

export function privateKeyObject(raw: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: "der", type: "pkcs8" });
}

export function publicKeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: "der", type: "spki" });
}

export function publicFromPrivate(raw: Uint8Array): Uint8Array {
  const spki = createPublicKey(privateKeyObject(raw)).export({ type: "spki", format: "der" });
  return new Uint8Array(spki.subarray(spki.length - 32));
}

export function generateX25519(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const pk = privateKey.export({ type: "pkcs8", format: "der" });
  const pub = publicKey.export({ type: "spki", format: "der" });
  return { privateKey: new Uint8Array(pk.subarray(pk.length - 32)), publicKey: new Uint8Array(pub.subarray(pub.length - 32)) };
}

/** Static keys take part in every handshake: keep their parsed KeyObjects (a handful per process). */
const staticCache = new Map<string, KeyObject>();
const STATIC_CACHE_MAX = 16;

function cachedPrivate(raw: Uint8Array): KeyObject {
  const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("base64");
  let k = staticCache.get(id);
  if (!k) {
    k = privateKeyObject(raw);
    staticCache.set(id, k);
    if (staticCache.size > STATIC_CACHE_MAX) staticCache.delete(staticCache.keys().next().value!);
  }
  return k;
}

/**
 * X25519 DH. Throws on a malformed or low-order public key: OpenSSL refuses an all-zero shared secret,
 * which Noise implementations must not use. `isStatic` caches the private key's parsed form.
 */
export function dh(privateKey: Uint8Array, publicKey: Uint8Array, isStatic = false): Uint8Array {
  const priv = isStatic ? cachedPrivate(privateKey) : privateKeyObject(privateKey);
  return new Uint8Array(diffieHellman({ privateKey: priv, publicKey: publicKeyObject(publicKey) }));
}
