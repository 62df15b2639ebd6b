// Frame encoder. The mux builds every packet in one buffer allocated once (PacketWriter); STREAM data is
// copied straight from the application's buffers into it, the only copy on the send side.
import { FRAME, MAX_ACK_RANGES_RECEIVED, MAX_REASON_BYTES, MAX_REQUEST_BYTES, PACKET_HEADER_SIZE } from "./constants.js";
import { FrameError } from "./errors.js";
import type { Frame } from "./frames.js";
import { writeHeader } from "./packet.js";
import { isVarint, varintSize, writeVarint } from "./varint.js";

/** Largest packet the writer can build; link.maxPayload() is normally far below. */
export const MAX_PACKET_SIZE = 65_535;

/** One reusable packet buffer. begin() starts a packet, the write* methods append frames, finish() ends it. */
export class PacketWriter {
  readonly buf = Buffer.allocUnsafe(MAX_PACKET_SIZE);
  /** Write position. */
  pos = 0;
  /** End of the packet being built (the link's current maxPayload). */
  limit = 0;

  begin(srcEpoch: number, dstEpoch: number, pn: number, limit: number): void {
    this.limit = Math.min(limit, MAX_PACKET_SIZE);
    this.pos = writeHeader(this.buf, srcEpoch, dstEpoch, pn);
  }

  get remaining(): number {
    return this.limit - this.pos;
  }

  get empty(): boolean {
    return this.pos === PACKET_HEADER_SIZE;
  }

  /** Appends any frame; the caller checked frameSize(f) <= remaining. */
  write(f: Frame): void {
    this.pos = encodeFrame(this.buf, this.pos, f);
  }

  /**
   * Writes a STREAM frame header for len bytes and returns where its data goes; the caller copies the
   * data there and calls advance(len). Sizes come from streamFrameHeaderSize.
   */
  streamHeader(id: number, offset: number, len: number, fin: boolean): number {
    const b = this.buf;
    b[this.pos] = fin ? FRAME.STREAM_FIN : FRAME.STREAM;
    let p = writeVarint(b, this.pos + 1, id);
    p = writeVarint(b, p, offset);
    this.pos = writeVarint(b, p, len);
    return this.pos;
  }

  advance(n: number): void {
    this.pos += n;
  }

