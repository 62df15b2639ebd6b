// QUIC variable-length integers (RFC 9000 section 16): the two top bits of the first byte give the
// length (1, 2, 4 or 8 bytes), the rest is the value, big-endian. Values stop at 2^53 - 1 (exact JS numbers).
import { MAX_VARINT } from "./constants.js";

export function varintSize(v: number): 1 | 2 | 4 | 8 {
  if (v < 0x40) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x40000000) return 4;
  return 8;
}

/** Writes v at off, returns the offset after it. The caller has checked room and range. */
export function writeVarint(buf: Uint8Array, off: number, v: number): number {
  if (v < 0x40) {
    buf[off] = v;
    return off + 1;
  }
  if (v < 0x4000) {
    buf[off] = 0x40 | (v >>> 8);
    buf[off + 1] = v & 0xff;
    return off + 2;
  }
  if (v < 0x40000000) {
    buf[off] = 0x80 | (v >>> 24);
    buf[off + 1] = (v >>> 16) & 0xff;
    buf[off + 2] = (v >>> 8) & 0xff;
    buf[off + 3] = v & 0xff;
    return off + 4;
  }
  const hi = Math.floor(v / 0x100000000);
  const lo = v >>> 0;
  buf[off] = 0xc0 | (hi >>> 24);
  buf[off + 1] = (hi >>> 16) & 0xff;
  buf[off + 2] = (hi >>> 8) & 0xff;
  buf[off + 3] = hi & 0xff;
  buf[off + 4] = lo >>> 24;
  buf[off + 5] = (lo >>> 16) & 0xff;
  buf[off + 6] = (lo >>> 8) & 0xff;
  buf[off + 7] = lo & 0xff;
  return off + 8;
}

/** Checks a value is encodable: an integer in [0, 2^53). */
export function isVarint(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= MAX_VARINT;
}

/**
 * Reads one varint at off. Returns the value, or -1 when the input ends inside it, or -2 when it is above
 * 2^53 - 1. The end offset is off + varintLength(buf[off]).
 */
export function readVarint(buf: Uint8Array, off: number, end: number): number {
  if (off >= end) return -1;
  const b = buf[off];
  switch (b >>> 6) {
    case 0: return b;
    case 1: return off + 2 > end ? -1 : ((b & 0x3f) << 8) | buf[off + 1];
    case 2: return off + 4 > end ? -1 : (((b & 0x3f) << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
    default: {
      if (off + 8 > end) return -1;
      const hi = (((b & 0x3f) << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
      if (hi >= 0x200000) return -2; // 2^21 * 2^32 = 2^53
      const lo = ((buf[off + 4] << 24) | (buf[off + 5] << 16) | (buf[off + 6] << 8) | buf[off + 7]) >>> 0;
      return hi * 0x100000000 + lo;
    }
  }
}

/** Length in bytes of the varint starting with byte b. */
export function varintLength(b: number): number {
  return 1 << (b >>> 6);
}
