// sodium-native (libsodium as a prebuilt N-API addon), loaded when it can be. It is the fast path for the
// transport AEAD and X25519 (figures in docs/performance.md); every caller keeps a node:crypto fallback
// for platforms without a prebuild. EMBER_SODIUM=off forces the fallback (benchmarks, debugging).
import { createRequire } from "node:module";

/** The part of sodium-native's API EmberNet uses (the package ships no type declarations). */
export interface SodiumApi {
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(
    c: Uint8Array, mac: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array): void;
  /** Throws when the tag does not verify (and zeroes m). */
  crypto_aead_chacha20poly1305_ietf_decrypt_detached(
    m: Uint8Array, nsec: null, c: Uint8Array, mac: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array): void;
  /** X25519; throws when the result is all zero (a low-order public key). */
  crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
  crypto_scalarmult_base(q: Uint8Array, n: Uint8Array): void;
  /** XChaCha20-Poly1305 (24-byte nonce), combined mode; both return the output length; decrypt throws on a bad tag. */
  crypto_aead_xchacha20poly1305_ietf_encrypt(c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array): number;
  crypto_aead_xchacha20poly1305_ietf_decrypt(m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array): number;
}

function load(): SodiumApi | undefined {
  if (process.env.EMBER_SODIUM === "off") return undefined;
  try {
    return createRequire(import.meta.url)("sodium-native") as SodiumApi;
  } catch {
    return undefined;
  }
}

/** libsodium, or undefined where sodium-native's addon does not load or EMBER_SODIUM=off. */
export const sodium: SodiumApi | undefined = load();
