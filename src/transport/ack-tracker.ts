// What we received from the peer, for ACK frames and duplicate detection, and when to acknowledge:
// RFC 9000 section 13.2 (every second ack-eliciting packet, at once when one is missing or arrives out of
// order, otherwise after max_ack_delay).
import { MAX_ACK_RANGES_SENT, MAX_TRACKED_PN_RANGES } from "./constants.js";

export class AckTracker {
  /** Received packet numbers, inclusive ranges, highest first, flat: [high0, low0, high1, low1, ...]. */
  readonly ranges: number[] = [];
  /** Packet numbers below this count as already seen (acknowledged long ago, or forgotten). */
  private floor = 0;
  /** Highest packet number ever received (the ranges may have forgotten it). */
  private largestSeen = -1;
  /** When the largest packet number arrived (for the ACK delay field). */
  private largestAt = 0;
  /** Ack-eliciting packets received since our last ACK. */
  private unacked = 0;
  /** Something since our last ACK asks for one now (a gap, reordering, the packet count). */
  private immediate = false;
  /** When the first unacknowledged ack-eliciting packet arrived (-1: none). */
  private firstUnackedAt = -1;

  constructor(private readonly ackEvery: number, private readonly maxAckDelayMs: number) {}

  get largest(): number {
    return this.ranges.length ? this.ranges[0] : -1;
  }

  /** True when pn was seen before (a duplicate from the network, or too old to tell). */
  isDuplicate(pn: number): boolean {
    if (pn < this.floor) return true;
    const r = this.ranges;
    for (let i = 0; i < r.length; i += 2) {
      if (pn > r[i]) return false;
      if (pn >= r[i + 1]) return true;
    }
    return false;
  }

  /** Records a new (non-duplicate) packet; `ackNow`: it carried IMMEDIATE_ACK. */
  onReceived(pn: number, ackEliciting: boolean, now: number, ackNow = false): void {
    const r = this.ranges;
    const largest = this.largestSeen;
    if (pn > largest) {
      this.largestSeen = pn;
      if (r.length && pn === r[0] + 1) r[0] = pn;
      else r.unshift(pn, pn);
      this.largestAt = now;
      // A gap below the new largest: a loss or reordering the sender should hear about at once.
      if (largest >= 0 && pn > largest + 1 && ackEliciting) this.immediate = true;
    } else {
      this.insertOld(pn);
      if (ackEliciting) this.immediate = true; // out of order: the sender may be retransmitting
    }
    if (r.length > 2 * MAX_TRACKED_PN_RANGES) {
      // Forget the oldest range: anything at or below it counts as seen from now on.
      this.floor = r[r.length - 2] + 1;
      r.length -= 2;
    }
    if (!ackEliciting) return;
    if (ackNow) this.immediate = true;
    this.unacked++;
    if (this.firstUnackedAt < 0) this.firstUnackedAt = now;
    if (this.unacked >= this.ackEvery) this.immediate = true;
  }

  private insertOld(pn: number): void {
    const r = this.ranges;
    for (let i = 0; i < r.length; i += 2) {
      if (pn > r[i]) {
        // Between range i-2 (above) and range i (below), or above range 0 (handled by the caller).
        const extendsBelowAbove = i > 0 && pn === r[i - 1] - 1;
        const extendsAbove = pn === r[i] + 1;
        if (extendsBelowAbove && extendsAbove) {
          r[i - 1] = r[i + 1];
          r.splice(i, 2);
        } else if (extendsBelowAbove) r[i - 1] = pn;
        else if (extendsAbove) r[i] = pn;
        else r.splice(i, 0, pn, pn);
        return;
      }
    }
    // Below every range.
    const n = r.length;
    if (n && pn === r[n - 1] - 1) r[n - 1] = pn;
    else r.push(pn, pn);
  }

  /** The delayed-ACK timer fired, or an ACK we wrote never left: acknowledge at the next chance. */
  requestAck(): void {
    if (this.unacked > 0 || this.firstUnackedAt >= 0 || this.ranges.length) this.immediate = true;
  }

  /** Called when timers fire: the held ACK is now due. */
  onTimer(now: number): void {
    if (this.firstUnackedAt >= 0 && now >= this.firstUnackedAt + this.maxAckDelayMs) this.immediate = true;
  }

  /** An ACK should go out now (piggybacked on anything, or alone). */
  get ackNow(): boolean {
    return this.immediate;
  }

  /** There is something to acknowledge (an ACK may ride along on a packet we send anyway). */
  get hasUnacked(): boolean {
    return this.unacked > 0 || this.immediate;
  }

  /** When the delayed-ACK timer must fire, or Infinity. */
  get ackDeadline(): number {
    if (this.immediate) return 0;
    return this.firstUnackedAt < 0 ? Infinity : this.firstUnackedAt + this.maxAckDelayMs;
  }

  /** Ranges to send: at most MAX_ACK_RANGES_SENT (the newest). */
  get rangeCount(): number {
    return Math.min(this.ranges.length / 2, MAX_ACK_RANGES_SENT);
  }

  ackDelayUs(now: number): number {
    return Math.max(0, Math.round((now - this.largestAt) * 1000));
  }

  onAckSent(): void {
    this.unacked = 0;
    this.immediate = false;
    this.firstUnackedAt = -1;
  }

  /**
   * The peer acknowledged a packet carrying our ACK up to `largest`: it knows, so we stop repeating
   * those ranges (RFC 9000 section 13.2.4). Anything at or below it now counts as seen.
   */
  onAckAcked(largest: number): void {
    const r = this.ranges;
    if (largest + 1 <= this.floor) return;
    this.floor = largest + 1;
    let keep = 0;
    while (keep < r.length && r[keep + 1] > largest) keep += 2;
    if (keep < r.length && r[keep] > largest) {
      r[keep + 1] = largest + 1;
      keep += 2;
    }
    r.length = keep;
  }

  reset(): void {
    this.ranges.length = 0;
    this.floor = 0;
    this.largestSeen = -1;
    this.unacked = 0;
    this.immediate = false;
    this.firstUnackedAt = -1;
  }
}
