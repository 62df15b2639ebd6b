// Flow control, receive side: how much the peer may send us (per stream and per mux), granted only as
// the application takes data, and grown ("auto-tuned") when the application keeps up with a fast path.
// The scheme is quic-go's: a window update goes out when half the window is used; if that half took
// less than about two round trips, the window doubles, up to its maximum. It also doubles when the peer
// sent right up to our limit since the last update: on a long lossy path the application takes data
// slowly because it waits behind each loss for a round trip, so the time rule alone kept a 600 ms,
// 1%-loss path at a 256 KiB window (1.6 Mbit/s) though the peer was always blocked on it.

/** The peer counts as blocked when its data comes within this fraction of the window of our limit. */
const BLOCKED_SLACK_FRACTION = 16;

export class ReceiveWindow {
  /** Current window: how far past what the application took the peer may send. */
  receiveWindow: number;
  /** The window never grows past this. */
  readonly maxReceiveWindow: number;
  /** Highest offset (stream) or total (mux) the peer may reach: what we last advertised. */
  advertised: number;
  /** Bytes the application has taken (or that were discarded with a reset stream). */
  consumed = 0;
  /** Auto-tuning epoch: when it started and how much was consumed then. */
  epochStart = -1;
  epochConsumed = 0;
  /** The peer sent up to (nearly) our limit during this epoch: the window, not the peer, set the pace. */
  peerBlocked = false;

  constructor(initialCredit: number, receiveWindow: number, maxReceiveWindow: number) {
    this.advertised = initialCredit;
    this.receiveWindow = receiveWindow;
    this.maxReceiveWindow = maxReceiveWindow;
  }

  /** True when an offset (stream) or total (mux) is beyond the credit we gave: a flow-control violation. */
  exceeds(end: number): boolean {
    return end > this.advertised;
  }

  /** The peer's data reached `end` (highest offset, or mux total); call once the data passed exceeds(). */
  onReceived(end: number): void {
    if (end >= this.advertised - this.receiveWindow / BLOCKED_SLACK_FRACTION) this.peerBlocked = true;
  }

  /**
   * The application took n bytes. Returns true when a new, larger limit should be advertised
   * (then `advertised` already holds it).
   */
  onConsumed(n: number, now: number, srttMs: number): boolean {
    this.consumed += n;
    return this.maybeUpdate(now, srttMs);
  }

  /** Sends the configured window at once if it is larger than the protocol's initial credit. */
  maybeUpdate(now: number, srttMs: number): boolean {
    const remaining = this.advertised - this.consumed;
    if (remaining > this.receiveWindow / 2) return false;
    this.autoTune(now, srttMs);
    const next = this.consumed + this.receiveWindow;
    if (next <= this.advertised) return false;
    this.advertised = next;
    return true;
  }

  private autoTune(now: number, srttMs: number): void {
    if (this.epochStart < 0) {
      this.startEpoch(now);
      return;
    }
    const used = this.consumed - this.epochConsumed;
    if (used <= this.receiveWindow / 2) return;
    const fraction = used / this.receiveWindow;
    const fast = now - this.epochStart < 4 * fraction * srttMs;
    if ((fast || this.peerBlocked) && this.receiveWindow < this.maxReceiveWindow) {
      this.receiveWindow = Math.min(2 * this.receiveWindow, this.maxReceiveWindow);
    }
    this.startEpoch(now);
  }

  private startEpoch(now: number): void {
    this.epochStart = now;
    this.epochConsumed = this.consumed;
    this.peerBlocked = false;
  }
}
