// What we remember about each packet sent: enough to act when it is acknowledged or lost. Frames are
// remembered by what they refer to (a stream and a byte range), not by their bytes: lost data is resent
// from the stream's buffer in whatever packet comes next, and lost credit updates are resent at their
// current value.
import type { Frame } from "./frames.js";
import type { Stream } from "./stream.js";

export class SentFrame {
  constructor(
    /** FRAME type (STREAM for both STREAM types). */
    readonly type: number,
    /** The stream for STREAM, OPEN, ACCEPT, RESET, MAX_STREAM_DATA of a live stream; null otherwise. */
    readonly stream: Stream | null,
    readonly offset: number,
    readonly length: number,
    readonly fin: boolean,
    /** Frames kept whole because no stream holds them any more (REFUSE, RESET of a forgotten id), or MAX_DATA's value. */
    readonly frame: Frame | null,
    /** The value a credit frame carried (MAX_DATA, MAX_STREAM_DATA); for STREAM, NEW_DATA or RETRANSMISSION. */
    readonly value = 0,
  ) {}
}

export const NEW_DATA = 0;
export const RETRANSMISSION = 1;

export class SentPacket {
  /** Packet number. */
  pn = 0;
  timeSent = 0;
  size = 0;
  ackEliciting = false;
  /** Counted in bytes in flight (ack-eliciting packets are; ACK-only packets are not). */
  inFlight = false;
  /** Largest packet number acknowledged by an ACK in this packet, or -1. */
  ackLargest = -1;
  /** Carries IMMEDIATE_ACK: the peer acknowledges it without its max_ack_delay. */
  immediateAck = false;
  frames: SentFrame[] = [];
}
