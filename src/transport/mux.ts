// StreamMux: reliable, ordered, flow-controlled byte streams over one peer's encrypted datagram session.
//
// Receiving (handleDatagram), in stage order:
//   1. decode the header and every frame (a malformed datagram is a counted drop, nothing acted on)
//   2. epochs: a packet for an earlier incarnation of us is dropped (and answered, so the peer learns
//      our epoch); a new peer epoch means the peer restarted: its old streams are reset
//   3. packet number: duplicates dropped; recorded for our ACKs
//   4. frames, in order: ACK -> loss recovery; stream frames -> their stream; credit -> flow control
// Sending (flush, run once per event-loop turn after anything changed):
//   1. stop if the link said it is full (until onWritable)
//   2. per packet: ACK if one is owed, then mux credit and queued refusals, then streams round-robin
//      (each: control frames, lost data, new data), within congestion window, pacing and flow credit
//   3. a refused send puts every frame back; nothing is reported sent that was not
import { randomBytes } from "node:crypto";
import { AckTracker } from "./ack-tracker.js";
import { realClock, type Clock, type TimerHandle } from "./clock.js";
import type { CongestionController } from "./congestion.js";
import { createController } from "./controllers.js";
import {
  CLOSE_REPLY_INTERVAL_MS, DROP, ERROR_CODE, FRAME, INITIAL_MUX_CREDIT, MAX_ACK_DELAY_MS, MAX_REQUEST_BYTES,
  MIN_FRAME_ROOM, MIN_PAYLOAD, PROBES_PER_PTO, RETIRED_EPOCHS, STALE_REPLY_INTERVAL_MS, type DropReason,
} from "./constants.js";
import { PacketReader } from "./decode.js";
import { ackFrameSize, clipReason, frameSize, PacketWriter, writeAck } from "./encode.js";
import {
  FlowControlError, FrameError, IdleTimeoutError, MuxClosedError, PeerRestartedError, StreamLimitError,
} from "./errors.js";
import { ReceiveWindow } from "./flow.js";
import { isAckEliciting, type Frame } from "./frames.js";
import { IdWindow } from "./ids.js";
import type { DatagramLink } from "./link.js";
import { idleDeadline, isQuiet, keepaliveDeadline, nextWakeup } from "./mux-deadlines.js";
import { resolveConfig, type Logger, type MuxOptions, type TransportConfig } from "./options.js";
import { Pacer } from "./pacer.js";
import { LossRecovery } from "./recovery.js";
import { NEW_DATA, RETRANSMISSION, SentFrame, SentPacket } from "./sent.js";
import type { MuxStats } from "./stats.js";
import { Stream, type StreamHost } from "./stream.js";

function randomEpoch(): number {
  for (;;) {
    const e = randomBytes(4).readUInt32LE(0);
    if (e !== 0) return e;
  }
}

/** The wire id the peer used is its own name for the stream; ours differs in the low bit. */
function flipId(id: number): number {
  return id % 2 === 0 ? id + 1 : id - 1;
}

export class StreamMux {
  readonly config: TransportConfig;
  /** Our epoch: random, non-zero, renewed when we give up on the peer (idle timeout). */
  private myEpoch: number;
  /** The peer's epoch, 0 until it is heard from. */
  private peerEpoch = 0;
  /** What streams see of their mux (kept off the public surface). */
  private readonly host: StreamHost;
  private readonly retiredPeerEpochs: number[] = [];
  /** The peer sent CLOSE in its current epoch: its packets are dropped (and open() fails) until it comes back with a new one. */
  private peerClosed: MuxClosedError | null = null;
  /** This side closed: terminal. */
  private closedError: MuxClosedError | null = null;

  private readonly clock: Clock;
  private readonly log: Logger | undefined;
  private readonly onIncoming: MuxOptions["onIncoming"];
  private readonly onClose: MuxOptions["onClose"];

  private readonly streams = new Map<number, Stream>();
  private outbound = 0;
  private inbound = 0;
  /** Our next stream number (the stream's id is twice it). */
  private nextLocal = 0;
  private remoteIds: IdWindow;

  private readonly writer = new PacketWriter();
  private readonly reader = new PacketReader();
  private readonly decoded: Frame[] = [];
  private readonly acks: AckTracker;
  private readonly cc: CongestionController;
  private readonly recovery: LossRecovery;
  private readonly pacer = new Pacer();
  private datagram: number;

