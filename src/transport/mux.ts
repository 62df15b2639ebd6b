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
//   2. the sender (mux-sender.ts) builds and sends packets: ACK, credit and refusals, streams round-robin
//   3. the one timer is armed for the earliest deadline (mux-deadlines.ts)
import { AckTracker } from "./ack-tracker.js";
import { realClock, type Clock, type TimerHandle } from "./clock.js";
import type { CongestionController } from "./congestion.js";
import { createController } from "./controllers.js";
import {
  CLOSE_REPLY_INTERVAL_MS, DROP, ERROR_CODE, FRAME, INITIAL_MUX_CREDIT, MAX_ACK_DELAY_MS, MAX_REQUEST_BYTES, MIN_PAYLOAD,
  STALE_REPLY_INTERVAL_MS, type DropReason,
} from "./constants.js";
import { PacketReader } from "./decode.js";
import { clipReason } from "./encode.js";
import {
  FlowControlError, FrameError, IdleTimeoutError, MuxClosedError, PeerRestartedError, StreamLimitError,
} from "./errors.js";
import { ReceiveWindow } from "./flow.js";
import { isAckEliciting, type Frame } from "./frames.js";
import type { DatagramLink } from "./link.js";
import { idleDeadline, isQuiet, keepaliveDeadline, nextWakeup } from "./mux-deadlines.js";
import { Epochs, randomEpoch } from "./mux-epochs.js";
import { MuxSender } from "./mux-sender.js";
import { flipId, StreamTable } from "./mux-streams.js";
import { resolveConfig, type Logger, type MuxOptions, type TransportConfig } from "./options.js";
import { LossRecovery } from "./recovery.js";
import type { MuxStats } from "./stats.js";
import { Stream, type StreamHost } from "./stream.js";

export class StreamMux {
  readonly config: TransportConfig;
  /** Our epoch and the peer's: which incarnation of each side a packet belongs to. */
  private readonly epochs: Epochs;
  /** What streams see of their mux (kept off the public surface). */
  private readonly host: StreamHost;
  /** The peer sent CLOSE in its current epoch: its packets are dropped (and open() fails) until it comes back with a new one. */
  private peerClosed: MuxClosedError | null = null;
  /** This side closed: terminal. */
  private closedError: MuxClosedError | null = null;

  private readonly clock: Clock;
  private readonly log: Logger | undefined;
  private readonly onIncoming: MuxOptions["onIncoming"];
  private readonly onClose: MuxOptions["onClose"];

  /** Live streams, and the stream numbers each side has used. */
  private readonly streams: StreamTable;

  private readonly reader = new PacketReader();
  private readonly decoded: Frame[] = [];
  private readonly acks: AckTracker;
  private readonly cc: CongestionController;
  private readonly recovery: LossRecovery;
  /** Everything that goes out: the send queues, mux-wide send credit, pacing, the link's back-pressure. */
  private readonly sender: MuxSender;

  /** Our receive window across all streams, and how far the peer's data has reached in total. */
  private window: ReceiveWindow;
  private receivedData = 0;

  // Time.
  private lastReceivedAt: number;
  /**
   * When the mux last went from quiet (no stream, nothing in flight) to busy. The idle timeout counts from
   * this or the last packet received, whichever is later: silence while nothing was asked of the peer is
   * rest, not a sign that the peer is gone (the first stream after a minute of quiet must not be cut).
   */
  private busySince: number;
  private timer: TimerHandle | null = null;
  private timerAt = Infinity;
  private flushScheduled = false;
  private lastStaleReply = -Infinity;
  private lastCloseReply = -Infinity;

  private readonly drops = new Map<string, number>();
  /** The receiving side's counters (the sender keeps its own). */
  private readonly c = {
    packetsReceived: 0, bytesReceived: 0, streamBytesReceived: 0, streamsOpened: 0, streamsAccepted: 0, opensRefused: 0, ptoFired: 0,
    peerRestarts: 0, idleTimeouts: 0,
  };

  constructor(link: DatagramLink, options: MuxOptions = {}) {
    this.config = resolveConfig(options);
    this.clock = options.clock ?? realClock;
    this.log = options.log;
    this.onIncoming = options.onIncoming;
    this.onClose = options.onClose;
    this.epochs = new Epochs(options.epoch ?? randomEpoch());
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
    const datagram = Math.max(link.maxPayload(), MIN_PAYLOAD);
    this.cc = createController(this.config.congestion, datagram);
    this.acks = new AckTracker(this.config.ackEveryPackets, MAX_ACK_DELAY_MS);
    this.recovery = new LossRecovery(this.config.initialRttMs, MAX_ACK_DELAY_MS, this.cc, {
      onPacketAcked: (p) => this.sender.onPacketAcked(p),
      onPacketLost: (p) => this.sender.onPacketLost(p),
    });
    this.window = this.newReceiveWindow();
    this.streams = new StreamTable(this.config.streamIdWindow);
    const now = this.clock.now();
    this.sender = new MuxSender(link, this.config, this.acks, this.recovery, this.cc, {
      myEpoch: () => this.epochs.mine,
      peerEpoch: () => this.epochs.peer,
      advertisedWindow: () => this.window.advertised,
      drop: (reason) => this.drop(reason),
    }, datagram, now);
    this.lastReceivedAt = now;
    this.busySince = now;
  }

