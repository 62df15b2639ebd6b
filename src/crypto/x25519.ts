// X25519 on raw 32-byte keys: libsodium (sodium-native) where it loads — no key objects at all, and a
// fixed-base multiplication for new keys (12 us against 42 us) — else node:crypto. There, keys cross into node:crypto as JWK: with
// OpenSSL 3, importing or exporting DER (PKCS#8/SPKI) costs 70-330 us per key against 1-25 us for JWK,
// and that difference decided whether a handshake took 3 ms or a fraction of one (bench/dataplane.ts).
import { createPrivateKey, createPublicKey, diffieHellman, randomFillSync, type KeyObject } from "node:crypto";
import { sodium } from "./sodium.js";

const KEY_SIZE = 32;

function checkSize(raw: Uint8Array, which: "private" | "public"): void {
  if (raw.length !== KEY_SIZE) throw new Error(`X25519 ${which} key must be ${KEY_SIZE} bytes`);
}

/** Parsed private keys by their raw array: generated keys are registered at birth, static keys on first use. */
const privateObjects = new WeakMap<Uint8Array, KeyObject>();

function b64u(raw: Uint8Array): string {
  return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("base64url");
}

function rawFromB64u(s: string | undefined): Uint8Array {
  const raw = new Uint8Array(Buffer.from(s ?? "", "base64url"));
  if (raw.length !== KEY_SIZE) throw new Error("X25519 key export failed");
  return raw;
}

export function privateKeyObject(raw: Uint8Array): KeyObject {
  let k = privateObjects.get(raw);
  if (!k) {
    checkSize(raw, "private");
    // node requires `x` to be a string but builds the key from `d` alone (EVP_PKEY_new_raw_private_key),
    // deriving the public half; the vector tests would catch any change of that behaviour
    k = createPrivateKey({ key: { kty: "OKP", crv: "X25519", d: b64u(raw), x: "" }, format: "jwk" });
    privateObjects.set(raw, k);
  }
  return k;
}

/** A remote key takes part in two DH operations of a handshake: parse it once (keyed by the array object). */
const publicObjects = new WeakMap<Uint8Array, KeyObject>();

export function publicKeyObject(raw: Uint8Array): KeyObject {
  let k = publicObjects.get(raw);
  if (!k) {
    checkSize(raw, "public");
    k = createPublicKey({ key: { kty: "OKP", crv: "X25519", x: b64u(raw) }, format: "jwk" });
    publicObjects.set(raw, k);
  }
  return k;
}

export function publicFromPrivate(raw: Uint8Array): Uint8Array {
  if (sodium) {
    checkSize(raw, "private");
    const pub = new Uint8Array(KEY_SIZE);
    sodium.crypto_scalarmult_base(pub, raw); // clamps the scalar, as X25519 does
    return pub;
  }
  return rawFromB64u(createPublicKey(privateKeyObject(raw)).export({ format: "jwk" }).x);
}

/**
 * A fresh key pair from 32 random bytes (X25519 clamps the scalar itself). Not generateKeyPairSync:
 * on Node 20.20 it deadlocks under load - a garbage collection inside one key generation runs the
 * destructor of an earlier KeyGenJob, which waits for a mutex the running job holds (seen in
 * bench/dataplane.ts after a few thousand handshakes; main thread parked in
 * KeyGenJob::~KeyGenJob <- GlobalHandles::InvokeFirstPassWeakCallbacks).
 */
export function generateX25519(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const priv = new Uint8Array(KEY_SIZE);
  randomFillSync(priv);
  return { privateKey: priv, publicKey: publicFromPrivate(priv) };
}

/**
 * X25519 DH. Throws on a malformed or low-order public key: OpenSSL refuses an all-zero shared secret,
 * which Noise implementations must not use.
 */
export function dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  if (sodium) {
    checkSize(privateKey, "private");
    checkSize(publicKey, "public");
    const shared = new Uint8Array(KEY_SIZE);
    try {
      sodium.crypto_scalarmult(shared, privateKey, publicKey);
    } catch {
      throw new Error("X25519 refused the peer's public key (low order: all-zero shared secret)");
    }
    return shared;
  }
  return new Uint8Array(diffieHellman({ privateKey: privateKeyObject(privateKey), publicKey: publicKeyObject(publicKey) }));
}
