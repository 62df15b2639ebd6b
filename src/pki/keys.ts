// Ed25519 key handling: node KeyObjects in the API, WebCrypto keys only where @peculiar/x509 wants them.
import { createPrivateKey, createPublicKey, KeyObject, randomBytes, webcrypto } from "node:crypto";
import { chmodSync, writeFileSync } from "node:fs";
import { ED25519 } from "./x509-provider.js";
import { FILE_MODE_PRIVATE } from "./constants.js";

export interface Ed25519KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/**
 * A fresh key pair from a 32-byte random seed (RFC 8032: the private key is the seed). Not
 * generateKeyPairSync: on Node 20.20 it can deadlock under GC (docs/performance.md, "Found on the way").
 * node builds the key from `d` alone and derives the public half; test/pki checks it against @noble/curves.
 */
export function generateEd25519(): Ed25519KeyPair {
  const seed = randomBytes(32);
  const privateKey = createPrivateKey({ key: { kty: "OKP", crv: "Ed25519", d: seed.toString("base64url"), x: "" }, format: "jwk" });
  seed.fill(0);
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

export function privateKeyFromPem(pem: string, what = "private key"): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new Error(`${what}: not a PEM private key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== "ed25519") throw new Error(`${what}: expected an Ed25519 key, got ${key.asymmetricKeyType}`);
  return key;
}

export function keyPairFromPrivatePem(pem: string, what?: string): Ed25519KeyPair {
  const privateKey = privateKeyFromPem(pem, what);
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

export function privateKeyToPem(key: KeyObject): string {
  return key.export({ type: "pkcs8", format: "pem" }) as string;
}

/** Raw 32-byte Ed25519 public key. */
export function rawPublicKey(key: KeyObject): Uint8Array {
  return new Uint8Array(Buffer.from(key.export({ format: "jwk" }).x!, "base64url"));
}

/** DER head of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (33) }. */
const ED25519_SPKI_HEAD = Buffer.from("302a300506032b6570032100", "hex");

/**
 * The SPKI DER of a public key. Ed25519 keys go through their JWK: node's DER encoder costs ~75 us a call, the JWK
 * ~1 us, and the server takes it once per enrollment and renewal.
 */
export function spkiDer(key: KeyObject): Buffer {
  if (key.asymmetricKeyType !== "ed25519") return key.export({ type: "spki", format: "der" });
  return Buffer.concat([ED25519_SPKI_HEAD, Buffer.from(key.export({ format: "jwk" }).x!, "base64url")]);
}

/** A public key from SPKI DER; an Ed25519 one through its JWK (node's DER decoder costs ~90 us, the JWK ~12 us). */
export function publicKeyFromSpki(der: Uint8Array): KeyObject {
  const bytes = Buffer.from(der);
  if (bytes.length !== ED25519_SPKI_HEAD.length + 32 || !bytes.subarray(0, ED25519_SPKI_HEAD.length).equals(ED25519_SPKI_HEAD)) {
    return createPublicKey({ key: bytes, format: "der", type: "spki" });
  }
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: bytes.subarray(ED25519_SPKI_HEAD.length).toString("base64url") }, format: "jwk" });
}

export async function toWebCryptoPair(pair: Ed25519KeyPair): Promise<CryptoKeyPair> {
  const privateKey = await webcrypto.subtle.importKey(
    "pkcs8", pair.privateKey.export({ type: "pkcs8", format: "der" }), ED25519, true, ["sign"]);
  const publicKey = await toWebCryptoPublic(pair.publicKey);
  return { privateKey, publicKey } as CryptoKeyPair;
}

export async function toWebCryptoPublic(key: KeyObject): Promise<CryptoKey> {
  return (await webcrypto.subtle.importKey(
    "spki", key.export({ type: "spki", format: "der" }), ED25519, true, ["verify"])) as CryptoKey;
}

/** Writes a secret with mode 0600 from the first byte (and fixes the mode if the file pre-existed). */
export function writePrivateFile(path: string, data: string): void {
  writeFileSync(path, data, { mode: FILE_MODE_PRIVATE });
  chmodSync(path, FILE_MODE_PRIVATE);
}
