// One multiplexed stream: the protocol side of the lifecycle in stream-base.ts. Its own states follow
// RFC 9000 section 3 (a sending part and a receiving part), plus the open handshake, and change only in
// setSendState() (what we send) and setRecvState() (what we receive).
//
// Opening: the opener sends OPEN(request) and no data until the peer accepts (ACCEPT, or any STREAM /
// MAX_STREAM_DATA frame from it); a refusal (REFUSE) settles the stream with nothing to undo. Closing:
// FIN each way (half-close), or RESET, which abandons both directions: the side that receives a RESET
// answers with its own unless its data is all acknowledged, so each side learns the other's final size
// and mux-level flow control stays in step.
import { DROP, ERROR_CODE, FRAME, INITIAL_STREAM_CREDIT, type DropReason } from "./constants.js";
import { clipReason, frameSize, maxStreamDataIn, streamFrameHeaderSize, type PacketWriter } from "./encode.js";
import { FinalSizeError, FlowControlError, StreamRefusedError, StreamResetError, TransportError } from "./errors.js";
import { ReceiveWindow } from "./flow.js";
import type { TransportConfig } from "./options.js";
import { RecvBuffer } from "./recv-buffer.js";
import { SendBuffer } from "./send-buffer.js";
import { NEW_DATA, RETRANSMISSION, SentFrame } from "./sent.js";
import { BaseStream } from "./stream-base.js";

/** The open handshake. */
export const OpenState = {
  /** We opened it; OPEN sent, waiting for the peer's decision. */
  OPENING: "opening",
  /** The peer opened it; waiting for our application to accept or refuse. */
  PENDING: "pending",
  OPEN: "open",
  REFUSED: "refused",
} as const;
export type OpenState = (typeof OpenState)[keyof typeof OpenState];

/** Sending part (RFC 9000 section 3.1). */
export const SendState = {
  READY: "ready",
  SEND: "send",
  DATA_SENT: "data_sent",
  DATA_RECVD: "data_recvd",
  RESET_SENT: "reset_sent",
  RESET_RECVD: "reset_recvd",
} as const;
export type SendState = (typeof SendState)[keyof typeof SendState];

/** Receiving part (RFC 9000 section 3.2). */
export const RecvState = {
  RECV: "recv",
  SIZE_KNOWN: "size_known",
  DATA_RECVD: "data_recvd",
  DATA_READ: "data_read",
  RESET_RECVD: "reset_recvd",
  RESET_READ: "reset_read",
} as const;
export type RecvState = (typeof RecvState)[keyof typeof RecvState];

/** What a stream needs from its mux. */
export interface StreamHost {
  readonly config: TransportConfig;
  now(): number;
  srtt(): number;
  /** The stream has frames to send. */
  wake(s: Stream): void;
  /** Both parts are settled: the mux forgets the stream. */
  streamDone(s: Stream): void;
  /** The peer's data reached `delta` bytes further on a stream: false when that breaks the mux-wide window (the mux is closing). */
  received(delta: number): boolean;
  /** Bytes taken by the application or discarded: mux-wide credit. */
  consumed(n: number): void;
  /** Queue a REFUSE for a stream we never accepted. */
  refuse(s: Stream, code: number, reason: string): void;
  /** A frame from the peer broke the rules for this stream (counted under `kind`; the stream resets itself). */
  violation(kind: DropReason, reason: string): void;
}

export class Stream extends BaseStream {
  openState: OpenState;
  sendState: SendState = SendState.READY;
  recvState: RecvState = RecvState.RECV;
  readonly sendBuf = new SendBuffer();
  readonly recvBuf = new RecvBuffer();
  /** Receive window for this stream (what the peer may send us). */
  readonly window: ReceiveWindow;
  /** Highest offset the peer lets us send (its MAX_STREAM_DATA). */
  sendLimit = INITIAL_STREAM_CREDIT;
  /** Highest offset received so far. */
  highest = 0;
  /** The peer's final size once known (FIN or RESET), else -1. */
  finalSize = -1;
  /** Code of the RESET we send. */
  private resetCode: number = ERROR_CODE.CANCELLED;
  /** We reset the stream: incoming data is only counted, never kept. */
  private discarding = false;
  // Frames waiting for a packet.
  needOpen = false;
  private needAccept = false;
  private needMaxStreamData = false;
  private needReset = false;
  /** In the mux's send queue. */
  queued = false;
  /** The reader wants data (_read was called and push has not said stop). */
  private readWanted = false;
  /** A delivery to the reader is scheduled for the end of this event-loop turn (see handleStream). */
  private readScheduled = false;
  private forgotten = false;

