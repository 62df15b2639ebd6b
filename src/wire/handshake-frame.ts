// Handshake packet framing: type | reserved(3) | sender index | [receiver index] | Noise message.
// Parsing checks every length before any crypto runs and says why a frame was refused.
import {
  DH_SIZE, HANDSHAKE_INIT_DATAGRAM, HANDSHAKE_INIT_HEADER, HANDSHAKE_REPLY_HEADER, MAX_DATAGRAM,
  MIN_HANDSHAKE_FINAL_MESSAGE, MIN_HANDSHAKE_RESP_MESSAGE, PACKET,
} from "./constants.js";

export type HandshakeType = typeof PACKET.HANDSHAKE_INIT | typeof PACKET.HANDSHAKE_RESP | typeof PACKET.HANDSHAKE_FINAL;

export class FrameError extends Error {}

/**
 * Frames a Noise handshake message. INIT carries the 32-byte ephemeral key only and is zero-padded to
 * HANDSHAKE_INIT_DATAGRAM; RESP and FINAL name the receiver (the index the other side chose).
 */
export function encodeHandshake(type: HandshakeType, senderIndex: number, receiverIndex: number | undefined, message: Uint8Array): Buffer {
  const isInit = type === PACKET.HANDSHAKE_INIT;
  if (isInit !== (receiverIndex === undefined)) throw new FrameError(isInit ? "INIT carries no receiver index" : "RESP/FINAL need a receiver index");
  if (isInit && message.length !== DH_SIZE) throw new FrameError(`INIT message must be ${DH_SIZE} bytes, got ${message.length}`);
  const head = isInit ? HANDSHAKE_INIT_HEADER : HANDSHAKE_REPLY_HEADER;
  const size = isInit ? HANDSHAKE_INIT_DATAGRAM : head + message.length;
  if (size > MAX_DATAGRAM) throw new FrameError(`handshake message of ${message.length} bytes does not fit one datagram`);
  const out = Buffer.alloc(size);
  out[0] = type;
  out.writeUInt32LE(senderIndex >>> 0, 4);
  if (receiverIndex !== undefined) out.writeUInt32LE(receiverIndex >>> 0, 8);
  out.set(message, head);
  return out;
}

export type HandshakeRefusal = "not_handshake" | "truncated" | "oversized" | "reserved_bits";

export type ParsedHandshake =
  | { ok: true; type: HandshakeType; senderIndex: number; receiverIndex?: number; message: Uint8Array }
  | { ok: false; reason: HandshakeRefusal; detail: string };

function refuse(reason: HandshakeRefusal, detail: string): ParsedHandshake {
  return { ok: false, reason, detail };
}

/** Parses a handshake datagram; message is a view into p (no copy). */
export function parseHandshake(p: Uint8Array): ParsedHandshake {
  const type = p.length > 0 ? p[0] : -1;
  if (type !== PACKET.HANDSHAKE_INIT && type !== PACKET.HANDSHAKE_RESP && type !== PACKET.HANDSHAKE_FINAL) {
    return refuse("not_handshake", `first byte ${type < 0 ? "missing" : "0x" + type.toString(16)} is not a handshake type`);
  }
  if (p.length > MAX_DATAGRAM) return refuse("oversized", `${p.length} bytes, more than one ${MAX_DATAGRAM}-byte datagram`);
  const isInit = type === PACKET.HANDSHAKE_INIT;
  const head = isInit ? HANDSHAKE_INIT_HEADER : HANDSHAKE_REPLY_HEADER;
  const min = isInit ? HANDSHAKE_INIT_DATAGRAM : head + (type === PACKET.HANDSHAKE_RESP ? MIN_HANDSHAKE_RESP_MESSAGE : MIN_HANDSHAKE_FINAL_MESSAGE);
  if (p.length < min) return refuse("truncated", `${p.length} bytes, a ${isInit ? "padded INIT is" : "frame needs at least"} ${min}`);
  if (isInit && p.length !== HANDSHAKE_INIT_DATAGRAM) return refuse("oversized", `INIT of ${p.length} bytes, expected exactly ${HANDSHAKE_INIT_DATAGRAM}`);
  if (p[1] | p[2] | p[3]) return refuse("reserved_bits", "reserved header bytes are not zero");
  const senderIndex = (p[4] | (p[5] << 8) | (p[6] << 16) | (p[7] << 24)) >>> 0;
  if (isInit) return { ok: true, type, senderIndex, message: p.subarray(head, head + DH_SIZE) };
  const receiverIndex = (p[8] | (p[9] << 8) | (p[10] << 16) | (p[11] << 24)) >>> 0;
  return { ok: true, type, senderIndex, receiverIndex, message: p.subarray(head) };
}
