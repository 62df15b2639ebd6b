// ChaCha20-Poly1305 (RFC 8439) with Noise's nonce: 32 zero bits, then the 64-bit counter little-endian.
// Three backends behind one interface: libsodium through sodium-native (prebuilt N-API addon), node:crypto
// (OpenSSL) and @noble/ciphers (pure JS). The data-plane benchmark (bench/dataplane.ts, figures in
// docs/performance.md) measured libsodium 4-9x faster than node:crypto, whose cost is one OpenSSL context
// per call, and node:crypto faster than noble, so `aead` is the first of them that loads on this machine.
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from "node:crypto";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { TAG_SIZE } from "../wire/constants.js";
import { sodium, type SodiumApi } from "./sodium.js";

const EMPTY = new Uint8Array(0);

/** A key prepared for one backend (node: a KeyObject, or raw bytes for one-shot use; noble: raw bytes). */
export interface AeadBackend {
  readonly name: string;
  prepareKey(key: Uint8Array): unknown;
  /** Writes ciphertext || tag into out[outOffset..]; returns the bytes written. */
  sealInto(key: unknown, counter: number, ad: Uint8Array, plaintext: Uint8Array, out: Uint8Array, outOffset: number): number;
  /** Writes the plaintext into out[0..]; returns its length, or -1 when authentication fails. */
  openInto(key: unknown, counter: number, ad: Uint8Array, sealed: Uint8Array, out: Uint8Array): number;
}

/** One shared nonce buffer: JS is single-threaded and every call fills it before use. */
const nonce = Buffer.alloc(12);
function setNonce(counter: number): Buffer {
  nonce.writeUInt32LE(counter >>> 0, 4);
  nonce.writeUInt32LE(Math.floor(counter / 0x100000000) >>> 0, 8);
  return nonce;
}
const nonceBytes = new Uint8Array(nonce.buffer, nonce.byteOffset, 12);

export const nodeAead: AeadBackend = {
  name: "node:crypto",
  prepareKey: (key) => createSecretKey(key),
  sealInto(key, counter, ad, plaintext, out, outOffset) {
    const c = createCipheriv("chacha20-poly1305", key as KeyObject | Uint8Array, setNonce(counter), { authTagLength: TAG_SIZE });
    if (ad.length) c.setAAD(ad, { plaintextLength: plaintext.length });
    const body = c.update(plaintext);
    c.final();
    out.set(body, outOffset);
    out.set(c.getAuthTag(), outOffset + body.length);
    return body.length + TAG_SIZE;
  },
  openInto(key, counter, ad, sealed, out) {
    const len = sealed.length - TAG_SIZE;
    if (len < 0 || out.length < len) return -1;
    const d = createDecipheriv("chacha20-poly1305", key as KeyObject | Uint8Array, setNonce(counter), { authTagLength: TAG_SIZE });
    if (ad.length) d.setAAD(ad, { plaintextLength: len });
    d.setAuthTag(sealed.subarray(len));
    const body = d.update(sealed.subarray(0, len));
    try {
      d.final(); // throws when the tag does not verify; nothing is written to out then
    } catch {
      return -1;
    }
    out.set(body, 0);
    return len;
  },
};

export const nobleAead: AeadBackend = {
  name: "@noble/ciphers",
  prepareKey: (key) => Uint8Array.from(key),
  sealInto(key, counter, ad, plaintext, out, outOffset) {
    setNonce(counter);
    const n = plaintext.length + TAG_SIZE;
    chacha20poly1305(key as Uint8Array, nonceBytes, ad.length ? ad : undefined).encrypt(plaintext, out.subarray(outOffset, outOffset + n));
    return n;
  },
  openInto(key, counter, ad, sealed, out) {
    const len = sealed.length - TAG_SIZE;
    if (len < 0 || out.length < len) return -1;
    setNonce(counter);
    try {
      chacha20poly1305(key as Uint8Array, nonceBytes, ad.length ? ad : undefined).decrypt(sealed, out.subarray(0, len));
    } catch {
      return -1;
    }
    return len;
  },
};

function makeSodiumAead(s: SodiumApi): AeadBackend {
  return {
    name: "libsodium (sodium-native)",
    prepareKey: (key) => Uint8Array.from(key),
    sealInto(key, counter, ad, plaintext, out, outOffset) {
      setNonce(counter);
      const n = plaintext.length;
      s.crypto_aead_chacha20poly1305_ietf_encrypt_detached(
        out.subarray(outOffset, outOffset + n), out.subarray(outOffset + n, outOffset + n + TAG_SIZE),
        plaintext, ad.length ? ad : null, null, nonceBytes, key as Uint8Array);
      return n + TAG_SIZE;
    },
    openInto(key, counter, ad, sealed, out) {
      const len = sealed.length - TAG_SIZE;
      if (len < 0 || out.length < len) return -1;
      setNonce(counter);
      try {
        // libsodium checks the tag before decrypting and zeroes out[] when it does not verify
        s.crypto_aead_chacha20poly1305_ietf_decrypt_detached(
          out.subarray(0, len), null, sealed.subarray(0, len), sealed.subarray(len), ad.length ? ad : null, nonceBytes, key as Uint8Array);
      } catch {
        return -1;
      }
      return len;
    },
  };
}

/** libsodium's ChaCha20-Poly1305, or undefined where sodium-native's addon does not load. */
export const sodiumAead: AeadBackend | undefined = sodium ? makeSodiumAead(sodium) : undefined;

const BACKENDS: Record<string, AeadBackend | undefined> = { sodium: sodiumAead, node: nodeAead, noble: nobleAead };

/**
 * The backend the transport and the handshake use: the fastest that loads (bench/dataplane.ts), or the
 * one EMBER_AEAD names (sodium | node | noble) for benchmarks and for comparing backends on a live node.
 */
export const aead: AeadBackend = chooseBackend(process.env.EMBER_AEAD);

function chooseBackend(wanted: string | undefined): AeadBackend {
  if (!wanted) return sodiumAead ?? nodeAead;
  const b = BACKENDS[wanted];
  if (!b) throw new Error(`EMBER_AEAD=${wanted}: expected one of ${Object.keys(BACKENDS).join(", ")}${wanted === "sodium" ? " (sodium-native did not load, or EMBER_SODIUM=off)" : ""}`);
  return b;
}

/**
 * Allocating one-shot helpers for the handshake and tests (not the data path). A handshake key encrypts
 * one or two messages, so it goes to createCipheriv raw instead of through a KeyObject first.
 */
export function seal(key: Uint8Array, counter: number, ad: Uint8Array | undefined, plaintext: Uint8Array): Uint8Array {
  const out = new Uint8Array(plaintext.length + TAG_SIZE);
  aead.sealInto(oneShotKey(key), counter, ad ?? EMPTY, plaintext, out, 0);
  return out;
}

export function open(key: Uint8Array, counter: number, ad: Uint8Array | undefined, sealed: Uint8Array): Uint8Array | undefined {
  if (sealed.length < TAG_SIZE) return undefined;
  const out = new Uint8Array(sealed.length - TAG_SIZE);
  return aead.openInto(oneShotKey(key), counter, ad ?? EMPTY, sealed, out) < 0 ? undefined : out;
}

function oneShotKey(key: Uint8Array): unknown {
  return aead === nodeAead ? key : aead.prepareKey(key);
}
