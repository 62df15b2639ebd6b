// Loss detection and probe timeouts (RFC 9002 sections 5 to 7, appendix A): which sent packets are
// acknowledged or lost, the RTT samples that ACKs give, and the congestion controller's inputs. What a
// packet carried is the mux's business: it hears about each acknowledged or lost packet through hooks.
import {
  GRANULARITY_MS, MAX_PTO_BACKOFF, MAX_PTO_MS, PACKET_THRESHOLD, PERSISTENT_CONGESTION_THRESHOLD, TIME_THRESHOLD_DEN, TIME_THRESHOLD_NUM,
} from "./constants.js";
import type { CongestionController } from "./congestion.js";
import { LossRate } from "./loss-rate.js";
import { RttEstimator } from "./rtt.js";
import type { SentPacket } from "./sent.js";

export interface RecoveryHooks {
  onPacketAcked(p: SentPacket): void;
  onPacketLost(p: SentPacket): void;
}

export type TimeoutKind = "none" | "loss" | "pto";

export class LossRecovery {
  readonly rtt: RttEstimator;
  /** Sent packets from the oldest one not yet acknowledged or lost, indexed by pn - base; null = settled or never tracked. */
  private sent: (SentPacket | null)[] = [];
  private head = 0;
  private base = 0;
  /** Next packet number the mux will use (packets below it were sent or skipped). */
  nextPn = 0;
  bytesInFlight = 0;
  ackElicitingInFlight = 0;
  largestAcked = -1;
  /** Consecutive probe timeouts without an acknowledgement (the PTO backoff exponent). */
  ptoCount = 0;
  /** Earliest time a packet not yet over the packet threshold will count as lost (time threshold), or Infinity. */
  private lossTime = Infinity;
  private lastAckElicitingSentAt = -Infinity;
  /** The last ack-eliciting packet asked for an immediate ACK: the probe timeout need not wait max_ack_delay. */
  private lastAckElicitingImmediate = false;
  /** When the first RTT sample was taken: persistent congestion only counts packets sent after it. */
  private firstSampleAt = -Infinity;
  packetsLost = 0;
  persistentCongestionEvents = 0;
  /** Losses the controller was not told of: too few over the last round trips to mean a queue. */
  randomLossEvents = 0;
  private readonly lossRate = new LossRate();

  constructor(
    initialRttMs: number,
    private readonly maxAckDelayMs: number,
    private readonly cc: CongestionController,
    private readonly hooks: RecoveryHooks,
  ) {
    this.rtt = new RttEstimator(initialRttMs);
  }

  onPacketSent(p: SentPacket | null, pn: number): void {
    // Keep the index dense: one slot per packet number, null for packets we do not track (ACK-only).
    this.sent.push(p);
    this.nextPn = pn + 1;
    if (!p) return;
    if (p.inFlight) this.bytesInFlight += p.size;
    if (p.ackEliciting) {
      this.ackElicitingInFlight++;
      this.lastAckElicitingSentAt = p.timeSent;
      this.lastAckElicitingImmediate = p.immediateAck;
    }
  }

  /**
   * Processes an ACK frame's ranges (inclusive, highest first). Returns false for an ACK of a packet never
   * sent (the frame is then ignored). appLimited: the sender had nothing more to send lately.
   */
  onAck(ranges: readonly number[], ackDelayMs: number, now: number, appLimited: boolean): boolean {
    const largest = ranges[0];
    if (largest >= this.nextPn) return false;
    let newlyAckedLargest: SentPacket | null = null;
    let anyAckEliciting = false;
    let ackedCount = 0;
    for (let r = 0; r < ranges.length; r += 2) {
      const hi = Math.min(ranges[r], this.base + (this.sent.length - this.head) - 1);
      const lo = Math.max(ranges[r + 1], this.base);
      for (let pn = lo; pn <= hi; pn++) {
        const p = this.sent[this.head + (pn - this.base)];
        if (!p) continue;
        this.sent[this.head + (pn - this.base)] = null;
        ackedCount++;
        if (pn === largest) newlyAckedLargest = p;
        if (p.ackEliciting) {
          anyAckEliciting = true;
          this.ackElicitingInFlight--;
        }
        if (p.inFlight) {
          this.bytesInFlight -= p.size;
          this.cc.onAcked(p.size, p.timeSent, now, this.rtt.smoothed, appLimited);
        }
        this.hooks.onPacketAcked(p);
      }
    }
    if (largest > this.largestAcked) this.largestAcked = largest;
    if (ackedCount) this.lossRate.onAcked(ackedCount, largest, this.nextPn);
    // RTT sample only from the largest acknowledged, when it is new and ack-eliciting (RFC 9002 section 5.1).
    if (newlyAckedLargest && anyAckEliciting && newlyAckedLargest.ackEliciting) {
      if (!this.rtt.hasSample) this.firstSampleAt = now;
      this.rtt.update(now - newlyAckedLargest.timeSent, ackDelayMs, this.maxAckDelayMs);
    }
    if (newlyAckedLargest || anyAckEliciting) this.ptoCount = 0;
    this.detectLost(now);
    this.advanceHead();
    return true;
  }

