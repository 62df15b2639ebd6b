// MuxSender: the mux's send path. It owns what waits to be sent (streams with work, frames no stream holds,
// credit updates, PINGs and probes), the mux-wide send credit, pacing and the link's back-pressure, and
// turns them into packets. The mux (mux.ts) decides when to send and what the peer's frames change.
//
// sendPackets, in stage order:
//   1. stop if the link's payload is too small to work with; follow a change in its size
//   2. per packet: ACK if one is owed, then mux credit and queued refusals, then streams round-robin
//      (each: control frames, lost data, new data), within congestion window, pacing and flow credit
//   3. a refused send puts every frame back (unsend); nothing is reported sent that was not
import type { AckTracker } from "./ack-tracker.js";
import type { CongestionController } from "./congestion.js";
import { DROP, FRAME, INITIAL_MUX_CREDIT, MIN_FRAME_ROOM, MIN_PAYLOAD, PROBES_PER_PTO, type DropReason } from "./constants.js";
import { ackFrameSize, frameSize, PacketWriter, writeAck } from "./encode.js";
import type { Frame } from "./frames.js";
import type { DatagramLink } from "./link.js";
import type { TransportConfig } from "./options.js";
import { Pacer } from "./pacer.js";
import type { LossRecovery } from "./recovery.js";
import { NEW_DATA, RETRANSMISSION, SentFrame, SentPacket } from "./sent.js";
import type { Stream } from "./stream.js";

/** What the sender asks of its mux. */
export interface SenderHost {
  /** Our epoch and the peer's, for each packet's header. */
  myEpoch(): number;
  peerEpoch(): number;
  /** The mux-wide receive window we advertise (what MAX_DATA carries). */
  advertisedWindow(): number;
  drop(reason: DropReason): void;
}

/** The send path's counters (MuxStats). */
export interface SenderCounters {
  packetsSent: number;
  packetsRetransmitted: number;
  ackOnlyPacketsSent: number;
  bytesSent: number;
}

export class MuxSender {
  private readonly writer = new PacketWriter();
  private readonly pacer = new Pacer();
  /** The link payload size the congestion controller was last told. */
  private datagram: number;

  // Mux-wide flow control (sending side).
  /** Peer's MAX_DATA: total new stream bytes we may send. */
  private sendCredit = INITIAL_MUX_CREDIT;
  /** New stream bytes sent (retransmissions not counted). */
  private sentData = 0;
  /** Stream bytes sent in earlier peer epochs (sentData restarts with the mux-wide credit). */
  private sentDataBefore = 0;

  // Work queues.
  private sendQueue: Stream[] = [];
  /** Frames no stream holds: REFUSE, RESET for a stream we never had. */
  private controlQueue: Frame[] = [];
  private maxDataPending = false;
  private pingWanted = false;
  private probes = 0;

  private pacedUntil = 0;
  private sentAt: number;
  private blocked = false;
  /**
   * The window is not what limits us (nothing to send, or the link is full): ACKs then do not grow it
   * (RFC 9002 section 7.8), or a fast link's back-pressure would inflate it without bound.
   */
  private limitedByApp = true;
  private readonly c: SenderCounters = { packetsSent: 0, packetsRetransmitted: 0, ackOnlyPacketsSent: 0, bytesSent: 0 };

  constructor(
    private readonly link: DatagramLink,
    private readonly config: TransportConfig,
    private readonly acks: AckTracker,
    private readonly recovery: LossRecovery,
    private readonly cc: CongestionController,
    private readonly host: SenderHost,
    datagram: number,
    now: number,
  ) {
    this.datagram = datagram;
    this.sentAt = now;
  }

  // ================================================================ state the mux reads

  /** The link said it is full; nothing is sent until onWritable(). */
  get linkBlocked(): boolean {
    return this.blocked;
  }

  get appLimited(): boolean {
    return this.limitedByApp;
  }

  /** Pacing held a packet back until then (0 when it did not in the last run). */
  get pacingUntil(): number {
    return this.pacedUntil;
  }

