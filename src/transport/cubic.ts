// CUBIC (RFC 9438): the window follows W(t) = C * (t - K)^3 + W_max after a reduction, with the
// Reno-friendly estimate as a floor, fast convergence, and slow start / recovery as in NewReno.
import { initialWindow, minimumWindow, type CongestionController } from "./congestion.js";

/** RFC 9438 section 4.6 / 5: multiplicative decrease factor and the cubic constant (segments, seconds). */
const BETA = 0.7;
const C = 0.4;
/** Reno-friendly additive increase so the average matches Reno's with beta 0.5 (RFC 9438 section 4.3). */
const ALPHA = (3 * (1 - BETA)) / (1 + BETA);

export class Cubic implements CongestionController {
  readonly name = "cubic";
  window: number;
  ssthresh = Infinity;
  private recoveryStart = -Infinity;
  /** Window before the last reduction, in segments, and the one before that (fast convergence). */
  private wMax = 0;
  private wLastMax = 0;
  /** Start of the current congestion-avoidance epoch (ms), and K (seconds) for it. */
  private epochStart = -1;
  private k = 0;
  /** Reno-friendly window estimate, in segments. */
  private wEst = 0;

  constructor(private datagram: number) {
    this.window = initialWindow(datagram);
  }

  onAcked(bytes: number, timeSent: number, now: number, srtt: number, appLimited: boolean): void {
    if (timeSent <= this.recoveryStart) return;
    if (appLimited) {
      // RFC 9438 section 5.8: do not let the cubic clock run while the window is not used.
      if (this.epochStart >= 0) this.epochStart = -1;
      return;
    }
    if (this.window < this.ssthresh) {
      this.window += bytes;
      return;
    }
    const mss = this.datagram;
    const cwnd = this.window / mss;
    if (this.epochStart < 0) {
      this.epochStart = now;
      if (this.wMax <= cwnd) {
        this.k = 0;
        this.wMax = cwnd;
      } else {
        this.k = Math.cbrt((this.wMax - cwnd) / C);
      }
      this.wEst = cwnd;
    }
    const t = (now - this.epochStart + srtt) / 1000;
    let target = C * (t - this.k) ** 3 + this.wMax;
    target = Math.min(Math.max(target, cwnd), 1.5 * cwnd);
    this.wEst += (ALPHA * (bytes / mss)) / cwnd;
    const next = this.wEst > target ? this.wEst : cwnd + ((target - cwnd) / cwnd) * (bytes / mss);
    this.window = Math.max(Math.round(next * mss), this.window);
  }

  onCongestionEvent(timeSent: number, now: number): void {
    if (timeSent <= this.recoveryStart) return;
    this.recoveryStart = now;
    const cwnd = this.window / this.datagram;
    // Fast convergence: a flow whose peak keeps falling gives up bandwidth sooner.
    this.wMax = cwnd < this.wLastMax ? (cwnd * (1 + BETA)) / 2 : cwnd;
    this.wLastMax = cwnd;
    this.ssthresh = Math.max(Math.floor(this.window * BETA), minimumWindow(this.datagram));
    this.window = this.ssthresh;
    this.epochStart = -1;
  }

  onPersistentCongestion(): void {
    this.window = minimumWindow(this.datagram);
    this.recoveryStart = -Infinity;
    this.epochStart = -1;
  }

  setDatagramSize(bytes: number): void {
    this.datagram = bytes;
    this.window = Math.max(this.window, minimumWindow(bytes));
  }

  reset(): void {
    this.window = initialWindow(this.datagram);
    this.ssthresh = Infinity;
    this.recoveryStart = -Infinity;
    this.wMax = this.wLastMax = 0;
    this.epochStart = -1;
  }
}
