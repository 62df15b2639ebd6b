// DATA packet header: written into the caller's send buffer and read straight from a received buffer.
// Per-packet code paths allocate nothing: fields come back as plain numbers.
import { DATA_HEADER_SIZE, MAX_DATAGRAM, MIN_DATA_PACKET, PACKET } from "./constants.js";

/** Writes type, zero reserved bytes, receiver index (u32 LE) and counter (u64 LE) into out[0..16). */
export function writeDataHeader(out: Uint8Array, receiverIndex: number, counter: number): void {
  out[0] = PACKET.DATA;
  out[1] = out[2] = out[3] = 0;
  out[4] = receiverIndex; out[5] = receiverIndex >>> 8; out[6] = receiverIndex >>> 16; out[7] = receiverIndex >>> 24;
  const lo = counter >>> 0;
  const hi = Math.floor(counter / 0x100000000) >>> 0;
  out[8] = lo; out[9] = lo >>> 8; out[10] = lo >>> 16; out[11] = lo >>> 24;
  out[12] = hi; out[13] = hi >>> 8; out[14] = hi >>> 16; out[15] = hi >>> 24;
}

/** The receiver index (u32) of a DATA packet; the caller checked the length (isDataPacket). */
export function readReceiverIndex(p: Uint8Array): number {
  return (p[4] | (p[5] << 8) | (p[6] << 16) | (p[7] << 24)) >>> 0;
}

/**
 * The 64-bit counter as a number. Values >= 2^53 come back rounded to >= 2^53, which is not a safe
 * integer, and the replay window refuses them: no two distinct accepted counters can collide.
 */
export function readCounter(p: Uint8Array): number {
  const lo = (p[8] | (p[9] << 8) | (p[10] << 16) | (p[11] << 24)) >>> 0;
  const hi = (p[12] | (p[13] << 8) | (p[14] << 16) | (p[15] << 24)) >>> 0;
  return hi * 0x100000000 + lo;
}

/** Cheap shape check before any lookup: type, zero reserved bytes, header + tag present, fits a datagram. */
export function isDataPacket(p: Uint8Array): boolean {
  return p.length >= MIN_DATA_PACKET && p.length <= MAX_DATAGRAM && p[0] === PACKET.DATA && (p[1] | p[2] | p[3]) === 0;
}

/** The sealed part (ciphertext || tag) of a DATA packet, as a view (no copy). */
export function dataCiphertext(p: Uint8Array): Uint8Array {
  return p.subarray(DATA_HEADER_SIZE);
}
