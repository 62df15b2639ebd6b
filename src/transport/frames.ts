// Frame types and their layout. Every frame starts with a one-byte type (FRAME in constants.ts); every
// other field is a varint (v) unless a length says otherwise. A packet holds one or more frames back to back.
//
//   PING             01                                   ack-eliciting, nothing else (keepalive, PTO probe)
//   ACK              02 largest(v) delay_us(v) count(v) first(v) { gap(v) length(v) } * count
//                       largest = highest packet number acknowledged; delay_us = how long we held it;
//                       first = packets below largest also acknowledged (range largest-first .. largest);
//                       each further range: gap = unacknowledged packets between it and the previous range
//                       minus one, length = packets in it minus one (RFC 9000 section 19.3 encoding)
//   STREAM           08|fin id(v) offset(v) length(v) data[length]
//                       fin (type bit 0) = the stream's last byte is offset + length - 1 (final size)
//   OPEN             10 id(v) length(v) request[length]     length <= MAX_REQUEST_BYTES
//   ACCEPT           11 id(v)
//   REFUSE           12 id(v) code(v) length(v) reason[length]   UTF-8, length <= MAX_REASON_BYTES
//   RESET            13 id(v) code(v) final_size(v)
//                       abandons both directions: we send nothing past final_size, and ask the peer to stop;
//                       final_size keeps mux-level flow control in step (RFC 9000 RESET_STREAM's field)
//   MAX_DATA         14 maximum(v)                          mux-wide credit: total stream bytes allowed
//   MAX_STREAM_DATA  15 id(v) maximum(v)                    highest stream offset allowed
//   CLOSE            1c code(v) length(v) reason[length]    the whole mux is gone; not acknowledged
//   IMMEDIATE_ACK    1f                                   acknowledge this packet now, not after max_ack_delay:
//                       the sender has nothing more in this flight (draft-ietf-quic-ack-frequency's frame)
//
// Stream ids are relative to the sender (constants.ts STREAM_ID_PEER_BIT). Decoded data, request and
// reason bytes are views into the datagram, valid only while it is being handled.
import { FRAME, errorCodeName } from "./constants.js";

export interface PingFrame { type: typeof FRAME.PING }
export interface AckFrame {
  type: typeof FRAME.ACK;
  /** Acknowledged packet-number ranges, inclusive, highest first, flat: [high0, low0, high1, low1, ...]. */
  ranges: number[];
  /** How long the peer held the largest packet before acknowledging it, in microseconds. */
  delayUs: number;
}
export interface StreamFrame { type: typeof FRAME.STREAM; id: number; offset: number; fin: boolean; data: Uint8Array }
export interface OpenFrame { type: typeof FRAME.OPEN; id: number; request: Uint8Array }
export interface AcceptFrame { type: typeof FRAME.ACCEPT; id: number }
export interface RefuseFrame { type: typeof FRAME.REFUSE; id: number; code: number; reason: string }
export interface ResetFrame { type: typeof FRAME.RESET; id: number; code: number; finalSize: number }
export interface MaxDataFrame { type: typeof FRAME.MAX_DATA; maximum: number }
export interface MaxStreamDataFrame { type: typeof FRAME.MAX_STREAM_DATA; id: number; maximum: number }
export interface CloseFrame { type: typeof FRAME.CLOSE; code: number; reason: string }
export interface ImmediateAckFrame { type: typeof FRAME.IMMEDIATE_ACK }

export type Frame =
  | PingFrame | AckFrame | StreamFrame | OpenFrame | AcceptFrame | RefuseFrame | ResetFrame
  | MaxDataFrame | MaxStreamDataFrame | CloseFrame | ImmediateAckFrame;

/** Frames whose packet the receiver must acknowledge (all but ACK and CLOSE, RFC 9002 section 2). */
export function isAckEliciting(f: Frame): boolean {
  return f.type !== FRAME.ACK && f.type !== FRAME.CLOSE;
}

export const FRAME_NAME: Record<number, string> = {
  [FRAME.PING]: "PING", [FRAME.ACK]: "ACK", [FRAME.STREAM]: "STREAM", [FRAME.STREAM_FIN]: "STREAM",
  [FRAME.OPEN]: "OPEN", [FRAME.ACCEPT]: "ACCEPT", [FRAME.REFUSE]: "REFUSE", [FRAME.RESET]: "RESET",
  [FRAME.MAX_DATA]: "MAX_DATA", [FRAME.MAX_STREAM_DATA]: "MAX_STREAM_DATA", [FRAME.CLOSE]: "CLOSE",
  [FRAME.IMMEDIATE_ACK]: "IMMEDIATE_ACK",
};

/** One line per frame, for logs: `STREAM id=4 off=0 len=1200 fin`. */
export function describeFrame(f: Frame): string {
  switch (f.type) {
    case FRAME.PING: return "PING";
    case FRAME.ACK: {
      const parts: string[] = [];
      for (let i = 0; i < f.ranges.length; i += 2) {
        parts.push(f.ranges[i] === f.ranges[i + 1] ? `${f.ranges[i]}` : `${f.ranges[i + 1]}-${f.ranges[i]}`);
      }
      return `ACK delay=${f.delayUs}us ranges=[${parts.join(",")}]`;
    }
    case FRAME.STREAM: return `STREAM id=${f.id} off=${f.offset} len=${f.data.length}${f.fin ? " fin" : ""}`;
    case FRAME.OPEN: return `OPEN id=${f.id} request=${f.request.length}B`;
    case FRAME.ACCEPT: return `ACCEPT id=${f.id}`;
    case FRAME.REFUSE: return `REFUSE id=${f.id} code=${errorCodeName(f.code)} reason=${JSON.stringify(f.reason)}`;
    case FRAME.RESET: return `RESET id=${f.id} code=${errorCodeName(f.code)} final=${f.finalSize}`;
    case FRAME.MAX_DATA: return `MAX_DATA ${f.maximum}`;
    case FRAME.MAX_STREAM_DATA: return `MAX_STREAM_DATA id=${f.id} ${f.maximum}`;
    case FRAME.CLOSE: return `CLOSE code=${errorCodeName(f.code)} reason=${JSON.stringify(f.reason)}`;
    case FRAME.IMMEDIATE_ACK: return "IMMEDIATE_ACK";
  }
}
