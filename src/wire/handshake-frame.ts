// Handshake packet framing: type | reserved | fragment index | fragment count | sender index |
// [receiver index] | chunk of the message | [mac1 | mac2: INIT]. Messages longer than one datagram are split
// into full-size fragments (the last one shorter). Parsing checks every length before any crypto runs and
// says why a frame was refused; the INIT message inside (e, claim) and the cookie reply are framed here too.
import {
  COOKIE_NONCE_SIZE, COOKIE_REPLY_SIZE, COOKIE_SIZE, DH_SIZE, HANDSHAKE_INIT_DATAGRAM, HANDSHAKE_INIT_HEADER,
  HANDSHAKE_INIT_TRAILER, HANDSHAKE_MAX_DATAGRAM, HANDSHAKE_MAX_FRAGMENTS, HANDSHAKE_REPLY_HEADER, INIT_CLAIM_LENGTH_SIZE,
  INIT_FRAGMENT_CHUNK, MAC_SIZE, MAX_HANDSHAKE_MESSAGE, MIN_INIT_MESSAGE, PACKET, REPLY_FRAGMENT_CHUNK, TAG_SIZE,
} from "./constants.js";

export type HandshakeType = typeof PACKET.HANDSHAKE_INIT | typeof PACKET.HANDSHAKE_RESP | typeof PACKET.HANDSHAKE_FINAL;

export class FrameError extends Error {}

function headerSize(type: HandshakeType): number {
  return type === PACKET.HANDSHAKE_INIT ? HANDSHAKE_INIT_HEADER : HANDSHAKE_REPLY_HEADER;
}

function chunkSize(type: HandshakeType): number {
  return type === PACKET.HANDSHAKE_INIT ? INIT_FRAGMENT_CHUNK : REPLY_FRAGMENT_CHUNK;
}

/**
 * Frames a handshake message as one or more datagrams of at most HANDSHAKE_MAX_DATAGRAM bytes. INIT
 * fragments end with 32 zero bytes for mac1 and mac2, which the sender fills (src/crypto/cookie.ts); RESP
 * and FINAL name the receiver (the index the other side chose). The INIT message must already be padded
 * (encodeInitMessage).
 */
export function encodeHandshake(type: HandshakeType, senderIndex: number, receiverIndex: number | undefined, message: Uint8Array): Buffer[] {
  const isInit = type === PACKET.HANDSHAKE_INIT;
  if (isInit !== (receiverIndex === undefined)) throw new FrameError(isInit ? "INIT carries no receiver index" : "RESP/FINAL need a receiver index");
  if (isInit && message.length < MIN_INIT_MESSAGE) throw new FrameError(`INIT message of ${message.length} bytes is not padded to ${MIN_INIT_MESSAGE}`);
  if (message.length === 0) throw new FrameError("empty handshake message");
  const chunk = chunkSize(type);
  const count = Math.ceil(message.length / chunk);
  if (count > HANDSHAKE_MAX_FRAGMENTS) throw new FrameError(`handshake message of ${message.length} bytes needs ${count} fragments, more than ${HANDSHAKE_MAX_FRAGMENTS}`);
  const head = headerSize(type);
  const trailer = isInit ? HANDSHAKE_INIT_TRAILER : 0;
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const part = message.subarray(i * chunk, Math.min(message.length, (i + 1) * chunk));
    const f = Buffer.alloc(head + part.length + trailer);
    f[0] = type;
    f[2] = i;
    f[3] = count;
    f.writeUInt32LE(senderIndex >>> 0, 4);
    if (receiverIndex !== undefined) f.writeUInt32LE(receiverIndex >>> 0, 8);
    f.set(part, head);
    out.push(f);
  }
  return out;
}

export type HandshakeRefusal = "not_handshake" | "truncated" | "oversized" | "reserved_bits" | "bad_fragment";

export interface HandshakeFragment {
  ok: true;
  type: HandshakeType;
  fragIndex: number;
  fragCount: number;
  senderIndex: number;
  receiverIndex?: number;
  /** This fragment's part of the message: a view into the datagram (no copy). */
  chunk: Uint8Array;
}

export type ParsedHandshake = HandshakeFragment | { ok: false; reason: HandshakeRefusal; detail: string };

function refuse(reason: HandshakeRefusal, detail: string): ParsedHandshake {
  return { ok: false, reason, detail };
}

/**
 * Parses one handshake datagram (one fragment). Every fragment but the last of a message is full-size; a
 * message of one fragment that is an INIT is at least HANDSHAKE_INIT_DATAGRAM bytes (padding).
 */
