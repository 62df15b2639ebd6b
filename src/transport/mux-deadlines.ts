// When the mux's one timer must fire: pure functions of the times and state they read. The mux arms the timer
// and acts when it fires (mux.ts, "timers"); nothing here reads a clock or changes anything.
import { GRANULARITY_MS, STALL_RECHECK_MS } from "./constants.js";

/** Nothing open and nothing waiting for the peer's answer: silence from the peer is expected. */
export function isQuiet(openStreams: number, ackElicitingInFlight: number): boolean {
  return openStreams === 0 && ackElicitingInFlight === 0;
}

/**
 * When the peer counts as gone. The idle timeout runs from the last packet received or from when the mux last
 * went from quiet to busy, whichever is later: silence while nothing was asked of the peer is rest.
 */
export function idleDeadline(lastReceivedAt: number, busySince: number, idleTimeoutMs: number): number {
  return Math.max(lastReceivedAt, busySince) + idleTimeoutMs;
}

/**
 * A PING goes out when the mux has open streams and nothing was sent or received for keepaliveMs. One
 * side pings, the other only acknowledges: the side with the lower epoch waits half as long again, so
 * the other side's PING reaches it first (it pings only if that PING never comes).
 */
export function keepaliveDeadline(
  lastSentAt: number, lastReceivedAt: number, myEpoch: number, peerEpoch: number, keepaliveMs: number,
): number {
  const interval = peerEpoch === 0 || myEpoch > peerEpoch ? keepaliveMs : 1.5 * keepaliveMs;
  return Math.max(lastSentAt, lastReceivedAt) + interval;
}

/** What the timer waits for; a deadline that does not apply right now is Infinity. */
export interface Deadlines {
  /** Loss detection or the probe timeout (LossRecovery.timerDeadline). */
  loss: number;
  /** An ACK we owe must go by then. */
  ack: number;
  /** Pacing holds the next packet until then (a time at or before now holds nothing back). */
  pacing: number;
  /** A keepalive PING is due (only with open streams and no PING already pending). */
  keepalive: number;
  /** The peer counts as gone (only while the mux is not quiet). */
  idle: number;
  /** Data waits that no ACK will wake: nothing in flight, the link neither full nor too small. */
  stalled: boolean;
}

/** When the timer must next fire, or Infinity when nothing is pending (no timer at rest). */
export function nextWakeup(now: number, d: Deadlines): number {
  let at = Math.min(d.loss, d.ack, d.keepalive, d.idle);
  if (d.pacing > now) at = Math.min(at, d.pacing);
  // Look again soon: a pacing wait lost to rounding once left a transfer under 20% loss moving only on
  // keepalives (CI, issue 24).
  if (d.stalled) at = Math.min(at, now + STALL_RECHECK_MS);
  if (at === Infinity) return Infinity;
  // A deadline already past is work this flush could not do (window full, link blocked): look again
  // a tick later rather than spin.
  return at <= now ? now + GRANULARITY_MS : at;
}