  // ================================================================ public API

  /** Opens a stream; the peer sees `request` (at most MAX_REQUEST_BYTES) and accepts or refuses. */
  open(request: Uint8Array = new Uint8Array(0)): Stream {
    if (this.closedError) throw this.closedError;
    if (this.peerClosed) throw this.peerClosed;
    if (request.length > MAX_REQUEST_BYTES) throw new RangeError(`open request of ${request.length} bytes exceeds ${MAX_REQUEST_BYTES}`);
    if (this.streams.outbound >= this.config.maxStreams) throw new StreamLimitError(this.config.maxStreams);
    const s = new Stream(this.host, this.streams.nextLocalId(), Uint8Array.from(request));
    if (this.isQuiet()) this.busySince = this.clock.now();
    this.streams.add(s);
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
    this.sender.onWritable();
    this.scheduleFlush();
  }

  /** Closes the mux: every stream is reset, the peer is told (once), timers stop. */
  close(reason = ""): void {
    this.destroy(ERROR_CODE.NO_ERROR, reason);
  }

  destroy(code: number = ERROR_CODE.INTERNAL, reason = ""): void {
    if (this.closedError) return;
    const err = new MuxClosedError(code, clipReason(reason), false);
    if (this.epochs.peer !== 0 && !this.peerClosed) this.sender.sendClose(code, err.reason);
    this.closedError = err;
    this.abandonAll(err);
    this.recovery.discardAll();
    this.sender.forgetControl();
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
    const c = this.c;
    const sent = this.sender.counters;
    return {
      epoch: this.epochs.mine,
      peerEpoch: this.epochs.peer,
      // In the order these counters have always been listed (operators read them as JSON).
      packetsSent: sent.packetsSent,
      packetsReceived: c.packetsReceived,
      packetsRetransmitted: sent.packetsRetransmitted,
      ackOnlyPacketsSent: sent.ackOnlyPacketsSent,
      bytesSent: sent.bytesSent,
      bytesReceived: c.bytesReceived,
      streamBytesReceived: c.streamBytesReceived,
      streamsOpened: c.streamsOpened,
      streamsAccepted: c.streamsAccepted,
      opensRefused: c.opensRefused,
      ptoFired: c.ptoFired,
      peerRestarts: c.peerRestarts,
      idleTimeouts: c.idleTimeouts,
      packetsLost: this.recovery.packetsLost,
      streamBytesSent: this.sender.streamBytesSent,
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
      pendingControlFrames: this.sender.pendingControlFrames,
      timerArmed: this.timer !== null,
      linkBlocked: this.sender.linkBlocked,
      drops: Object.fromEntries(this.drops),
    };
  }

  /** Our current epoch (random, renewed after an idle timeout). */
  get epoch(): number {
    return this.epochs.mine;
  }

  // ================================================================ what streams ask of the mux (this.host)

  private srtt(): number {
    return this.recovery.rtt.smoothed;
  }

  private wake(s: Stream): void {
    this.sender.enqueue(s);
    this.scheduleFlush();
  }