  constructor(
    private readonly host: StreamHost,
    /** Our name for the stream: 2 * n + (1 when the peer opened it). Also what we put on the wire. */
    readonly id: number,
    /** The opener's request (OPEN payload). */
    readonly request: Uint8Array,
  ) {
    super({ readableHighWaterMark: host.config.readableHighWaterMark, writableHighWaterMark: host.config.writableHighWaterMark });
    const c = host.config;
    this.openState = this.outbound ? OpenState.OPENING : OpenState.PENDING;
    this.window = new ReceiveWindow(INITIAL_STREAM_CREDIT, c.streamReceiveWindow, c.maxStreamReceiveWindow);
    if (this.outbound) this.needOpen = true;
  }

  /** True when this side opened the stream. */
  get outbound(): boolean {
    return (this.id & 1) === 0;
  }

  /** Log scope, `out:4` / `in:3`. */
  get scope(): string {
    return `${this.outbound ? "out" : "in"}:${this.id}`;
  }

  // ------------------------------------------------------------ application decisions

  /** Accepts a stream the peer opened: data may flow both ways. */
  accept(): void {
    if (this.openState !== OpenState.PENDING || this.forgotten) return;
    this.openState = OpenState.OPEN;
    this.setSendState(SendState.SEND);
    this.needAccept = true;
    this.needMaxStreamData = this.window.maybeUpdate(this.host.now(), this.host.srtt());
    this.host.wake(this);
  }

  /** Refuses a stream the peer opened; the opener's stream fails with StreamRefusedError(code, reason). */
  refuse(code: number = ERROR_CODE.REFUSED, reason = ""): void {
    if (this.openState !== OpenState.PENDING || this.forgotten) return;
    this.openState = OpenState.REFUSED;
    this.host.refuse(this, code, clipReason(reason));
    this.forget();
    this.onClosed();
    this.destroy();
  }

  // ------------------------------------------------------------ frames from the peer (handleX)

  /** The peer accepted our open (ACCEPT, or implied by a frame only an accepted stream gets). */
  handleAccept(): void {
    if (this.openState !== OpenState.OPENING) return;
    this.openState = OpenState.OPEN;
    this.needOpen = false;
    if (this.sendState === SendState.READY) this.setSendState(SendState.SEND);
    // Our window is larger than the protocol's initial credit: say so now the peer has the stream.
    if (!this.discarding) this.needMaxStreamData = this.window.maybeUpdate(this.host.now(), this.host.srtt());
    this.host.wake(this);
    if (!this.discarding) this.emit("accepted");
  }

  handleRefuse(code: number, reason: string): void {
    if (this.openState !== OpenState.OPENING) {
      this.host.violation(DROP.PROTOCOL, `REFUSE for ${this.scope} in state ${this.openState}`);
      return;
    }
    this.openState = OpenState.REFUSED;
    this.needOpen = false;
    // The peer never sent anything, and we sent nothing but OPEN (and perhaps RESET): both final sizes are 0.
    this.finalSize = 0;
    if (this.sendState !== SendState.RESET_SENT) this.setSendState(SendState.RESET_RECVD);
    this.setRecvState(RecvState.RESET_READ);
    this.onReset(new StreamRefusedError(code, reason));
  }

