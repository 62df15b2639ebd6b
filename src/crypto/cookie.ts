// The silent port's MACs and cookies (WireGuard's mac1/mac2/cookie, adapted to certificate identities;
// docs/crypto.md "Silent port and cookies"). Every INIT datagram ends with
//   mac1 = MAC(HASH(LABEL_MAC1 || responder key), datagram up to mac1)
//   mac2 = MAC(cookie, datagram up to mac2)                   (zeros when the initiator holds no cookie)
// where responder key = HASH(LABEL_RESPONDER || SHA-256(root CA certificate) || responder's name): whoever
// sends a valid mac1 knows which node it is talking to and the mesh's root CA, i.e. is a member of the mesh
// (coordinated peers get both from the peer map, static peers from their configuration and bundle). The
// responder checks mac1 before anything else and drops a mismatch without a word. Under load it also wants
// mac2: a cookie = MAC(secret rotated every 2 minutes, source address) proves the initiator receives at its
// address; an INIT without one gets a 64-byte cookie reply, XChaCha20-Poly1305-sealed under a key derived
// from the responder key with the INIT's mac1 as associated data, and no public-key work.
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { sodium } from "./sodium.js";
import {
  COOKIE_NONCE_SIZE, COOKIE_SECRET_ROTATE_MS, HANDSHAKE_UNDER_LOAD_PER_S, LABEL_COOKIE, LABEL_MAC1,
  LABEL_RESPONDER, MAC_SIZE, TAG_SIZE, UNDER_LOAD_HOLD_MS,
} from "../wire/constants.js";
import { encodeCookieReply, initMacs, type ParsedCookieReply } from "../wire/handshake-frame.js";

const te = new TextEncoder();

function hash(...parts: (Uint8Array | string)[]): Uint8Array {
  const h = createHash("sha256");
  for (const p of parts) h.update(typeof p === "string" ? te.encode(p) : p);
  return h.digest();
}

/** Truncated HMAC-SHA-256 (node:crypto, native): WireGuard's keyed BLAKE2s-128 in the role. */
export function mac(key: Uint8Array, data: Uint8Array): Uint8Array {
  return createHmac("sha256", key).update(data).digest().subarray(0, MAC_SIZE);
}

/** What an initiator must know about a responder: the root CA that anchors the mesh (its DER's SHA-256) and the name. */
export function responderKey(rootFingerprint: Uint8Array, name: string): Uint8Array {
  return hash(LABEL_RESPONDER, rootFingerprint, "\0", name);
}

export function mac1Key(responder: Uint8Array): Uint8Array {
  return hash(LABEL_MAC1, responder);
}

export function cookieKey(responder: Uint8Array): Uint8Array {
  return hash(LABEL_COOKIE, responder);
}

/** Writes mac1 (and mac2 from the cookie, or zeros) into the last 32 bytes of an INIT datagram. */
export function writeInitMacs(datagram: Buffer, mac1KeyOfResponder: Uint8Array, cookie?: Uint8Array): void {
  const m1 = datagram.length - 2 * MAC_SIZE;
  datagram.set(mac(mac1KeyOfResponder, datagram.subarray(0, m1)), m1);
  const m2 = datagram.length - MAC_SIZE;
  if (cookie) datagram.set(mac(cookie, datagram.subarray(0, m2)), m2);
  else datagram.fill(0, m2);
}

function equal16(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** XChaCha20-Poly1305: libsodium where the addon loads (a cookie reply per INIT under load), else @noble/ciphers. */
function xseal(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, plain: Uint8Array): Uint8Array {
  if (!sodium) return xchacha20poly1305(key, nonce, ad).encrypt(plain);
  const out = new Uint8Array(plain.length + TAG_SIZE);
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out, plain, ad, null, nonce, key);
  return out;
}

