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
  tickMs: number;
  /**
   * Not a timer: INITs per second (with a valid mac1) above which the node is "under load" and wants a cookie
   * (mac2) before any public-key work (docs/crypto.md). Here so tests can move it through EMBER_TEST_TIMERS.
   */
  handshakeUnderLoadPerS: number;
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
  tickMs: 250,
  handshakeUnderLoadPerS: HANDSHAKE_UNDER_LOAD_PER_S,
};