  /** The finished packet: a view of the shared buffer, valid until the next begin(). */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

export function streamFrameHeaderSize(id: number, offset: number, len: number): number {
  return 1 + varintSize(id) + varintSize(offset) + varintSize(len);
}

/** Most STREAM data that fits in `avail` bytes with its header, or 0 when not even one byte fits. */
export function maxStreamDataIn(avail: number, id: number, offset: number): number {
  const fixed = 1 + varintSize(id) + varintSize(offset);
  const with4 = avail - fixed - 4;
  if (with4 >= 0x4000) return with4;
  const with2 = Math.min(avail - fixed - 2, 0x3fff);
  if (with2 >= 0x40) return with2;
  const with1 = Math.min(avail - fixed - 1, 0x3f);
  return with1 > 0 ? with1 : 0;
}

/** Exact encoded size of a frame. */
export function frameSize(f: Frame): number {
  switch (f.type) {
    case FRAME.PING:
    case FRAME.IMMEDIATE_ACK: return 1;
    case FRAME.ACK: return ackFrameSize(f.ranges, f.ranges.length / 2, f.delayUs);
    case FRAME.STREAM: return streamFrameHeaderSize(f.id, f.offset, f.data.length) + f.data.length;
    case FRAME.OPEN: return 1 + varintSize(f.id) + varintSize(f.request.length) + f.request.length;
    case FRAME.ACCEPT: return 1 + varintSize(f.id);
    case FRAME.REFUSE: {
      const n = Buffer.byteLength(f.reason);
      return 1 + varintSize(f.id) + varintSize(f.code) + varintSize(n) + n;
    }
    case FRAME.RESET: return 1 + varintSize(f.id) + varintSize(f.code) + varintSize(f.finalSize);
    case FRAME.MAX_DATA: return 1 + varintSize(f.maximum);
    case FRAME.MAX_STREAM_DATA: return 1 + varintSize(f.id) + varintSize(f.maximum);
    case FRAME.CLOSE: {
      const n = Buffer.byteLength(f.reason);
      return 1 + varintSize(f.code) + varintSize(n) + n;
    }
  }
}

/** Size of an ACK frame carrying the first `count` ranges of `ranges` (flat, highest first). */
export function ackFrameSize(ranges: readonly number[], count: number, delayUs: number): number {
  let n = 1 + varintSize(ranges[0]) + varintSize(delayUs) + varintSize(count - 1) + varintSize(ranges[0] - ranges[1]);
  for (let i = 1; i < count; i++) {
    n += varintSize(ranges[2 * i - 1] - ranges[2 * i] - 2) + varintSize(ranges[2 * i] - ranges[2 * i + 1]);
  }
  return n;
}

/** Writes an ACK with the first `count` ranges; returns the end offset. */
export function writeAck(buf: Uint8Array, off: number, ranges: readonly number[], count: number, delayUs: number): number {
  buf[off] = FRAME.ACK;
  let p = writeVarint(buf, off + 1, ranges[0]);
  p = writeVarint(buf, p, delayUs);
  p = writeVarint(buf, p, count - 1);
  p = writeVarint(buf, p, ranges[0] - ranges[1]);
  for (let i = 1; i < count; i++) {
    p = writeVarint(buf, p, ranges[2 * i - 1] - ranges[2 * i] - 2);
    p = writeVarint(buf, p, ranges[2 * i] - ranges[2 * i + 1]);
  }
  return p;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new FrameError(`cannot encode ${what}`);
}

function checkAck(ranges: readonly number[]): void {
  check(ranges.length >= 2 && ranges.length % 2 === 0 && ranges.length / 2 <= MAX_ACK_RANGES_RECEIVED, "ACK: 1 to 256 ranges");
  for (let i = 0; i < ranges.length; i += 2) {
    check(isVarint(ranges[i]) && isVarint(ranges[i + 1]) && ranges[i] >= ranges[i + 1], "ACK: range high < low");
    if (i > 0) check(ranges[i] + 2 <= ranges[i - 1], "ACK: ranges must be descending with a gap");
  }
}

/** Encodes one frame at off, validating every field; returns the end offset. */
export function encodeFrame(buf: Uint8Array, off: number, f: Frame): number {
  switch (f.type) {
    case FRAME.PING:
    case FRAME.IMMEDIATE_ACK:
      buf[off] = f.type;
      return off + 1;
    case FRAME.ACK:
      checkAck(f.ranges);
      check(isVarint(f.delayUs), "ACK delay");
      return writeAck(buf, off, f.ranges, f.ranges.length / 2, f.delayUs);
    case FRAME.STREAM: {
      check(isVarint(f.id) && isVarint(f.offset) && isVarint(f.offset + f.data.length), "STREAM id/offset");
      buf[off] = f.fin ? FRAME.STREAM_FIN : FRAME.STREAM;
      let p = writeVarint(buf, off + 1, f.id);
      p = writeVarint(buf, p, f.offset);
      p = writeVarint(buf, p, f.data.length);
      buf.set(f.data, p);
      return p + f.data.length;
    }
    case FRAME.OPEN: {
      check(isVarint(f.id) && f.request.length <= MAX_REQUEST_BYTES, `OPEN (request over ${MAX_REQUEST_BYTES} bytes?)`);
      buf[off] = FRAME.OPEN;
      let p = writeVarint(buf, off + 1, f.id);
      p = writeVarint(buf, p, f.request.length);
      buf.set(f.request, p);
      return p + f.request.length;
    }
    case FRAME.ACCEPT:
      check(isVarint(f.id), "ACCEPT id");
      buf[off] = FRAME.ACCEPT;
      return writeVarint(buf, off + 1, f.id);
    case FRAME.REFUSE: {
      check(isVarint(f.id) && isVarint(f.code), "REFUSE id/code");
      buf[off] = FRAME.REFUSE;
      let p = writeVarint(buf, off + 1, f.id);
      p = writeVarint(buf, p, f.code);
      return writeReason(buf, p, f.reason);
    }
    case FRAME.RESET: {
      check(isVarint(f.id) && isVarint(f.code) && isVarint(f.finalSize), "RESET fields");
      buf[off] = FRAME.RESET;
      let p = writeVarint(buf, off + 1, f.id);
      p = writeVarint(buf, p, f.code);
      return writeVarint(buf, p, f.finalSize);
    }
    case FRAME.MAX_DATA:
      check(isVarint(f.maximum), "MAX_DATA");
      buf[off] = FRAME.MAX_DATA;
      return writeVarint(buf, off + 1, f.maximum);
    case FRAME.MAX_STREAM_DATA: {
      check(isVarint(f.id) && isVarint(f.maximum), "MAX_STREAM_DATA");
      buf[off] = FRAME.MAX_STREAM_DATA;
      const p = writeVarint(buf, off + 1, f.id);
      return writeVarint(buf, p, f.maximum);
    }
    case FRAME.CLOSE: {
      check(isVarint(f.code), "CLOSE code");
      buf[off] = FRAME.CLOSE;
      return writeReason(buf, writeVarint(buf, off + 1, f.code), f.reason);
    }
  }
}

function writeReason(buf: Uint8Array, off: number, reason: string): number {
  const n = Buffer.byteLength(reason);
  check(n <= MAX_REASON_BYTES, `reason over ${MAX_REASON_BYTES} bytes`);
  const p = writeVarint(buf, off, n);
  Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).write(reason, p, "utf8");
  return p + n;
}

/** Cuts a reason to MAX_REASON_BYTES of UTF-8 without splitting a character. */
export function clipReason(reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_REASON_BYTES) return reason;
  let s = reason.slice(0, MAX_REASON_BYTES);
  while (Buffer.byteLength(s) > MAX_REASON_BYTES) s = s.slice(0, -1);
  return s;
}
