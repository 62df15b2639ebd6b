// UDP datagrams on a mesh flow, which is a byte stream: each datagram travels as a 2-byte big-endian
// length and then its payload. Length 0 and lengths over MAX_DATAGRAM are refused: no UDP datagram
// frames to either, so a flow carrying one is broken (or hostile) and is closed, not resynchronised.
import { MAX_DATAGRAM } from "./limits.js";

export const FRAME_HEADER = 2;

export class FramingError extends Error {
  override name = "FramingError";
}

function checkLength(len: number): void {
  if (len === 0) throw new FramingError("datagram frame of length 0 (an empty datagram cannot be framed)");
  if (len > MAX_DATAGRAM) throw new FramingError(`datagram frame of ${len} bytes, over the ${MAX_DATAGRAM}-byte UDP maximum`);
}

/** One frame in one allocation. Throws FramingError for an empty or oversized payload. */
export function encodeDatagram(payload: Uint8Array): Buffer {
  checkLength(payload.length);
  const frame = Buffer.allocUnsafe(FRAME_HEADER + payload.length);
  frame.writeUInt16BE(payload.length, 0);
  frame.set(payload, FRAME_HEADER);
  return frame;
}

/**
 * Yields whole datagrams from arbitrary chunks. A datagram that lies inside one chunk is returned as a
 * view of that chunk (no copy); one split across chunks is assembled in a buffer of exactly its size,
 * so the decoder never holds more than one frame. After a FramingError it refuses everything.
 */
export class DatagramDecoder {
  private readonly header = Buffer.alloc(FRAME_HEADER);
  private headerFilled = 0;
  private body: Buffer | null = null;
  private bodyFilled = 0;
  private failed: FramingError | null = null;

  /** Bytes held for an incomplete frame (at most FRAME_HEADER + MAX_DATAGRAM). */
  get buffered(): number {
    return this.headerFilled + (this.body ? FRAME_HEADER + this.bodyFilled : 0);
  }

  push(chunk: Uint8Array): Buffer[] {
    if (this.failed) throw this.failed;
    const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const out: Buffer[] = [];
    try {
      let off = 0;
      while (off < data.length) {
        if (this.body === null) {
          if (this.headerFilled === 0 && data.length - off >= FRAME_HEADER) {
            const len = data.readUInt16BE(off);
            checkLength(len);
            off += FRAME_HEADER;
            if (data.length - off >= len) {
              out.push(data.subarray(off, off + len));
              off += len;
            } else {
              this.startBody(len);
            }
            continue;
          }
          this.header[this.headerFilled++] = data[off++];
          if (this.headerFilled === FRAME_HEADER) {
            this.headerFilled = 0;
            const len = this.header.readUInt16BE(0);
            checkLength(len);
            this.startBody(len);
          }
          continue;
        }
        const take = Math.min(this.body.length - this.bodyFilled, data.length - off);
        data.copy(this.body, this.bodyFilled, off, off + take);
        this.bodyFilled += take;
        off += take;
        if (this.bodyFilled === this.body.length) {
          out.push(this.body);
          this.body = null;
        }
      }
    } catch (err) {
      this.failed = err as FramingError;
      this.body = null;
      throw err;
    }
    return out;
  }

  private startBody(len: number): void {
    this.body = Buffer.allocUnsafe(len);
    this.bodyFilled = 0;
  }
}