  handleStream(offset: number, data: Uint8Array, fin: boolean): void {
    if (this.openState === OpenState.OPENING) this.handleAccept();
    if (this.openState !== OpenState.OPEN) {
      this.host.violation(DROP.PROTOCOL, `STREAM for ${this.scope} before it was accepted`);
      return;
    }
    if (this.recvState === RecvState.RESET_RECVD || this.recvState === RecvState.RESET_READ) return;
    const end = offset + data.length;
    // Checks first, before any credit is spent or byte kept.
    if (this.window.exceeds(end)) {
      return this.fail(new FlowControlError(`${this.scope}: peer sent up to offset ${end}, credit was ${this.window.advertised}`, true));
    }
    if (this.finalSize >= 0 && (end > this.finalSize || (fin && end !== this.finalSize))) {
      return this.fail(new FinalSizeError(`${this.scope}: data up to ${end} against final size ${this.finalSize}`, true));
    }
    this.window.onReceived(end);
    if (fin && end < this.highest) {
      return this.fail(new FinalSizeError(`${this.scope}: final size ${end} below data already received up to ${this.highest}`, true));
    }
    if (end > this.highest) {
      if (!this.host.received(end - this.highest)) return;
      this.highest = end;
      if (this.discarding) this.consumeDiscarded();
    }
    if (fin && this.finalSize < 0) {
      this.finalSize = end;
      if (this.recvState === RecvState.RECV) this.setRecvState(RecvState.SIZE_KNOWN);
    }
    if (this.discarding) {
      if (this.finalSize >= 0) this.setRecvState(RecvState.RESET_READ);
      return;
    }
    this.recvBuf.insert(offset, data);
    if (this.finalSize >= 0 && this.recvBuf.contiguousEnd === this.finalSize && this.recvState === RecvState.SIZE_KNOWN) {
      this.setRecvState(RecvState.DATA_RECVD);
    }
    // Deliver once per event-loop turn: the data of every datagram of this turn reaches the reader as one
    // chunk (one write to a socket it is piped to), not one chunk per packet.
    if (!this.readScheduled) {
      this.readScheduled = true;
      setImmediate(this.deferredFlushReads);
    }
  }

  private readonly deferredFlushReads = (): void => {
    this.readScheduled = false;
    this.flushReads();
  };

  handleReset(code: number, finalSize: number): void {
    if (this.recvState === RecvState.RESET_RECVD || this.recvState === RecvState.RESET_READ) return;
    if (finalSize < this.highest || (this.finalSize >= 0 && finalSize !== this.finalSize)) {
      return this.fail(new FinalSizeError(`${this.scope}: RESET final size ${finalSize} against ${this.finalSize >= 0 ? this.finalSize : `data up to ${this.highest}`}`, true));
    }
    if (this.window.exceeds(finalSize)) {
      return this.fail(new FlowControlError(`${this.scope}: RESET final size ${finalSize} beyond credit ${this.window.advertised}`, true));
    }
    if (finalSize > this.highest && !this.host.received(finalSize - this.highest)) return;
    this.highest = finalSize;
    this.finalSize = finalSize;
    // A reset settles the open handshake too: nothing to accept or refuse any more.
    if (this.openState === OpenState.OPENING || this.openState === OpenState.PENDING) this.openState = OpenState.OPEN;
    this.recvBuf.discard();
    this.consumeDiscarded();
    const wasDiscarding = this.discarding;
    this.discarding = true;
    this.setRecvState(RecvState.RESET_RECVD);
    // Tell the peer our final size unless it already has all our data.
    if (this.sendState !== SendState.DATA_RECVD && this.sendState !== SendState.RESET_SENT && this.sendState !== SendState.RESET_RECVD) {
      this.sendResetFrame(ERROR_CODE.NO_ERROR);
    }
    this.setRecvState(RecvState.RESET_READ);
    if (!wasDiscarding) this.onReset(new StreamResetError(code, true));
  }

  handleMaxStreamData(maximum: number): void {
    if (this.openState === OpenState.OPENING) this.handleAccept();
    if (maximum <= this.sendLimit) return;
    this.sendLimit = maximum;
    if (this.sendBuf.sent < this.sendBuf.written) this.host.wake(this);
  }

  // ------------------------------------------------------------ frames to the peer (sendX)

