// Frame decoder: reads a packet's header, then yields its frames one by one. Data, request and reason
// fields are views into the datagram (no copies); the mux copies only what it must keep. Any malformed
// input is a FrameError that names the frame and field; the mux turns it into a counted drop.
import { FRAME, MAX_ACK_RANGES_RECEIVED, MAX_REASON_BYTES, MAX_REQUEST_BYTES, PACKET_HEADER_SIZE, PACKET_VERSION } from "./constants.js";
import { FrameError } from "./errors.js";
import { FRAME_NAME, type Frame } from "./frames.js";
import { readDstEpoch, readPacketNumber, readSrcEpoch } from "./packet.js";
import { readVarint, varintLength } from "./varint.js";

export interface PacketHeader {
  srcEpoch: number;
  dstEpoch: number;
  pn: number;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

export class PacketReader {
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private end = 0;
  private frameStart = 0;
  private frameName = "";

  /** Starts on a new datagram and returns its header fields. */
  reset(buf: Uint8Array): PacketHeader {
    if (buf.length < PACKET_HEADER_SIZE) throw new FrameError(`packet of ${buf.length} bytes is shorter than the ${PACKET_HEADER_SIZE}-byte header`);
    if (buf[0] !== PACKET_VERSION) throw new FrameError(`unknown packet version 0x${buf[0].toString(16)}`);
    if (buf.length === PACKET_HEADER_SIZE) throw new FrameError("packet carries no frame");
    this.buf = buf;
    this.pos = PACKET_HEADER_SIZE;
    this.end = buf.length;
    const srcEpoch = readSrcEpoch(buf);
    if (srcEpoch === 0) throw new FrameError("sender epoch 0 is reserved");
    return { srcEpoch, dstEpoch: readDstEpoch(buf), pn: readPacketNumber(buf) };
  }

  /** The next frame, or null at the end of the packet. Throws FrameError on anything malformed. */
  next(): Frame | null {
    if (this.pos >= this.end) return null;
    this.frameStart = this.pos;
    const type = this.buf[this.pos++];
    this.frameName = FRAME_NAME[type] ?? "";
    switch (type) {
      case FRAME.PING: return { type: FRAME.PING };
      case FRAME.IMMEDIATE_ACK: return { type: FRAME.IMMEDIATE_ACK };
      case FRAME.ACK: return this.readAck();
      case FRAME.STREAM:
      case FRAME.STREAM_FIN: {
        const id = this.varint("stream id");
        const offset = this.varint("offset");
        const len = this.varint("length");
        if (offset + len > Number.MAX_SAFE_INTEGER) this.fail("offset + length exceeds 2^53");
        return { type: FRAME.STREAM, id, offset, fin: type === FRAME.STREAM_FIN, data: this.bytes(len, "data") };
      }
      case FRAME.OPEN: {
        const id = this.varint("stream id");
        const len = this.varint("request length");
        if (len > MAX_REQUEST_BYTES) this.fail(`request of ${len} bytes exceeds ${MAX_REQUEST_BYTES}`);
        return { type: FRAME.OPEN, id, request: this.bytes(len, "request") };
      }
      case FRAME.ACCEPT: return { type: FRAME.ACCEPT, id: this.varint("stream id") };
      case FRAME.REFUSE: {
        const id = this.varint("stream id");
        const code = this.varint("code");
        return { type: FRAME.REFUSE, id, code, reason: this.reason() };
      }
      case FRAME.RESET: {
        const id = this.varint("stream id");
        const code = this.varint("code");
        return { type: FRAME.RESET, id, code, finalSize: this.varint("final size") };
      }
      case FRAME.MAX_DATA: return { type: FRAME.MAX_DATA, maximum: this.varint("maximum") };
      case FRAME.MAX_STREAM_DATA: {
        const id = this.varint("stream id");
        return { type: FRAME.MAX_STREAM_DATA, id, maximum: this.varint("maximum") };
      }
      case FRAME.CLOSE: {
        const code = this.varint("code");
        return { type: FRAME.CLOSE, code, reason: this.reason() };
      }
      default:
        this.frameName = "";
        return this.fail(`unknown frame type 0x${type.toString(16)}`);
    }
  }

  private readAck(): Frame {
    const largest = this.varint("largest");
    const delayUs = this.varint("ack delay");
    const count = this.varint("range count") + 1;
    if (count > MAX_ACK_RANGES_RECEIVED) this.fail(`${count} ranges exceed ${MAX_ACK_RANGES_RECEIVED}`);
    const first = this.varint("first range");
    if (first > largest) this.fail("first range reaches below packet 0");
    const ranges = [largest, largest - first];
    let low = largest - first;
    for (let i = 1; i < count; i++) {
      const gap = this.varint("gap");
      const len = this.varint("range length");
      const high = low - gap - 2;
      if (high - len < 0) this.fail("range reaches below packet 0");
      ranges.push(high, high - len);
      low = high - len;
    }
    return { type: FRAME.ACK, ranges, delayUs };
  }

  private varint(field: string): number {
    const v = readVarint(this.buf, this.pos, this.end);
    if (v === -1) this.fail(`truncated in ${field}`);
    if (v === -2) this.fail(`${field} exceeds 2^53`);
    this.pos += varintLength(this.buf[this.pos]);
    return v;
  }

  private bytes(len: number, field: string): Uint8Array {
    if (this.pos + len > this.end) this.fail(`truncated in ${field}: ${len} bytes announced, ${this.end - this.pos} left`);
    const v = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return v;
  }

  private reason(): string {
    const len = this.varint("reason length");
    if (len > MAX_REASON_BYTES) this.fail(`reason of ${len} bytes exceeds ${MAX_REASON_BYTES}`);
    const b = this.bytes(len, "reason");
    try {
      return utf8.decode(b);
    } catch {
      return this.fail("reason is not UTF-8");
    }
  }

  private fail(what: string): never {
    const name = this.frameName ? `${this.frameName} frame` : "frame";
    throw new FrameError(`malformed ${name} at byte ${this.frameStart}: ${what}`);
  }
}

/** Decodes a whole packet (tests, logs); the mux iterates with PacketReader instead. */
export function decodePacket(buf: Uint8Array): { header: PacketHeader; frames: Frame[] } {
  const r = new PacketReader();
  const header = r.reset(buf);
  const frames: Frame[] = [];
  for (let f = r.next(); f; f = r.next()) frames.push(f);
  return { header, frames };
}
