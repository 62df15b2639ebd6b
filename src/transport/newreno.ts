// NewReno as RFC 9002 section 7 and appendix B specify it for QUIC: slow start, congestion avoidance of
// one datagram per window per round trip, one halving per recovery period, persistent congestion.
import { LOSS_REDUCTION_FACTOR } from "./constants.js";
import { initialWindow, minimumWindow, type CongestionController } from "./congestion.js";

export class NewReno implements CongestionController {
  readonly name = "newreno";
  window: number;
  ssthresh = Infinity;
  /** Packets sent before this time are part of the current recovery period (no further reduction). */
  private recoveryStart = -Infinity;
  /** Fractional growth in congestion avoidance, so small ACKs are not rounded away. */
  private caBytes = 0;

  constructor(private datagram: number) {
    this.window = initialWindow(datagram);
  }

  onAcked(bytes: number, timeSent: number, _now: number, _srtt: number, appLimited: boolean): void {
    if (timeSent <= this.recoveryStart) return;
    if (appLimited) return;
    if (this.window < this.ssthresh) {
      this.window += bytes;
      return;
    }
    // One datagram per window of acknowledged bytes.
    this.caBytes += bytes;
    if (this.caBytes >= this.window) {
      this.caBytes -= this.window;
      this.window += this.datagram;
    }
  }

  onCongestionEvent(timeSent: number, now: number): void {
    if (timeSent <= this.recoveryStart) return;
    this.recoveryStart = now;
    this.ssthresh = Math.max(Math.floor(this.window * LOSS_REDUCTION_FACTOR), minimumWindow(this.datagram));
    this.window = this.ssthresh;
    this.caBytes = 0;
  }

  onPersistentCongestion(): void {
    this.window = minimumWindow(this.datagram);
    this.recoveryStart = -Infinity;
    this.caBytes = 0;
  }

  setDatagramSize(bytes: number): void {
    this.datagram = bytes;
    this.window = Math.max(this.window, minimumWindow(bytes));
  }

  reset(): void {
    this.window = initialWindow(this.datagram);
    this.ssthresh = Infinity;
    this.recoveryStart = -Infinity;
    this.caBytes = 0;
  }
}