  /** When a packet last went out (CLOSE aside). */
  get lastSentAt(): number {
    return this.sentAt;
  }

  get pingPending(): boolean {
    return this.pingWanted;
  }

  /** Mux-wide send credit not yet used. */
  get creditLeft(): number {
    return this.sendCredit - this.sentData;
  }

  /** Unique stream payload bytes sent, each counted once, across peer epochs. */
  get streamBytesSent(): number {
    return this.sentData + this.sentDataBefore;
  }

  get pendingControlFrames(): number {
    return this.controlQueue.length;
  }

  get counters(): Readonly<SenderCounters> {
    return this.c;
  }

  /** Data waits that no ACK will wake: nothing in flight, the link neither full nor too small. */
  isStalled(): boolean {
    return !this.blocked && this.recovery.bytesInFlight === 0 && this.link.maxPayload() >= MIN_PAYLOAD && this.hasElicitingWork();
  }

  // ================================================================ what waits to be sent

  /** The stream has frames to send: it joins the round-robin (once). */
  enqueue(s: Stream): void {
    if (!s.queued && !s.isForgotten) {
      s.queued = true;
      this.sendQueue.push(s);
    }
  }

  /** Queues a frame no stream holds; false (counted) when the backlog is full. */
  queueControl(f: Frame): boolean {
    if (this.controlQueue.length >= this.config.maxRefusalBacklog) {
      this.host.drop(DROP.REFUSAL_BACKLOG);
      return false;
    }
    this.controlQueue.push(f);
    return true;
  }

  /** Our receive window grew: the peer hears of it in the next packet. */
  queueMaxData(): void {
    this.maxDataPending = true;
  }

  /** Any packet will do (a keepalive, or teaching a peer our epoch): a PING if nothing else goes. */
  requestPing(): void {
    this.pingWanted = true;
  }

  /** The peer's MAX_DATA: true when that unblocks streams the mux must wake (it holds them all). */
  raiseCredit(maximum: number): boolean {
    if (maximum <= this.sendCredit) return false;
    const wasBlocked = this.sentData >= this.sendCredit;
    this.sendCredit = maximum;
    return wasBlocked || this.sendQueue.length === 0;
  }

  /** The link drained after send() returned false. */
  onWritable(): void {
    this.blocked = false;
  }

  /** Every stream is gone (abandoned): none waits to send. */
  forgetStreams(): void {
    this.sendQueue = [];
  }

  /** The mux closed: queued refusals and resets are not sent. */
  forgetControl(): void {
    this.controlQueue = [];
  }

  /** The peer's incarnation is gone: its credit, and everything queued for it. */
  forgetPeer(): void {
    this.sentDataBefore += this.sentData;
    this.sentData = 0;
    this.sendCredit = INITIAL_MUX_CREDIT;
    this.maxDataPending = false;
    this.controlQueue = [];
    this.sendQueue = [];
    this.pingWanted = false;
    this.probes = 0;
  }

  // ================================================================ what happened to sent packets

