// A token-bucket pacer (RFC 9002 section 7.7): packets leave at PACING_GAIN * cwnd / srtt, with a burst of
// at least BURST_PACKETS datagrams or one timer tick's worth, so a full window never leaves in one burst but
// a coarse (1 ms) timer does not cap the rate either.
import { PACING_GAIN } from "./constants.js";

const BURST_PACKETS = 10;
/** Real timers fire no sooner than about a millisecond: the bucket holds two ticks of sending. */
const TIMER_TICK_MS = 2;

export class Pacer {
  private tokens = 0;
  private last = -1;
  private rate = 0;
  private burst = 0;

  /** Recomputes the rate from the window and RTT; call before asking. */
  configure(window: number, srttMs: number, datagram: number): void {
    this.rate = (PACING_GAIN * window) / Math.max(srttMs, 0.001);
    this.burst = Math.max(BURST_PACKETS * datagram, this.rate * TIMER_TICK_MS);
  }

  /** Milliseconds until `bytes` may be sent (0 = now). */
  delay(now: number, bytes: number): number {
    this.refill(now);
    if (this.tokens >= bytes) return 0;
    return (bytes - this.tokens) / this.rate;
  }

  onSent(now: number, bytes: number): void {
    this.refill(now);
    this.tokens -= bytes;
  }

  private refill(now: number): void {
    if (this.last < 0) this.tokens = this.burst;
    else this.tokens = Math.min(this.burst, this.tokens + (now - this.last) * this.rate);
    this.last = now;
  }
}