  // Mux-wide flow control.
  /** Peer's MAX_DATA: total new stream bytes we may send. */
  private sendCredit = INITIAL_MUX_CREDIT;
  /** New stream bytes sent (retransmissions not counted). */
  private sentData = 0;
  /** Our receive window across all streams, and how far the peer's data has reached in total. */
  private window: ReceiveWindow;
  private receivedData = 0;
  private maxDataPending = false;

  // Work queues.
  private sendQueue: Stream[] = [];
  /** Frames no stream holds: REFUSE, RESET for a stream we never had. */
  private controlQueue: Frame[] = [];
  private pingPending = false;
  private probes = 0;

  // Time.
  private lastSentAt: number;
  private lastReceivedAt: number;
  /**
   * When the mux last went from quiet (no stream, nothing in flight) to busy. The idle timeout counts from
   * this or the last packet received, whichever is later: silence while nothing was asked of the peer is
   * rest, not a sign that the peer is gone (the first stream after a minute of quiet must not be cut).
   */
  private busySince: number;
  private timer: TimerHandle | null = null;
  private timerAt = Infinity;
  private pacingUntil = 0;
  private flushScheduled = false;
  private linkBlocked = false;
  /**
   * The window is not what limits us (nothing to send, or the link is full): ACKs then do not grow it
   * (RFC 9002 section 7.8), or a fast link's back-pressure would inflate it without bound.
   */
  private appLimited = true;
  private lastStaleReply = -Infinity;
  private lastCloseReply = -Infinity;

  private readonly drops = new Map<string, number>();
  private readonly c = {
    packetsSent: 0, packetsReceived: 0, packetsRetransmitted: 0, ackOnlyPacketsSent: 0, bytesSent: 0, bytesReceived: 0,
    streamBytesReceived: 0, streamsOpened: 0, streamsAccepted: 0, opensRefused: 0, ptoFired: 0, peerRestarts: 0, idleTimeouts: 0,
  };

  constructor(private readonly link: DatagramLink, options: MuxOptions = {}) {
    this.config = resolveConfig(options);
    this.clock = options.clock ?? realClock;
    this.log = options.log;
    this.onIncoming = options.onIncoming;
    this.onClose = options.onClose;
    this.myEpoch = options.epoch ?? randomEpoch();
    if (!Number.isInteger(this.myEpoch) || this.myEpoch <= 0 || this.myEpoch > 0xffffffff) throw new RangeError("epoch must be a non-zero u32");
    this.host = {
      config: this.config,
      now: () => this.clock.now(),
      srtt: () => this.srtt(),
      wake: (s) => this.wake(s),
      streamDone: (s) => this.streamDone(s),
      received: (delta) => this.received(delta),
      consumed: (n) => this.consumed(n),
      refuse: (s, code, reason) => this.refuseStream(s, code, reason),
      violation: (kind, reason) => this.violation(kind, reason),
    };
    this.datagram = Math.max(link.maxPayload(), MIN_PAYLOAD);
    this.cc = createController(this.config.congestion, this.datagram);
    this.acks = new AckTracker(this.config.ackEveryPackets, MAX_ACK_DELAY_MS);
    this.recovery = new LossRecovery(this.config.initialRttMs, MAX_ACK_DELAY_MS, this.cc, {
      onPacketAcked: (p) => this.onPacketAcked(p),
      onPacketLost: (p) => this.onPacketLost(p),
    });
    this.window = this.newReceiveWindow();
    this.remoteIds = new IdWindow(this.config.streamIdWindow);
    const now = this.clock.now();
    this.lastSentAt = now;
    this.lastReceivedAt = now;
    this.busySince = now;
  }

  // ================================================================ public API

  /** Opens a stream; the peer sees `request` (at most MAX_REQUEST_BYTES) and accepts or refuses. */
  open(request: Uint8Array = new Uint8Array(0)): Stream {
    if (this.closedError) throw this.closedError;
    if (this.peerClosed) throw this.peerClosed;
    if (request.length > MAX_REQUEST_BYTES) throw new RangeError(`open request of ${request.length} bytes exceeds ${MAX_REQUEST_BYTES}`);
    if (this.outbound >= this.config.maxStreams) throw new StreamLimitError(this.config.maxStreams);
    const s = new Stream(this.host, 2 * this.nextLocal++, Uint8Array.from(request));
    if (this.isQuiet()) this.busySince = this.clock.now();
    this.streams.set(s.id, s);
    this.outbound++;
    this.c.streamsOpened++;
    this.grantInitialMuxCredit();
    this.wake(s);
    return s;
  }

