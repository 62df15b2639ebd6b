// The stream packet header: fixed size, parsed without allocation.
//
//   0        1..4                 5..8                   9..14
//   version  sender epoch (u32)   receiver epoch (u32)   packet number (u48)   frames...
//
//   version         PACKET_VERSION
//   sender epoch    random, non-zero, chosen when the sender's mux was created: a new value means the
//                   peer restarted (its streams and packet numbers start over)
//   receiver epoch  the receiver's epoch as the sender last saw it, 0 before it saw any: a packet meant for
//                   an earlier incarnation of the receiver is dropped, not mistaken for a current one
//   packet number   per sender epoch, from 0, +1 per packet sent, never reused (a retransmission is a new
//                   packet); no truncation or header protection: the session below encrypts everything
// Multi-byte fields are little-endian, like every fixed header in src/wire.
import { PACKET_HEADER_SIZE, PACKET_VERSION } from "./constants.js";

export function writeHeader(buf: Uint8Array, srcEpoch: number, dstEpoch: number, pn: number): number {
  buf[0] = PACKET_VERSION;
  writeU32(buf, 1, srcEpoch);
  writeU32(buf, 5, dstEpoch);
  const lo = pn >>> 0;
  const hi = Math.floor(pn / 0x100000000);
  writeU32(buf, 9, lo);
  buf[13] = hi & 0xff;
  buf[14] = (hi >>> 8) & 0xff;
  return PACKET_HEADER_SIZE;
}

export function readSrcEpoch(buf: Uint8Array): number {
  return readU32(buf, 1);
}

export function readDstEpoch(buf: Uint8Array): number {
  return readU32(buf, 5);
}

export function readPacketNumber(buf: Uint8Array): number {
  return readU32(buf, 9) + (buf[13] | (buf[14] << 8)) * 0x100000000;
}

function writeU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v & 0xff;
  buf[off + 1] = (v >>> 8) & 0xff;
  buf[off + 2] = (v >>> 16) & 0xff;
  buf[off + 3] = (v >>> 24) & 0xff;
}

function readU32(buf: Uint8Array, off: number): number {
  return (buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)) >>> 0;
}