export function parseHandshake(p: Uint8Array): ParsedHandshake {
  const type = p.length > 0 ? p[0] : -1;
  if (type !== PACKET.HANDSHAKE_INIT && type !== PACKET.HANDSHAKE_RESP && type !== PACKET.HANDSHAKE_FINAL) {
    return refuse("not_handshake", `first byte ${type < 0 ? "missing" : "0x" + type.toString(16)} is not a handshake type`);
  }
  if (p.length > HANDSHAKE_MAX_DATAGRAM) return refuse("oversized", `${p.length} bytes, more than one ${HANDSHAKE_MAX_DATAGRAM}-byte handshake datagram`);
  const isInit = type === PACKET.HANDSHAKE_INIT;
  const head = headerSize(type);
  const trailer = isInit ? HANDSHAKE_INIT_TRAILER : 0;
  if (p.length < head + 1 + trailer) return refuse("truncated", `${p.length} bytes, a fragment needs at least ${head + 1 + trailer}`);
  if (p[1]) return refuse("reserved_bits", "reserved header byte is not zero");
  const fragIndex = p[2];
  const fragCount = p[3];
  if (fragCount === 0 || fragCount > HANDSHAKE_MAX_FRAGMENTS || fragIndex >= fragCount) {
    return refuse("bad_fragment", `fragment ${fragIndex} of ${fragCount} (1-${HANDSHAKE_MAX_FRAGMENTS} fragments)`);
  }
  const last = fragIndex === fragCount - 1;
  if (!last && p.length !== HANDSHAKE_MAX_DATAGRAM) return refuse("bad_fragment", `fragment ${fragIndex} of ${fragCount} has ${p.length} bytes; all but the last are ${HANDSHAKE_MAX_DATAGRAM}`);
  if (isInit && fragCount === 1 && p.length < HANDSHAKE_INIT_DATAGRAM) return refuse("truncated", `INIT of ${p.length} bytes, a padded INIT is at least ${HANDSHAKE_INIT_DATAGRAM}`);
  const senderIndex = (p[4] | (p[5] << 8) | (p[6] << 16) | (p[7] << 24)) >>> 0;
  const chunk = p.subarray(head, p.length - trailer);
  if (isInit) return { ok: true, type, fragIndex, fragCount, senderIndex, chunk };
  const receiverIndex = (p[8] | (p[9] << 8) | (p[10] << 16) | (p[11] << 24)) >>> 0;
  return { ok: true, type, fragIndex, fragCount, senderIndex, receiverIndex, chunk };
}

/** mac1 and mac2 of an INIT datagram (views). */
export function initMacs(p: Uint8Array): { mac1: Uint8Array; mac2: Uint8Array } {
  return { mac1: p.subarray(p.length - 2 * MAC_SIZE, p.length - MAC_SIZE), mac2: p.subarray(p.length - MAC_SIZE) };
}

/** The INIT message: e || claim length (u16 LE) || sealed claim || zero padding to MIN_INIT_MESSAGE. */
export function encodeInitMessage(e: Uint8Array, sealedClaim: Uint8Array): Uint8Array {
  if (e.length !== DH_SIZE) throw new FrameError(`INIT ephemeral key must be ${DH_SIZE} bytes, got ${e.length}`);
  const used = DH_SIZE + INIT_CLAIM_LENGTH_SIZE + sealedClaim.length;
  if (sealedClaim.length > 0xffff || used > MAX_HANDSHAKE_MESSAGE) throw new FrameError(`INIT claim of ${sealedClaim.length} bytes is too long`);
  const out = Buffer.alloc(Math.max(used, MIN_INIT_MESSAGE));
  out.set(e, 0);
  out.writeUInt16LE(sealedClaim.length, DH_SIZE);
  out.set(sealedClaim, DH_SIZE + INIT_CLAIM_LENGTH_SIZE);
  return out;
}

/** Splits an INIT message into e and the sealed claim (views); undefined when the lengths do not add up. */
export function parseInitMessage(m: Uint8Array): { e: Uint8Array; sealedClaim: Uint8Array } | undefined {
  if (m.length < DH_SIZE + INIT_CLAIM_LENGTH_SIZE) return undefined;
  const n = m[DH_SIZE] | (m[DH_SIZE + 1] << 8);
  const end = DH_SIZE + INIT_CLAIM_LENGTH_SIZE + n;
  if (n < TAG_SIZE || end > m.length) return undefined;
  return { e: m.subarray(0, DH_SIZE), sealedClaim: m.subarray(DH_SIZE + INIT_CLAIM_LENGTH_SIZE, end) };
}

/** Cookie reply: type | 0 0 0 | receiver index (the initiator's sender index) | nonce | sealed cookie. */
export function encodeCookieReply(receiverIndex: number, nonce: Uint8Array, sealedCookie: Uint8Array): Buffer {
  if (nonce.length !== COOKIE_NONCE_SIZE || sealedCookie.length !== COOKIE_SIZE + TAG_SIZE) throw new FrameError("cookie reply: bad nonce or sealed cookie size");
  const out = Buffer.alloc(COOKIE_REPLY_SIZE);
  out[0] = PACKET.COOKIE_REPLY;
  out.writeUInt32LE(receiverIndex >>> 0, 4);
  out.set(nonce, 8);
  out.set(sealedCookie, 8 + COOKIE_NONCE_SIZE);
  return out;
}

export type ParsedCookieReply =
  | { ok: true; receiverIndex: number; nonce: Uint8Array; sealedCookie: Uint8Array }
  | { ok: false; reason: HandshakeRefusal; detail: string };

export function parseCookieReply(p: Uint8Array): ParsedCookieReply {
  if (p[0] !== PACKET.COOKIE_REPLY) return { ok: false, reason: "not_handshake", detail: "not a cookie reply" };
  if (p.length !== COOKIE_REPLY_SIZE) return { ok: false, reason: p.length < COOKIE_REPLY_SIZE ? "truncated" : "oversized", detail: `cookie reply of ${p.length} bytes, expected ${COOKIE_REPLY_SIZE}` };
  if (p[1] | p[2] | p[3]) return { ok: false, reason: "reserved_bits", detail: "reserved header bytes are not zero" };
  return {
    ok: true, receiverIndex: (p[4] | (p[5] << 8) | (p[6] << 16) | (p[7] << 24)) >>> 0,
    nonce: p.subarray(8, 8 + COOKIE_NONCE_SIZE), sealedCookie: p.subarray(8 + COOKIE_NONCE_SIZE),
  };
}
