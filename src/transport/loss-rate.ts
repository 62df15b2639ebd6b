// Telling congestion from random loss: the share of packets lost over the last two round trips. Rounds are
// counted by packet number: a round ends when a packet sent after it began is acknowledged. Loss recovery
// feeds it every settled packet; the congestion controller hears of a loss only when the share says queue.
import { CONGESTIVE_LOSS_RATE, CONGESTIVE_LOSS_SIGMAS } from "./constants.js";

export class LossRate {
  /** The first packet number of the next round: when a packet at or past it is acknowledged, a round ends. */
  private roundEnd = 0;
  private acked = 0;
  private lost = 0;
  private prevAcked = 0;
  private prevLost = 0;

  /** Packets acknowledged by one ACK, the largest of them, and the next packet number to be sent. */
  onAcked(count: number, largest: number, nextPn: number): void {
    if (largest >= this.roundEnd) {
      this.prevAcked = this.acked;
      this.prevLost = this.lost;
      this.acked = this.lost = 0;
      this.roundEnd = nextPn;
    }
    this.acked += count;
  }

  onLost(count: number): void {
    this.lost += count;
  }

  /** Whether the losses so far (this round and the last) are more than random loss explains. */
  congestive(): boolean {
    const lost = this.lost + this.prevLost;
    const expected = CONGESTIVE_LOSS_RATE * (lost + this.acked + this.prevAcked);
    return lost > expected + CONGESTIVE_LOSS_SIGMAS * Math.sqrt(expected);
  }

  reset(): void {
    this.roundEnd = 0;
    this.acked = this.lost = this.prevAcked = this.prevLost = 0;
  }
}