function xopen(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, sealed: Uint8Array): Uint8Array | undefined {
  if (sealed.length < TAG_SIZE) return undefined;
  try {
    if (!sodium) return xchacha20poly1305(key, nonce, ad).decrypt(sealed);
    const out = new Uint8Array(sealed.length - TAG_SIZE);
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, sealed, ad, nonce, key);
    return out;
  } catch {
    return undefined;
  }
}

/** Opens a cookie reply for the INIT whose mac1 was `mac1`; undefined when it does not authenticate. */
export function openCookieReply(reply: ParsedCookieReply & { ok: true }, responder: Uint8Array, mac1: Uint8Array): Uint8Array | undefined {
  return xopen(cookieKey(responder), reply.nonce, mac1, reply.sealedCookie);
}

/**
 * The responder's side: its mac1 keys (one per root CA of its bundle; usually one), the rotating cookie
 * secret and the load meter. Cheap by design: everything here runs before any public-key operation.
 */
export class CookieChecker {
  private mac1Keys: Uint8Array[];
  private cookieKeys: Uint8Array[];
  private secret: Uint8Array = randomBytes(32);
  private secretAt: number;
  private windowStart: number;
  private windowCount = 0;
  private underLoadUntil = 0;

  /** responders: this node's responder key for each root it trusts. */
  constructor(private responders: Uint8Array[], now: number, private readonly underLoadPerS = HANDSHAKE_UNDER_LOAD_PER_S) {
    this.secretAt = now;
    this.windowStart = now;
    this.mac1Keys = responders.map(mac1Key);
    this.cookieKeys = responders.map(cookieKey);
  }

  /** After a certificate rotation or a new bundle. */
  setResponders(responders: Uint8Array[]): void {
    this.responders = responders;
    this.mac1Keys = responders.map(mac1Key);
    this.cookieKeys = responders.map(cookieKey);
  }

  /** This node's responder key number `which` (the claim of an INIT is sealed under it). */
  responderKey(which: number): Uint8Array {
    return this.responders[which];
  }

  /** Which responder key the INIT's mac1 was made with (-1: none, drop it silently). */
  checkMac1(datagram: Uint8Array): number {
    const { mac1 } = initMacs(datagram);
    const body = datagram.subarray(0, datagram.length - 2 * MAC_SIZE);
    for (let i = 0; i < this.mac1Keys.length; i++) if (equal16(mac(this.mac1Keys[i], body), mac1)) return i;
    return -1;
  }

  /** Counts an INIT with a valid mac1 and says whether the node is under load (then mac2 is required). */
  noteInit(now: number): boolean {
    if (now - this.windowStart >= 1_000) {
      this.windowStart = now;
      this.windowCount = 0;
    }
    if (++this.windowCount > this.underLoadPerS) this.underLoadUntil = now + UNDER_LOAD_HOLD_MS;
    return now < this.underLoadUntil;
  }

  underLoad(now: number): boolean {
    return now < this.underLoadUntil;
  }

  private cookieFor(source: string, now: number): Uint8Array {
    if (now - this.secretAt >= COOKIE_SECRET_ROTATE_MS) {
      this.secret = randomBytes(32);
      this.secretAt = now;
    }
    return mac(this.secret, te.encode(source));
  }

  /** Whether mac2 is the MAC of the datagram under the cookie this source would get now. */
  checkMac2(datagram: Uint8Array, source: string, now: number): boolean {
    const { mac2 } = initMacs(datagram);
    return equal16(mac(this.cookieFor(source, now), datagram.subarray(0, datagram.length - MAC_SIZE)), mac2);
  }

  /** The cookie reply for an INIT datagram (mac1 made with responder key `which`) from `source`. */
  reply(datagram: Uint8Array, senderIndex: number, source: string, which: number, now: number): Buffer {
    const nonce = randomBytes(COOKIE_NONCE_SIZE);
    const sealed = xseal(this.cookieKeys[which], nonce, initMacs(datagram).mac1, this.cookieFor(source, now));
    return encodeCookieReply(senderIndex, nonce, sealed);
  }
}
