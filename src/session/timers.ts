// Session timing. Defaults follow WireGuard's (whitepaper section 6); tests shorten them per device.
import {
  HANDSHAKE_UNDER_LOAD_PER_S, KEEPALIVE_TIMEOUT_MS, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME_MS, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME_MS, REKEY_TIMEOUT_MS,
} from "./crypto-adapter.js";

export interface SessionTimers {
  /** Start a new handshake once the current keys are this old (initiator side; responder a little later). */
  rekeyAfterTimeMs: number;
  /** Never use keys older than this, for sending or receiving. */
  rejectAfterTimeMs: number;
  rekeyAfterMessages: number;
  rejectAfterMessages: number;
  /** First handshake retry; doubles per attempt up to handshakeBackoffMaxMs. */
  handshakeTimeoutMs: number;
  handshakeBackoffMaxMs: number;
  /** Send a keepalive when nothing was sent for this long (holds NAT mappings, proves liveness). */
  keepaliveMs: number;
  /** No authenticated packet for this long: the session is dead; drop its keys and re-handshake. */
  deadAfterMs: number;
  /**
   * No application data either way for this long: the peer is idle (at rest). An idle peer gets no keepalive,
   * no dead-peer check, no time-based rekey and no reconnect: its keys may simply expire, and the first packet
   * after the rest starts whatever is needed (docs/sessions.md "At rest").
   */
  idleAfterMs: number;
  tickMs: number;
  /**
   * Not a timer: INITs per second (with a valid mac1) above which the node is "under load" and wants a cookie
   * (mac2) before any public-key work (docs/crypto.md). Here so tests can move it through EMBER_TEST_TIMERS.
   */
  handshakeUnderLoadPerS: number;
  /** Timer period while every peer is at rest (nothing to retry, nothing waiting): a few wake-ups a minute. */
  restTickMs: number;
}

export const DEFAULT_TIMERS: SessionTimers = {
  rekeyAfterTimeMs: REKEY_AFTER_TIME_MS,
  rejectAfterTimeMs: REJECT_AFTER_TIME_MS,
  rekeyAfterMessages: REKEY_AFTER_MESSAGES,
  rejectAfterMessages: REJECT_AFTER_MESSAGES,
  handshakeTimeoutMs: REKEY_TIMEOUT_MS,
  handshakeBackoffMaxMs: 30_000,
  keepaliveMs: KEEPALIVE_TIMEOUT_MS,
  deadAfterMs: 3 * KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS,
  idleAfterMs: 45_000,
  tickMs: 250,
  handshakeUnderLoadPerS: HANDSHAKE_UNDER_LOAD_PER_S,
  restTickMs: 5_000,
};

/**
 * Idle bound, 45 s: long enough that an interactive session (a shell, a dashboard refreshing every 30 s) stays
 * active between its bursts, short enough that a quiet mesh goes quiet within the first minute. Tailscale
 * stops its path heartbeats after the same 45 s (sessionActiveTimeout).
 */
export const IDLE_AFTER_MS = DEFAULT_TIMERS.idleAfterMs;

/** Whether a peer is at rest: no application data sent or received for idleAfterMs. */
export function isIdle(lastDataAt: number, now: number, t: Pick<SessionTimers, "idleAfterMs">): boolean {
  return now - lastDataAt >= t.idleAfterMs;
}