  /** Something to put in a packet, given the mux-wide credit left. */
  hasWork(muxCredit: number): boolean {
    if (this.needReset) return true;
    if (this.sendState === SendState.RESET_SENT || this.sendState === SendState.RESET_RECVD) return false;
    if (this.needOpen || this.needAccept || this.needMaxStreamData) return true;
    if (this.openState !== OpenState.OPEN) return false;
    const b = this.sendBuf;
    if (b.hasLost) return true;
    if (b.sent < b.written) return muxCredit > 0 && b.sent < this.sendLimit;
    return b.finWritten && !b.finSent;
  }

  /**
   * Writes what fits into the packet: control frames first, then lost data, then new data within the
   * stream's and the mux's credit. Returns how many new bytes were sent (mux credit used).
   */
  writeFrames(w: PacketWriter, muxCredit: number, out: SentFrame[]): number {
    if (this.needReset) {
      const f = { type: FRAME.RESET, id: this.id, code: this.resetCode, finalSize: this.sendBuf.sent } as const;
      if (frameSize(f) > w.remaining) return 0;
      w.write(f);
      this.needReset = false;
      out.push(new SentFrame(FRAME.RESET, this, 0, 0, false, null));
      return 0;
    }
    if (this.sendState === SendState.RESET_SENT || this.sendState === SendState.RESET_RECVD) return 0;
    if (this.needOpen) {
      const f = { type: FRAME.OPEN, id: this.id, request: this.request } as const;
      if (frameSize(f) > w.remaining) return 0;
      w.write(f);
      this.needOpen = false;
      out.push(new SentFrame(FRAME.OPEN, this, 0, 0, false, null));
    }
    if (this.needAccept) {
      const f = { type: FRAME.ACCEPT, id: this.id } as const;
      if (frameSize(f) > w.remaining) return 0;
      w.write(f);
      this.needAccept = false;
      out.push(new SentFrame(FRAME.ACCEPT, this, 0, 0, false, null));
    }
    if (this.needMaxStreamData && this.openState === OpenState.OPEN) {
      const f = { type: FRAME.MAX_STREAM_DATA, id: this.id, maximum: this.window.advertised } as const;
      if (frameSize(f) > w.remaining) return 0;
      w.write(f);
      this.needMaxStreamData = false;
      out.push(new SentFrame(FRAME.MAX_STREAM_DATA, this, 0, 0, false, null, f.maximum));
    }
    if (this.openState !== OpenState.OPEN) return 0;
    const b = this.sendBuf;
    // Lost data first, in whatever size fits now (the path's MTU may have shrunk since).
    while (b.hasLost) {
      if (b.lost.isEmpty) {
        // Only the FIN was lost: an empty STREAM frame carries it again.
        if (w.remaining < finOnlySize(this.id, b.written)) return 0;
        w.streamHeader(this.id, b.written, 0, true);
        b.onResent(b.written, 0, true);
        out.push(new SentFrame(FRAME.STREAM, this, b.written, 0, true, null, RETRANSMISSION));
        break;
      }
      const start = b.lost.firstStart;
      const rangeEnd = b.lost.firstEnd;
      const room = maxStreamDataIn(w.remaining, this.id, start);
      if (room === 0) return 0;
      const len = Math.min(room, rangeEnd - start);
      const fin = b.finLost && start + len === b.written;
      const at = w.streamHeader(this.id, start, len, fin);
      b.copy(w.buf, at, start, len);
      w.advance(len);
      b.onResent(start, len, fin);
      out.push(new SentFrame(FRAME.STREAM, this, start, len, fin, null, RETRANSMISSION));
      if (len < rangeEnd - start) return 0;
    }
    // New data, within the stream's and the mux's credit.
    const start = b.sent;
    const limit = Math.min(b.written, this.sendLimit, start + Math.max(0, muxCredit));
    let len: number;
    if (limit > start) {
      const room = maxStreamDataIn(w.remaining, this.id, start);
      if (room === 0) return 0;
      len = Math.min(room, limit - start);
    } else if (b.finWritten && !b.finSent && start === b.written) {
      if (w.remaining < finOnlySize(this.id, start)) return 0;
      len = 0;
    } else {
      return 0;
    }
    const fin = b.finWritten && !b.finSent && start + len === b.written;
    const at = w.streamHeader(this.id, start, len, fin);
    b.copy(w.buf, at, start, len);
    w.advance(len);
    b.onSentNew(len, fin);
    out.push(new SentFrame(FRAME.STREAM, this, start, len, fin, null, NEW_DATA));
    if (fin) this.setSendState(SendState.DATA_SENT);
    return len;
  }