  private streamDone(s: Stream): void {
    this.streams.remove(s);
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
      this.sender.queueMaxData();
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
    switch (this.epochs.classify(h.dstEpoch, h.srcEpoch)) {
      case "stale":
        this.drop(DROP.STALE_EPOCH);
        return this.replyStale();
      case "retired_peer": return this.drop(DROP.OLD_PEER_EPOCH);
      case "first_contact":
        this.epochs.adoptPeer(h.srcEpoch);
        break;
      case "peer_restarted":
        this.peerRestarted(h.srcEpoch);
        break;
      case "current": break;
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
        if (!this.recovery.onAck(f.ranges, f.delayUs / 1000, now, this.sender.appLimited)) this.drop(DROP.BAD_ACK);
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
    this.drop(this.streams.missing(id));
    return null;
  }

  private handleOpen(wireId: number, request: Uint8Array): void {
    const id = flipId(wireId);
    if (id % 2 === 0) return this.violation(DROP.PROTOCOL, `OPEN for stream ${id}, which would be ours`);
    const mark = this.streams.markRemote(id);
    if (mark === "seen") return this.drop(DROP.DUPLICATE_OPEN);
    if (mark === "too_far") return this.drop(DROP.STREAM_ID_TOO_FAR);
    if (this.streams.inbound >= this.config.maxStreams) {
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
    this.streams.add(s);
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
      const mark = this.streams.markRemote(id);
      if (mark === "new") return this.queueControl({ type: FRAME.RESET, id, code: ERROR_CODE.NO_ERROR, finalSize: 0 });
      if (mark === "too_far") return this.drop(DROP.STREAM_ID_TOO_FAR);
      return this.drop(DROP.CLOSED_STREAM);
    }
    this.drop(this.streams.missing(id));
  }

  private handleMaxData(maximum: number): void {
    if (!this.sender.raiseCredit(maximum)) return;
    for (const s of this.streams.values()) if (!s.queued && s.hasWork(this.sender.creditLeft)) this.wake(s);
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
    this.log?.info({ from: this.epochs.peer, to: newEpoch }, "peer restarted: resetting its streams");
    this.epochs.adoptPeer(newEpoch);
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
    this.sender.forgetPeer();
    this.window = this.newReceiveWindow();
    this.receivedData = 0;
    this.streams.restartNumbering();
  }

  private abandonAll(err: Error): void {
    const all = [...this.streams.values()];
    for (const s of all) s.abandon(err);
    this.streams.clear();
    this.sender.forgetStreams();
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
    if (!this.sender.linkBlocked) this.sender.sendPackets(now);
    this.armTimer(now);
  }

  private queueControl(f: Frame): void {
    if (this.sender.queueControl(f)) this.scheduleFlush();
  }

  /** The configured mux window goes to the peer with the first stream (never at rest). */
  private grantInitialMuxCredit(): void {
    if (this.window.epochStart < 0 && this.window.maybeUpdate(this.clock.now(), this.srtt())) this.sender.queueMaxData();
  }

  private newReceiveWindow(): ReceiveWindow {
    return new ReceiveWindow(INITIAL_MUX_CREDIT, this.config.muxReceiveWindow, this.config.maxMuxReceiveWindow);
  }

  /** Teaches a peer that talks to an earlier incarnation of us our current epoch (any packet of ours does). */
  private replyStale(): void {
    const now = this.clock.now();
    if (now - this.lastStaleReply < STALE_REPLY_INTERVAL_MS) return;
    this.lastStaleReply = now;
    this.sender.requestPing();
  }

  private replyClose(): void {
    const now = this.clock.now();
    if (now - this.lastCloseReply < CLOSE_REPLY_INTERVAL_MS || !this.closedError) return;
    this.lastCloseReply = now;
    this.sender.sendClose(this.closedError.code, this.closedError.reason);
  }

  // ================================================================ timers

  private armTimer(now: number): void {
    const at = nextWakeup(now, {
      loss: this.recovery.timerDeadline,
      ack: this.acks.hasUnacked ? this.acks.ackDeadline : Infinity,
      pacing: this.sender.pacingUntil,
      keepalive: this.streams.size > 0 && !this.sender.pingPending ? this.keepaliveDeadline() : Infinity,
      idle: this.isQuiet() ? Infinity : this.idleDeadline(),
      stalled: this.sender.isStalled(),
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
      if (kind === "pto") {
        this.c.ptoFired++;
        this.sender.sendProbes();
      }
    }
    this.acks.onTimer(now);
    if (active && now >= this.keepaliveDeadline()) this.sender.requestPing();
    this.flush();
  };

  private isQuiet(): boolean {
    return isQuiet(this.streams.size, this.recovery.ackElicitingInFlight);
  }

  private idleDeadline(): number {
    return idleDeadline(this.lastReceivedAt, this.busySince, this.config.idleTimeoutMs);
  }

  private keepaliveDeadline(): number {
    return keepaliveDeadline(this.sender.lastSentAt, this.lastReceivedAt, this.epochs.mine, this.epochs.peer, this.config.keepaliveMs);
  }

  /** Nothing heard for the idle timeout: the peer is gone. Reset every stream and start a new epoch, so
   *  a peer that is in fact alive learns from our next packet that our side of its streams is gone. */
  private idleTimeout(): void {
    this.c.idleTimeouts++;
    const err = new IdleTimeoutError(this.config.idleTimeoutMs);
    this.log?.info({ idleMs: this.config.idleTimeoutMs }, "stream mux idle timeout: peer gone");
    this.abandonAll(err);
    this.resetPeerState();
    this.epochs.renew();
    this.peerClosed = null;
  }

  private drop(reason: DropReason): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }
}