  /** One payload from the session below. Never throws: bad datagrams are counted drops. */
  handleDatagram(payload: Uint8Array): void {
    if (this.closedError) {
      this.drop(DROP.CLOSED);
      this.replyClose();
      return;
    }
    try {
      this.receive(payload);
    } catch (err) {
      if (err instanceof FrameError) {
        this.drop(DROP.MALFORMED);
        this.log?.debug({ err: err.message }, "dropped malformed stream packet");
      } else {
        this.drop(DROP.INTERNAL);
        this.log?.warn({ err: (err as Error).message, stack: (err as Error).stack }, "internal error while handling a stream packet");
      }
    }
    this.scheduleFlush();
  }

  /** The link drained after send() returned false. */
  onWritable(): void {
    this.linkBlocked = false;
    this.scheduleFlush();
  }

  /** Closes the mux: every stream is reset, the peer is told (once), timers stop. */
  close(reason = ""): void {
    this.destroy(ERROR_CODE.NO_ERROR, reason);
  }

  destroy(code: number = ERROR_CODE.INTERNAL, reason = ""): void {
    if (this.closedError) return;
    const err = new MuxClosedError(code, clipReason(reason), false);
    if (this.peerEpoch !== 0 && !this.peerClosed) this.sendClose(code, err.reason);
    this.closedError = err;
    this.abandonAll(err);
    this.recovery.discardAll();
    this.controlQueue = [];
    this.clearTimer();
    this.onClose?.(err);
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  /** The peer closed its side (it was stopping) and has not come back with a new epoch since. */
  get closedByPeer(): boolean {
    return this.peerClosed !== null;
  }

  stats(): MuxStats {
    let sendBuffered = 0;
    let receiveBuffered = 0;
    for (const s of this.streams.values()) {
      sendBuffered += s.sendBuf.buffered;
      receiveBuffered += s.recvBuf.buffered;
    }
    const rtt = this.recovery.rtt;
    return {
      epoch: this.myEpoch,
      peerEpoch: this.peerEpoch,
      ...this.c,
      packetsLost: this.recovery.packetsLost,
      streamBytesSent: this.sentData + this.sentDataBefore,
      openStreams: this.streams.size,
      sendBuffered,
      receiveBuffered,
      srttMs: rtt.smoothed,
      rttVarMs: rtt.variance,
      minRttMs: rtt.hasSample ? rtt.min : 0,
      latestRttMs: rtt.latest,
      cwnd: this.cc.window,
      ssthresh: this.cc.ssthresh,
      bytesInFlight: this.recovery.bytesInFlight,
      ptoCount: this.recovery.ptoCount,
      persistentCongestion: this.recovery.persistentCongestionEvents,
      randomLossEvents: this.recovery.randomLossEvents,
      congestion: this.cc.name,
      trackedPackets: this.recovery.trackedSlots,
      pendingControlFrames: this.controlQueue.length,
      timerArmed: this.timer !== null,
      linkBlocked: this.linkBlocked,
      drops: Object.fromEntries(this.drops),
    };
  }

  /** Stream bytes sent in earlier peer epochs (sentData restarts with the mux-wide credit). */
  private sentDataBefore = 0;

  /** Our current epoch (random, renewed after an idle timeout). */
  get epoch(): number {
    return this.myEpoch;
  }

  // ================================================================ what streams ask of the mux (this.host)

  private srtt(): number {
    return this.recovery.rtt.smoothed;
  }

  private wake(s: Stream): void {
    if (!s.queued && !s.isForgotten) {
      s.queued = true;
      this.sendQueue.push(s);
    }
    this.scheduleFlush();
  }

  private streamDone(s: Stream): void {
    if (this.streams.get(s.id) !== s) return;
    this.streams.delete(s.id);
    if (s.outbound) this.outbound--;
    else this.inbound--;
  }

  private received(delta: number): boolean {
    if (this.window.exceeds(this.receivedData + delta)) {
      this.drop(DROP.FLOW_CONTROL);
      const err = new FlowControlError(`peer sent ${this.receivedData + delta} stream bytes in total, mux credit was ${this.window.advertised}`, true);
      this.log?.warn({ err: err.message }, "mux flow-control violation");
      this.destroy(ERROR_CODE.FLOW_CONTROL, err.message);
      return false;
    }
    this.receivedData += delta;
    this.window.onReceived(this.receivedData);
    this.c.streamBytesReceived += delta;
    return true;
  }

  private consumed(n: number): void {
    if (this.window.onConsumed(n, this.clock.now(), this.srtt())) {
      this.maxDataPending = true;
      this.scheduleFlush();
    }
  }

  private refuseStream(s: Stream, code: number, reason: string): void {
    this.c.opensRefused++;
    this.queueControl({ type: FRAME.REFUSE, id: s.id, code, reason });
  }

  private violation(kind: DropReason, reason: string): void {
    this.drop(kind);
    this.log?.debug({ reason }, "peer broke the stream protocol");
  }

  // ================================================================ receiving

  private receive(buf: Uint8Array): void {
    // 1. Decode everything first: a malformed packet is dropped whole, nothing in it acted on.
    const h = this.reader.reset(buf);
    const frames = this.decoded;
    frames.length = 0;
    let ackEliciting = false;
    let ackNow = false;
    for (let f = this.reader.next(); f; f = this.reader.next()) {
      frames.push(f);
      if (isAckEliciting(f)) ackEliciting = true;
      if (f.type === FRAME.IMMEDIATE_ACK) ackNow = true;
    }
    // 2. Epochs.
    if (h.dstEpoch !== 0 && h.dstEpoch !== this.myEpoch) {
      this.drop(DROP.STALE_EPOCH);
      this.replyStale();
      return;
    }
    if (h.srcEpoch !== this.peerEpoch) {
      if (this.retiredPeerEpochs.includes(h.srcEpoch)) return this.drop(DROP.OLD_PEER_EPOCH);
      if (this.peerEpoch !== 0) this.peerRestarted(h.srcEpoch);
      else this.peerEpoch = h.srcEpoch;
    }
    if (this.peerClosed) return this.drop(DROP.PEER_CLOSED);
    // 3. Packet number.
    if (this.acks.isDuplicate(h.pn)) return this.drop(DROP.DUPLICATE_PACKET);
    const now = this.clock.now();
    this.acks.onReceived(h.pn, ackEliciting, now, ackNow);
    this.lastReceivedAt = now;
    this.c.packetsReceived++;
    this.c.bytesReceived += buf.length;
    // 4. Frames.
    for (let i = 0; i < frames.length; i++) {
      this.handleFrame(frames[i], now);
      if (this.closedError || this.peerClosed) break;
    }
    frames.length = 0;
  }

  private handleFrame(f: Frame, now: number): void {
    switch (f.type) {
      case FRAME.PING:
      case FRAME.IMMEDIATE_ACK: return;
      case FRAME.ACK:
        if (!this.recovery.onAck(f.ranges, f.delayUs / 1000, now, this.appLimited)) this.drop(DROP.BAD_ACK);
        return;
      case FRAME.STREAM: return this.lookup(f.id)?.handleStream(f.offset, f.data, f.fin);
      case FRAME.OPEN: return this.handleOpen(f.id, f.request);
      case FRAME.ACCEPT: return this.lookup(f.id)?.handleAccept();
      case FRAME.REFUSE: return this.lookup(f.id)?.handleRefuse(f.code, f.reason);
      case FRAME.RESET: return this.handleReset(f.id, f.code, f.finalSize);
      case FRAME.MAX_DATA: return this.handleMaxData(f.maximum);
      case FRAME.MAX_STREAM_DATA: return this.lookup(f.id)?.handleMaxStreamData(f.maximum);
      case FRAME.CLOSE: return this.handlePeerClose(f.code, f.reason);
    }
  }

  /** The stream a frame from the peer names, or null (counted: unknown or already closed). */
  private lookup(wireId: number): Stream | null {
    const id = flipId(wireId);
    const s = this.streams.get(id);
    if (s) return s;
    const n = Math.floor(id / 2);
    const known = id % 2 === 0 ? n < this.nextLocal : this.remoteIds.seen(n);
    this.drop(known ? DROP.CLOSED_STREAM : DROP.UNKNOWN_STREAM);
    return null;
  }

  private handleOpen(wireId: number, request: Uint8Array): void {
    const id = flipId(wireId);
    if (id % 2 === 0) return this.violation(DROP.PROTOCOL, `OPEN for stream ${id}, which would be ours`);
    const mark = this.remoteIds.mark(Math.floor(id / 2));
    if (mark === "seen") return this.drop(DROP.DUPLICATE_OPEN);
    if (mark === "too_far") return this.drop(DROP.STREAM_ID_TOO_FAR);
    if (this.inbound >= this.config.maxStreams) {
      this.drop(DROP.STREAM_LIMIT);
      this.c.opensRefused++;
      this.queueControl({ type: FRAME.REFUSE, id, code: ERROR_CODE.STREAM_LIMIT, reason: `too many streams (limit ${this.config.maxStreams})` });
      return;
    }
    if (!this.onIncoming) {
      this.c.opensRefused++;
      this.queueControl({ type: FRAME.REFUSE, id, code: ERROR_CODE.NO_LISTENER, reason: "nothing accepts streams here" });
      return;
    }
    const s = new Stream(this.host, id, Uint8Array.from(request));
    this.streams.set(id, s);
    this.inbound++;
    this.c.streamsAccepted++;
    this.grantInitialMuxCredit();
    try {
      this.onIncoming(s, s.request);
    } catch (err) {
      this.log?.warn({ stream: s.scope, err: (err as Error).message }, "onIncoming threw; refusing the stream");
      s.refuse(ERROR_CODE.INTERNAL, "handler failed");
    }
  }

  private handleReset(wireId: number, code: number, finalSize: number): void {
    const id = flipId(wireId);
    const s = this.streams.get(id);
    if (s) return s.handleReset(code, finalSize);
    if (id % 2 === 1) {
      // The peer reset a stream whose OPEN we never saw: remember the number (a late OPEN is ignored)
      // and answer with our final size, 0, which its side of the stream waits for.
      const mark = this.remoteIds.mark(Math.floor(id / 2));
      if (mark === "new") return this.queueControl({ type: FRAME.RESET, id, code: ERROR_CODE.NO_ERROR, finalSize: 0 });
      if (mark === "too_far") return this.drop(DROP.STREAM_ID_TOO_FAR);
      return this.drop(DROP.CLOSED_STREAM);
    }
    this.drop(Math.floor(id / 2) < this.nextLocal ? DROP.CLOSED_STREAM : DROP.UNKNOWN_STREAM);
  }

  private handleMaxData(maximum: number): void {
    if (maximum <= this.sendCredit) return;
    const wasBlocked = this.sentData >= this.sendCredit;
    this.sendCredit = maximum;
    if (wasBlocked || this.sendQueue.length === 0) {
      for (const s of this.streams.values()) if (!s.queued && s.hasWork(this.sendCredit - this.sentData)) this.wake(s);
    }
  }

  private handlePeerClose(code: number, reason: string): void {
    const err = new MuxClosedError(code, reason, true);
    this.log?.info({ code, reason }, "peer closed the stream mux");
    this.peerClosed = err;
    this.abandonAll(err);
    this.resetPeerState();
  }

  /** The peer's epoch changed: it restarted, and remembers none of our streams. */
  private peerRestarted(newEpoch: number): void {
    this.log?.info({ from: this.peerEpoch, to: newEpoch }, "peer restarted: resetting its streams");
    this.retiredPeerEpochs.push(this.peerEpoch);
    if (this.retiredPeerEpochs.length > RETIRED_EPOCHS) this.retiredPeerEpochs.shift();
    this.peerEpoch = newEpoch;
    this.peerClosed = null;
    this.c.peerRestarts++;
    this.abandonAll(new PeerRestartedError());
    this.resetPeerState();
  }

  /** Everything that was about the peer's old incarnation: packet numbers, credit, packets in flight. */
  private resetPeerState(): void {
    this.acks.reset();
    this.recovery.discardAll();
    this.cc.reset();
    this.sentDataBefore += this.sentData;
    this.sentData = 0;
    this.sendCredit = INITIAL_MUX_CREDIT;
    this.window = this.newReceiveWindow();
    this.receivedData = 0;
    this.maxDataPending = false;
    this.controlQueue = [];
    this.sendQueue = [];
    this.pingPending = false;
    this.probes = 0;
    // Stream numbers start over with the new pairing of epochs (the old ones are gone on both sides,
    // and packets naming them carry epochs that are now dropped).
    this.nextLocal = 0;
    this.remoteIds = new IdWindow(this.config.streamIdWindow);
  }

  private abandonAll(err: Error): void {
    const all = [...this.streams.values()];
    for (const s of all) s.abandon(err);
    this.streams.clear();
    this.outbound = this.inbound = 0;
    this.sendQueue = [];
  }

  // ================================================================ what happened to sent packets

  private onPacketAcked(p: SentPacket): void {
    if (p.ackLargest >= 0) this.acks.onAckAcked(p.ackLargest);
    const frames = p.frames;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i];
      if (f.stream) f.stream.onFrameAcked(f);
    }
  }

  private onPacketLost(p: SentPacket): void {
    const frames = p.frames;
    for (let i = 0; i < frames.length; i++) this.requeue(frames[i]);
  }

  /** A frame's packet was lost (or is being probed again): send again what still matters. */
  private requeue(f: SentFrame): void {
    if (f.stream) return f.stream.onFrameLost(f);
    switch (f.type) {
      case FRAME.MAX_DATA:
        if (f.value === this.window.advertised) this.maxDataPending = true;
        return;
      case FRAME.REFUSE:
      case FRAME.RESET:
        if (f.frame && this.controlQueue.length < 2 * this.config.maxRefusalBacklog) this.controlQueue.push(f.frame);
        return;
    }
  }

  // ================================================================ sending

  /**
   * Sends once per event-loop turn, after the poll phase: every datagram that arrived in this turn (libuv
   * reads up to 32 per readable event, each its own callback) is processed first, so one ACK answers them
   * all and new data goes out in one run, instead of a flush (and an ACK) after each datagram.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.closedError) return;
    this.flushScheduled = true;
    setImmediate(this.flushTask);
  }

  private readonly flushTask = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  private flush(): void {
    if (this.closedError) return;
    const now = this.clock.now();
    if (!this.linkBlocked) this.sendPackets(now);
    this.armTimer(now);
  }

  private sendPackets(now: number): void {
    const maxPayload = this.link.maxPayload();
    if (maxPayload < MIN_PAYLOAD) {
      if (this.hasElicitingWork() || this.acks.ackNow) this.drop(DROP.PAYLOAD_TOO_SMALL);
      return;
    }
    if (maxPayload !== this.datagram) {
      this.datagram = maxPayload;
      this.cc.setDatagramSize(maxPayload);
    }
    this.pacer.configure(this.cc.window, this.recovery.rtt.smoothed, maxPayload);
    this.pacingUntil = 0;
    for (;;) {
      let eliciting = this.hasElicitingWork();
      if (!eliciting && !this.acks.ackNow) {
        this.appLimited = this.recovery.bytesInFlight < this.cc.window / 2;
        return;
      }
      if (eliciting && this.probes === 0) {
        if (this.recovery.bytesInFlight >= this.cc.window) {
          eliciting = false;
          this.appLimited = false;
        } else if (this.config.pacing) {
          // A wait too small to move the clock (tokens a rounding error short) is no wait: armed for "now",
          // no timer would fire, and the sender stalled until the next ACK (600 ms on a satellite link).
          const until = now + this.pacer.delay(now, maxPayload);
          if (until > now) {
            eliciting = false;
            this.pacingUntil = until;
          }
        }
      }
      if (!eliciting && !this.acks.ackNow) return;
      if (!this.sendPacket(now, maxPayload, eliciting)) return;
      if (!eliciting) return;
    }
  }

  private hasElicitingWork(): boolean {
    if (this.maxDataPending || this.controlQueue.length > 0 || this.pingPending || this.probes > 0) return true;
    const q = this.sendQueue;
    const credit = this.sendCredit - this.sentData;
    while (q.length > 0) {
      if (q[0].hasWork(credit)) return true;
      q[0].queued = false;
      q.shift();
    }
    return false;
  }

  /** Builds and sends one packet; false when nothing was sent (empty, or the link is full). */
  private sendPacket(now: number, maxPayload: number, eliciting: boolean): boolean {
    const w = this.writer;
    const pn = this.recovery.nextPn;
    // One byte kept back for IMMEDIATE_ACK.
    w.begin(this.myEpoch, this.peerEpoch, pn, maxPayload - 1);
    const p = new SentPacket();
    const out = p.frames;
    let ackWritten = false;
    if (this.acks.hasUnacked || this.acks.ackNow) ackWritten = this.writeAckFrame(p, now);
    if (eliciting) {
      if (this.maxDataPending) {
        const f = { type: FRAME.MAX_DATA, maximum: this.window.advertised } as const;
        if (frameSize(f) <= w.remaining) {
          w.write(f);
          this.maxDataPending = false;
          out.push(new SentFrame(FRAME.MAX_DATA, null, 0, 0, false, null, f.maximum));
        }
      }
      while (this.controlQueue.length > 0 && frameSize(this.controlQueue[0]) <= w.remaining) {
        const f = this.controlQueue.shift()!;
        w.write(f);
        out.push(new SentFrame(f.type, null, 0, 0, false, f));
      }
      this.writeStreams(out);
      if (out.length === 0 && (this.pingPending || this.probes > 0)) {
        w.write({ type: FRAME.PING });
        out.push(new SentFrame(FRAME.PING, null, 0, 0, false, null));
      }
      if (out.length > 0) {
        this.pingPending = false;
        // The last packet of a flight asks for its ACK at once: nothing after it would trigger one, and
        // waiting max_ack_delay would stall loss recovery and the window (a flight ends when the window is
        // full or nothing is left to send).
        if (this.recovery.bytesInFlight + 2 * maxPayload > this.cc.window || !this.hasElicitingWork()) {
          w.limit++;
          w.write({ type: FRAME.IMMEDIATE_ACK });
          p.immediateAck = true;
        }
      }
    }
    if (out.length === 0 && !ackWritten) return false;
    const bytes = w.finish();
    if (!this.link.send(bytes)) {
      this.linkBlocked = true;
      this.appLimited = true;
      this.unsend(p, ackWritten);
      return false;
    }
    this.c.packetsSent++;
    this.c.bytesSent += bytes.length;
    this.lastSentAt = now;
    if (out.length === 0) {
      this.c.ackOnlyPacketsSent++;
      this.recovery.onPacketSent(null, pn);
      return true;
    }
    p.pn = pn;
    p.timeSent = now;
    p.size = bytes.length;
    p.ackEliciting = true;
    p.inFlight = true;
    for (let i = 0; i < out.length; i++) {
      if (out[i].type === FRAME.STREAM && out[i].value === RETRANSMISSION) {
        this.c.packetsRetransmitted++;
        break;
      }
    }
    this.recovery.onPacketSent(p, pn);
    if (this.config.pacing) this.pacer.onSent(now, bytes.length);
    if (this.probes > 0) this.probes--;
    return true;
  }

  private writeAckFrame(p: SentPacket, now: number): boolean {
    const r = this.acks.ranges;
    if (r.length === 0) return false;
    const delay = this.acks.ackDelayUs(now);
    let count = this.acks.rangeCount;
    const w = this.writer;
    while (count > 1 && ackFrameSize(r, count, delay) > w.remaining / 2) count--;
    if (ackFrameSize(r, count, delay) > w.remaining) return false;
    w.pos = writeAck(w.buf, w.pos, r, count, delay);
    p.ackLargest = r[0];
    this.acks.onAckSent();
    return true;
  }

  /** Streams round-robin: each writes what fits; one that still has work after a full packet goes to the back. */
  private writeStreams(out: SentFrame[]): void {
    const q = this.sendQueue;
    const w = this.writer;
    while (q.length > 0 && w.remaining >= MIN_FRAME_ROOM) {
      const s = q[0];
      const credit = this.sendCredit - this.sentData;
      if (!s.hasWork(credit)) {
        s.queued = false;
        q.shift();
        continue;
      }
      this.sentData += s.writeFrames(w, credit, out);
      if (!s.hasWork(this.sendCredit - this.sentData)) {
        s.queued = false;
        q.shift();
        continue;
      }
      // Still has work: the packet is full. Next packet starts with the next stream.
      if (q.length > 1) q.push(q.shift()!);
      return;
    }
  }

  /** The link refused a packet: every frame goes back as if never sent. */
  private unsend(p: SentPacket, ackWritten: boolean): void {
    if (ackWritten) this.acks.requestAck();
    for (const f of p.frames) {
      if (f.stream) {
        if (f.type === FRAME.STREAM && f.value === NEW_DATA) this.sentData -= f.length;
        f.stream.onFrameUnsent(f);
        continue;
      }
      if (f.type === FRAME.PING) this.pingPending = true;
      else if (f.type === FRAME.MAX_DATA) this.maxDataPending = true;
      else if (f.frame) this.controlQueue.unshift(f.frame);
    }
  }

  private queueControl(f: Frame): void {
    if (this.controlQueue.length >= this.config.maxRefusalBacklog) {
      this.drop(DROP.REFUSAL_BACKLOG);
      return;
    }
    this.controlQueue.push(f);
    this.scheduleFlush();
  }

  /** The configured mux window goes to the peer with the first stream (never at rest). */
  private grantInitialMuxCredit(): void {
    if (this.window.epochStart < 0 && this.window.maybeUpdate(this.clock.now(), this.srtt())) this.maxDataPending = true;
  }

  private newReceiveWindow(): ReceiveWindow {
    return new ReceiveWindow(INITIAL_MUX_CREDIT, this.config.muxReceiveWindow, this.config.maxMuxReceiveWindow);
  }

  /** Teaches a peer that talks to an earlier incarnation of us our current epoch (any packet of ours does). */
  private replyStale(): void {
    const now = this.clock.now();
    if (now - this.lastStaleReply < STALE_REPLY_INTERVAL_MS) return;
    this.lastStaleReply = now;
    this.pingPending = true;
  }

  private replyClose(): void {
    const now = this.clock.now();
    if (now - this.lastCloseReply < CLOSE_REPLY_INTERVAL_MS || !this.closedError) return;
    this.lastCloseReply = now;
    this.sendClose(this.closedError.code, this.closedError.reason);
  }

  /** CLOSE goes alone in a packet, once; it is not acknowledged or retransmitted. */
  private sendClose(code: number, reason: string): void {
    const maxPayload = this.link.maxPayload();
    if (maxPayload < MIN_PAYLOAD) return;
    const w = this.writer;
    const pn = this.recovery.nextPn;
    w.begin(this.myEpoch, this.peerEpoch, pn, maxPayload);
    w.write({ type: FRAME.CLOSE, code, reason });
    if (this.link.send(w.finish())) {
      this.recovery.onPacketSent(null, pn);
      this.c.packetsSent++;
    }
  }

  // ================================================================ timers

  private armTimer(now: number): void {
    const at = nextWakeup(now, {
      loss: this.recovery.timerDeadline,
      ack: this.acks.hasUnacked ? this.acks.ackDeadline : Infinity,
      pacing: this.pacingUntil,
      keepalive: this.streams.size > 0 && !this.pingPending ? this.keepaliveDeadline() : Infinity,
      idle: this.isQuiet() ? Infinity : this.idleDeadline(),
      stalled: !this.linkBlocked && this.recovery.bytesInFlight === 0 && this.link.maxPayload() >= MIN_PAYLOAD
        && this.hasElicitingWork(),
    });
    if (at === Infinity) return this.clearTimer();
    if (this.timer !== null && this.timerAt <= at) return;
    this.clearTimer();
    this.timerAt = at;
    this.timer = this.clock.setTimer(this.onTimer, Math.max(0, at - now));
  }

  private clearTimer(): void {
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    this.timerAt = Infinity;
    if (this.closedError) return;
    const now = this.clock.now();
    const active = this.streams.size > 0;
    if (!this.isQuiet() && now >= this.idleDeadline()) {
      this.idleTimeout();
      return this.flush();
    }
    if (this.recovery.timerDeadline <= now) {
      const kind = this.recovery.onTimeout(now);
      if (kind === "pto") this.onProbeTimeout();
    }
    this.acks.onTimer(now);
    if (active && now >= this.keepaliveDeadline()) this.pingPending = true;
    this.flush();
  };

  private isQuiet(): boolean {
    return isQuiet(this.streams.size, this.recovery.ackElicitingInFlight);
  }

  private idleDeadline(): number {
    return idleDeadline(this.lastReceivedAt, this.busySince, this.config.idleTimeoutMs);
  }

  private keepaliveDeadline(): number {
    return keepaliveDeadline(this.lastSentAt, this.lastReceivedAt, this.myEpoch, this.peerEpoch, this.config.keepaliveMs);
  }

  /** RFC 9002 section 6.2.4: send probes; with nothing new to send, they carry the oldest unacknowledged data again. */
  private onProbeTimeout(): void {
    this.c.ptoFired++;
    this.probes = PROBES_PER_PTO;
    const oldest = this.recovery.oldestUnacked();
    if (oldest) for (const f of oldest.frames) this.requeue(f);
  }

  /** Nothing heard for the idle timeout: the peer is gone. Reset every stream and start a new epoch, so
   *  a peer that is in fact alive learns from our next packet that our side of its streams is gone. */
  private idleTimeout(): void {
    this.c.idleTimeouts++;
    const err = new IdleTimeoutError(this.config.idleTimeoutMs);
    this.log?.info({ idleMs: this.config.idleTimeoutMs }, "stream mux idle timeout: peer gone");
    this.abandonAll(err);
    this.resetPeerState();
    this.myEpoch = randomEpoch();
    this.peerEpoch = 0;
    this.peerClosed = null;
  }

  private drop(reason: DropReason): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }
}
