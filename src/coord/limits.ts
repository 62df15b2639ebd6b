// The coordination server's own limits and defaults: connection admission, request bodies, the map streams'
// resume logs, token and certificate lifetimes. What clients must agree on lives in src/wire/coord/; these only the
// server enforces (each a flag of `ember coord` or documented in docs/coord.md).
import { MAX_POLICY_BYTES } from "../policy/limits.js";
import { SERVER_NAME } from "../wire/coord/names.js";

/**
 * Admission of TCP connections (src/net/conn-guard.ts), each a flag of `ember coord`. A connection is
 * authenticated once its TLS handshake presented a client certificate the verifier accepts; until then
 * (pre-TLS, and anonymous: health, bundle, enrollment) it counts against the smaller pending budget, the
 * per-source limit and a lifetime. Authenticated connections (map streams, one per node) are never evicted.
 */
export const COORD_CONNECTION_DEFAULTS = {
  maxConnections: 20_000,
  maxPending: 1_024,
  /** Enrollment bursts from one NAT address are real: higher than the relay's. */
  maxPendingPerSource: 64,
  /** TLS handshake deadline (Node's https default is 120 s). */
  handshakeTimeoutMs: 10_000,
  /** A connection without a client certificate is closed this long after accept (an enrollment takes < 1 s). */
  anonymousTimeoutMs: 30_000,
} as const;
export type CoordConnectionLimits = { -readonly [K in keyof typeof COORD_CONNECTION_DEFAULTS]: number };

/**
 * Admission on the console's own listener (src/coord/console-listener.ts), the same guard as above. A
 * connection is authenticated once a request on it carries a valid session (or its TLS handshake presented a
 * certificate the verifier accepts); the login page, its static files and the login itself are pending.
 */
export const CONSOLE_CONNECTION_DEFAULTS = {
  /** Browsers hold a few connections each, plus one live stream per tab. */
  maxConnections: 512,
  maxPending: 256,
  /** A browser opens about 6 connections per host; an office behind one NAT address, a few browsers. */
  maxPendingPerSource: 32,
  handshakeTimeoutMs: 10_000,
  /** A connection that shows no session this long after accept is closed (browsers reconnect at once). */
  anonymousTimeoutMs: 30_000,
} as const;

/** Request bodies: enrollment/renewal/status are a few KiB; a policy file may be larger. */
export const MAX_BODY_BYTES = 64 * 1024;
/**
 * PUT /v1/admin/policy carries {"source": TEXT}: derived from the one policy limit (MAX_POLICY_BYTES, bytes of
 * source) so that any policy within it fits after JSON escaping, whose worst case is a control character:
 * 1 byte of source, 6 of JSON ("\u0001"). The 1 KiB covers the envelope and any whitespace around it.
 */
export const JSON_ESCAPE_WORST_CASE = 6;
export const MAX_POLICY_BODY_BYTES = JSON_ESCAPE_WORST_CASE * MAX_POLICY_BYTES + 1024;
/** Deltas kept per node for resuming after a reconnect, and how long a disconnected node's log is kept. */
export const RESUME_LOG_FRAMES = 256;
export const RESUME_LOG_BYTES = 256 * 1024;
export const RESUME_GRACE_MS = 5 * 60_000;
/**
 * A logged frame older than this is dropped. A node whose stream broke notices within STREAM_IDLE_MS of the last
 * byte it read and comes back within its backoff, so it misses only frames younger than that; one away longer gets
 * a full map, as after the grace time. Without it a resting node kept the last 256 frames it was sent (its team
 * mates' "online" patches from when they connected: ~5 KiB of server memory per node) for good.
 */
export const RESUME_LOG_MAX_AGE_MS = RESUME_GRACE_MS;
/**
 * Frames to a stream within this long of its last write leave together at the window's end (src/coord/
 * frame-coalescer.ts): a quiet stream's frame leaves at once, a busy one's at most this late.
 */
export const FRAME_COALESCE_MS = 50;
/** A stream whose unsent backlog exceeds this is dropped (the node resumes or gets a full map). */
export const MAX_STREAM_BACKLOG_BYTES = 8 * 1024 * 1024;
export const TOKEN_DEFAULT_TTL_MS = 60 * 60_000;
export const TOKEN_MAX_USES = 10_000;

/** Leaf TTL policy: default hours, minimum minutes (a test-only server flag lowers the minimum). */
export const CERT_DEFAULT_TTL_MS = 8 * 3_600_000;
export const CERT_MIN_TTL_MS = 5 * 60_000;

/** Names nodes may not enroll under (besides the names of the relays the server hands out). */
export const RESERVED_NAMES = new Set([SERVER_NAME]);