  // ------------------------------------------------------------ what happened to our frames (onX)

  onFrameAcked(f: SentFrame): void {
    switch (f.type) {
      case FRAME.STREAM: {
        const released = this.sendBuf.onAcked(f.offset, f.length, f.fin);
        if (this.sendState === SendState.DATA_SENT && this.sendBuf.allAcked) this.setSendState(SendState.DATA_RECVD);
        if (released > 0 && this.sendBuf.buffered < this.host.config.streamSendBuffer) this.onWriteDrained();
        return;
      }
      case FRAME.RESET:
        // A RESET declared lost may still be acknowledged late: then it need not go again.
        this.needReset = false;
        if (this.sendState === SendState.RESET_SENT) this.setSendState(SendState.RESET_RECVD);
        return;
    }
  }

  /** The packet carrying f was lost (or is being probed): queue what still matters. */
  onFrameLost(f: SentFrame): void {
    if (this.forgotten) return;
    switch (f.type) {
      case FRAME.STREAM:
        if (this.sendState === SendState.RESET_SENT || this.sendState === SendState.RESET_RECVD) return;
        this.sendBuf.onLost(f.offset, f.length, f.fin);
        break;
      case FRAME.OPEN:
        if (this.openState !== OpenState.OPENING || this.sendState === SendState.RESET_SENT) return;
        this.needOpen = true;
        break;
      case FRAME.ACCEPT:
        if (this.sendState === SendState.RESET_SENT || this.sendState === SendState.RESET_RECVD) return;
        this.needAccept = true;
        break;
      case FRAME.MAX_STREAM_DATA:
        if (f.value !== this.window.advertised || this.discarding || this.recvState !== RecvState.RECV) return;
        this.needMaxStreamData = true;
        break;
      case FRAME.RESET:
        if (this.sendState !== SendState.RESET_SENT) return;
        this.needReset = true;
        break;
      default:
        return;
    }
    this.host.wake(this);
  }

  /** The link refused the packet: put its frames back as if never sent. */
  onFrameUnsent(f: SentFrame): void {
    if (f.type === FRAME.STREAM && f.value === NEW_DATA) {
      if (this.sendState === SendState.RESET_SENT || this.sendState === SendState.RESET_RECVD) return;
      this.sendBuf.unsend(f.offset, f.length, f.fin);
      if (f.fin && this.sendState === SendState.DATA_SENT) this.setSendState(SendState.SEND);
      this.host.wake(this);
      return;
    }
    this.onFrameLost(f);
  }

  // ------------------------------------------------------------ resets

  /** This side resets the stream (application destroy, or a peer's violation on it). */
  private resetLocally(code: number): void {
    if (this.forgotten) return;
    if (this.openState === OpenState.PENDING) {
      this.openState = OpenState.REFUSED;
      this.host.refuse(this, code, "");
      this.forget();
      return;
    }
    const recvDone = this.recvState === RecvState.DATA_READ || this.recvState === RecvState.RESET_READ;
    const sendDone = this.sendState === SendState.DATA_RECVD || this.sendState === SendState.RESET_SENT || this.sendState === SendState.RESET_RECVD;
    if (recvDone && sendDone) return this.maybeDone();
    if (!recvDone) {
      this.discarding = true;
      this.recvBuf.discard();
      this.consumeDiscarded();
      if (this.finalSize >= 0) this.setRecvState(RecvState.RESET_READ);
    }
    if (this.sendState !== SendState.RESET_SENT && this.sendState !== SendState.RESET_RECVD) this.sendResetFrame(code);
    this.maybeDone();
  }

  private sendResetFrame(code: number): void {
    this.resetCode = code;
    this.sendBuf.discard();
    this.needOpen = this.needAccept = this.needMaxStreamData = false;
    this.needReset = true;
    this.setSendState(SendState.RESET_SENT);
    this.host.wake(this);
  }

