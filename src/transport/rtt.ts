// Round-trip time estimation: RFC 9002 section 5 (RFC 6298's smoothed RTT and variance, with QUIC's
// min_rtt and the peer's acknowledgement delay taken out of samples).
import { GRANULARITY_MS } from "./constants.js";

export class RttEstimator {
  /** Most recent sample, ms. */
  latest = 0;
  /** Smoothed RTT (RFC 6298 SRTT), ms. */
  smoothed: number;
  /** RTT variation (RFC 6298 RTTVAR), ms. */
  variance: number;
  /** Lowest sample seen, ms (never adjusted for ack delay). */
  min = Infinity;
  hasSample = false;

  constructor(private readonly initialRttMs: number) {
    this.smoothed = initialRttMs;
    this.variance = initialRttMs / 2;
  }

  /**
   * One sample: the time from sending the largest newly acknowledged packet to its ACK, and the delay the
   * peer says it held the ACK (capped at maxAckDelay: a peer cannot make us think the path is faster).
   */
  update(latestMs: number, ackDelayMs: number, maxAckDelayMs: number): void {
    this.latest = latestMs;
    if (!this.hasSample) {
      this.hasSample = true;
      this.min = latestMs;
      this.smoothed = latestMs;
      this.variance = latestMs / 2;
      return;
    }
    this.min = Math.min(this.min, latestMs);
    const ackDelay = Math.min(ackDelayMs, maxAckDelayMs);
    // Subtract the ack delay only when what is left is still plausible (not below min_rtt).
    const adjusted = latestMs >= this.min + ackDelay ? latestMs - ackDelay : latestMs;
    this.variance = 0.75 * this.variance + 0.25 * Math.abs(this.smoothed - adjusted);
    this.smoothed = 0.875 * this.smoothed + 0.125 * adjusted;
  }

  /** Probe timeout before backoff: srtt + max(4 * rttvar, granularity) + the peer's max ack delay. */
  pto(maxAckDelayMs: number): number {
    return this.smoothed + Math.max(4 * this.variance, GRANULARITY_MS) + maxAckDelayMs;
  }

  /** RFC 9002 section 6.1.2: a packet this much older than a later acknowledged one is lost. */
  lossDelay(numerator: number, denominator: number): number {
    return Math.max((Math.max(this.smoothed, this.latest) * numerator) / denominator, GRANULARITY_MS);
  }

  reset(): void {
    this.latest = 0;
    this.smoothed = this.initialRttMs;
    this.variance = this.initialRttMs / 2;
    this.min = Infinity;
    this.hasSample = false;
  }
}