  /** RFC 9002 section 6.1: packet and time thresholds, against the largest acknowledged packet. */
  private detectLost(now: number): void {
    this.lossTime = Infinity;
    if (this.largestAcked < 0) return;
    const lossDelay = this.rtt.lossDelay(TIME_THRESHOLD_NUM, TIME_THRESHOLD_DEN);
    const end = Math.min(this.largestAcked, this.nextPn - 1);
    let firstLost: SentPacket | null = null;
    let lastLost: SentPacket | null = null;
    let latestLostTime = -Infinity;
    let lostCount = 0;
    // An acknowledged packet between lost ones breaks a persistent-congestion period.
    let contiguous = true;
    for (let pn = this.base; pn <= end; pn++) {
      const i = this.head + (pn - this.base);
      const p = this.sent[i];
      if (!p) continue;
      // Same expression as the timer below (timeSent + lossDelay), so a timer that fires always finds its packet lost.
      if (p.timeSent + lossDelay <= now || this.largestAcked >= pn + PACKET_THRESHOLD) {
        this.sent[i] = null;
        this.packetsLost++;
        lostCount++;
        if (p.inFlight) this.bytesInFlight -= p.size;
        if (p.ackEliciting) {
          this.ackElicitingInFlight--;
          if (p.timeSent > this.firstSampleAt) {
            if (!firstLost) firstLost = p;
            lastLost = p;
          }
        }
        if (p.timeSent > latestLostTime) latestLostTime = p.timeSent;
        this.hooks.onPacketLost(p);
      } else {
        if (firstLost) contiguous = false;
        this.lossTime = Math.min(this.lossTime, p.timeSent + lossDelay);
      }
    }
    if (latestLostTime === -Infinity) return;
    this.lossRate.onLost(lostCount);
    if (this.lossRate.congestive()) this.cc.onCongestionEvent(latestLostTime, now);
    else this.randomLossEvents++;
    if (firstLost && lastLost && contiguous && this.rtt.hasSample) {
      const period = (this.rtt.smoothed + Math.max(4 * this.rtt.variance, GRANULARITY_MS) + this.maxAckDelayMs) * PERSISTENT_CONGESTION_THRESHOLD;
      if (lastLost.timeSent - firstLost.timeSent > period) {
        this.persistentCongestionEvents++;
        this.cc.onPersistentCongestion();
      }
    }
  }

  /** When the loss-detection timer must fire (loss time or PTO), or Infinity. */
  get timerDeadline(): number {
    if (this.lossTime !== Infinity) return this.lossTime;
    if (this.ackElicitingInFlight === 0) return Infinity;
    return this.lastAckElicitingSentAt + this.ptoDuration();
  }

  /**
   * RFC 9002's probe timeout, with backoff. It includes the peer's max_ack_delay unless the last packet asked
   * for an immediate ACK (IMMEDIATE_ACK, as draft-ietf-quic-ack-frequency allows): then a silent peer is
   * noticed one RTT sooner, which matters most on short paths, where 25 ms is many round trips.
   */
  ptoDuration(): number {
    const ackDelay = this.lastAckElicitingImmediate ? 0 : this.maxAckDelayMs;
    const base = this.rtt.pto(ackDelay);
    return Math.min(base * 2 ** Math.min(this.ptoCount, MAX_PTO_BACKOFF), Math.max(base, MAX_PTO_MS));
  }

  /** The timer fired: declare time-threshold losses, or count a probe timeout (the mux then sends probes). */
  onTimeout(now: number): TimeoutKind {
    if (this.lossTime !== Infinity && this.lossTime <= now) {
      this.detectLost(now);
      this.advanceHead();
      return "loss";
    }
    if (this.ackElicitingInFlight > 0 && this.lastAckElicitingSentAt + this.ptoDuration() <= now) {
      this.ptoCount++;
      return "pto";
    }
    return "none";
  }

  /** The oldest packet still in flight that carries something worth resending (for probes). */
  oldestUnacked(): SentPacket | null {
    for (let i = this.head; i < this.sent.length; i++) {
      const p = this.sent[i];
      if (p && p.ackEliciting) return p;
    }
    return null;
  }

  /** Forgets every packet in flight without declaring anything (the peer restarted or is gone). */
  discardAll(): void {
    this.sent = [];
    this.head = 0;
    this.base = this.nextPn;
    this.bytesInFlight = 0;
    this.ackElicitingInFlight = 0;
    this.largestAcked = -1;
    this.lossTime = Infinity;
    this.ptoCount = 0;
    this.lastAckElicitingSentAt = -Infinity;
    this.lossRate.reset();
  }

  /** Packets tracked, settled ones included (a bound the tests check). */
  get trackedSlots(): number {
    return this.sent.length - this.head;
  }

  private advanceHead(): void {
    const s = this.sent;
    while (this.head < s.length && s[this.head] === null) {
      this.head++;
      this.base++;
    }
    if (this.head === s.length) {
      s.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > s.length) {
      this.sent = s.slice(this.head);
      this.head = 0;
    }
  }
}