  /** A violation by the peer on this stream: reset it with the error's code and surface the error. */
  private fail(err: TransportError): void {
    const kind = err instanceof FlowControlError ? DROP.FLOW_CONTROL : err instanceof FinalSizeError ? DROP.FINAL_SIZE : DROP.PROTOCOL;
    this.host.violation(kind, err.message);
    this.resetLocally(err.code);
    this.onReset(err);
  }

  /** The mux drops the stream without a word to the peer (peer restarted, idle timeout, mux closed). */
  abandon(err: Error): void {
    if (this.forgotten) return;
    this.forget();
    this.needOpen = this.needAccept = this.needMaxStreamData = this.needReset = false;
    this.sendBuf.discard();
    this.recvBuf.discard();
    this.onReset(err);
  }

  // ------------------------------------------------------------ reading

  private flushReads(): void {
    if (this.discarding) return;
    let n = 0;
    if (this.readWanted) {
      for (let c = this.recvBuf.take(); c; c = this.recvBuf.take()) {
        n += c.length;
        if (!this.deliver(c)) {
          this.readWanted = false;
          break;
        }
      }
    }
    if (n > 0) {
      this.host.consumed(n);
      if (this.recvState === RecvState.RECV && this.window.onConsumed(n, this.host.now(), this.host.srtt())) {
        this.needMaxStreamData = true;
        this.host.wake(this);
      } else if (this.recvState !== RecvState.RECV) {
        this.window.consumed += n;
      }
    }
    if (this.recvState === RecvState.DATA_RECVD && this.recvBuf.taken === this.finalSize) {
      this.setRecvState(RecvState.DATA_READ);
      this.onRemoteEnd();
    }
  }

  /** Counts everything received (or skipped by a reset) but not yet taken as consumed: mux-wide credit returns. */
  private consumeDiscarded(): void {
    const n = this.highest - this.window.consumed;
    if (n > 0) {
      this.window.consumed += n;
      this.host.consumed(n);
    }
  }

  // ------------------------------------------------------------ state changes (the only two setters)

  private setSendState(s: SendState): void {
    if (this.sendState === s) return;
    this.sendState = s;
    this.maybeDone();
  }

  private setRecvState(s: RecvState): void {
    if (this.recvState === s) return;
    this.recvState = s;
    this.maybeDone();
  }

  private maybeDone(): void {
    if (this.forgotten) return;
    const sendDone = this.sendState === SendState.DATA_RECVD || this.sendState === SendState.RESET_RECVD;
    const recvDone = this.recvState === RecvState.DATA_READ || this.recvState === RecvState.RESET_READ;
    if (!sendDone || !recvDone || this.needReset) return;
    this.forget();
    if (this.sendState === SendState.DATA_RECVD && this.recvState === RecvState.DATA_READ) this.onClosed();
  }

  private forget(): void {
    if (this.forgotten) return;
    this.forgotten = true;
    this.host.streamDone(this);
  }

  /** The mux no longer tracks this stream. */
  get isForgotten(): boolean {
    return this.forgotten;
  }

  // ------------------------------------------------------------ BaseStream hooks

  protected sendData(chunk: Buffer): boolean {
    if (this.sendState === SendState.RESET_SENT || this.sendState === SendState.RESET_RECVD || this.forgotten) return true;
    this.sendBuf.write(chunk);
    if (this.openState === OpenState.OPEN) this.host.wake(this);
    return this.sendBuf.buffered < this.host.config.streamSendBuffer;
  }

  protected sendFin(): void {
    if (this.sendState === SendState.RESET_SENT || this.sendState === SendState.RESET_RECVD || this.forgotten) return;
    this.sendBuf.end();
    if (this.openState === OpenState.OPEN) this.host.wake(this);
  }

  protected sendReset(err: Error | null, graceful: boolean): void {
    if (graceful) return;
    this.resetLocally(err instanceof TransportError ? err.code : ERROR_CODE.CANCELLED);
  }

  protected readRequested(): void {
    this.readWanted = true;
    if (this.openState === OpenState.OPEN) this.flushReads();
  }
}

/** Room a STREAM frame with no data needs (FIN alone). */
function finOnlySize(id: number, offset: number): number {
  return streamFrameHeaderSize(id, offset, 0);
}