  onPacketAcked(p: SentPacket): void {
    if (p.ackLargest >= 0) this.acks.onAckAcked(p.ackLargest);
    const frames = p.frames;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i];
      if (f.stream) f.stream.onFrameAcked(f);
    }
  }

  onPacketLost(p: SentPacket): void {
    const frames = p.frames;
    for (let i = 0; i < frames.length; i++) this.requeue(frames[i]);
  }

  /** RFC 9002 section 6.2.4: send probes; with nothing new to send, they carry the oldest unacknowledged data again. */
  sendProbes(): void {
    this.probes = PROBES_PER_PTO;
    const oldest = this.recovery.oldestUnacked();
    if (oldest) for (const f of oldest.frames) this.requeue(f);
  }

  /** A frame's packet was lost (or is being probed again): send again what still matters. */
  private requeue(f: SentFrame): void {
    if (f.stream) return f.stream.onFrameLost(f);
    switch (f.type) {
      case FRAME.MAX_DATA:
        if (f.value === this.host.advertisedWindow()) this.maxDataPending = true;
        return;
      case FRAME.REFUSE:
      case FRAME.RESET:
        if (f.frame && this.controlQueue.length < 2 * this.config.maxRefusalBacklog) this.controlQueue.push(f.frame);
        return;
    }
  }

  // ================================================================ sending

  /** Sends what the window, pacing and the link allow. */
  sendPackets(now: number): void {
    const maxPayload = this.link.maxPayload();
    if (maxPayload < MIN_PAYLOAD) {
      if (this.hasElicitingWork() || this.acks.ackNow) this.host.drop(DROP.PAYLOAD_TOO_SMALL);
      return;
    }
    if (maxPayload !== this.datagram) {
      this.datagram = maxPayload;
      this.cc.setDatagramSize(maxPayload);
    }
    this.pacer.configure(this.cc.window, this.recovery.rtt.smoothed, maxPayload);
    this.pacedUntil = 0;
    for (;;) {
      let eliciting = this.hasElicitingWork();
      if (!eliciting && !this.acks.ackNow) {
        this.limitedByApp = this.recovery.bytesInFlight < this.cc.window / 2;
        return;
      }
      if (eliciting && this.probes === 0) {
        if (this.recovery.bytesInFlight >= this.cc.window) {
          eliciting = false;
          this.limitedByApp = false;
        } else if (this.config.pacing) {
          // A wait too small to move the clock (tokens a rounding error short) is no wait: armed for "now",
          // no timer would fire, and the sender stalled until the next ACK (600 ms on a satellite link).
          const until = now + this.pacer.delay(now, maxPayload);
          if (until > now) {
            eliciting = false;
            this.pacedUntil = until;
          }
        }
      }
      if (!eliciting && !this.acks.ackNow) return;
      if (!this.sendPacket(now, maxPayload, eliciting)) return;
      if (!eliciting) return;
    }
  }

  private hasElicitingWork(): boolean {
    if (this.maxDataPending || this.controlQueue.length > 0 || this.pingWanted || this.probes > 0) return true;
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
    w.begin(this.host.myEpoch(), this.host.peerEpoch(), pn, maxPayload - 1);
    const p = new SentPacket();
    const out = p.frames;
    let ackWritten = false;
    if (this.acks.hasUnacked || this.acks.ackNow) ackWritten = this.writeAckFrame(p, now);
    if (eliciting) {
      if (this.maxDataPending) {
        const f = { type: FRAME.MAX_DATA, maximum: this.host.advertisedWindow() } as const;
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
      if (out.length === 0 && (this.pingWanted || this.probes > 0)) {
        w.write({ type: FRAME.PING });
        out.push(new SentFrame(FRAME.PING, null, 0, 0, false, null));
      }
      if (out.length > 0) {
        this.pingWanted = false;
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
      this.blocked = true;
      this.limitedByApp = true;
      this.unsend(p, ackWritten);
      return false;
    }
    this.c.packetsSent++;
    this.c.bytesSent += bytes.length;
    this.sentAt = now;
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
      if (f.type === FRAME.PING) this.pingWanted = true;
      else if (f.type === FRAME.MAX_DATA) this.maxDataPending = true;
      else if (f.frame) this.controlQueue.unshift(f.frame);
    }
  }

  /** CLOSE goes alone in a packet, once; it is not acknowledged or retransmitted. */
  sendClose(code: number, reason: string): void {
    const maxPayload = this.link.maxPayload();
    if (maxPayload < MIN_PAYLOAD) return;
    const w = this.writer;
    const pn = this.recovery.nextPn;
    w.begin(this.host.myEpoch(), this.host.peerEpoch(), pn, maxPayload);
    w.write({ type: FRAME.CLOSE, code, reason });
    if (this.link.send(w.finish())) {
      this.recovery.onPacketSent(null, pn);
      this.c.packetsSent++;
    }
  }
}
