// The coordination server's HTTPS API as every client sees it (nodes, admins, relays, edges): every path, and the
// JSON bodies of the requests and answers that nodes and the server exchange. Here, below src/coord, so that
// relay/, src/node, src/edge and src/sdk talk to the server without importing it. Map-stream frames: map.ts;
// telemetry batches: telemetry.ts; publications: edge.ts.
import type { MapService } from "./services.js";

export const PATHS = {
  health: "/v1/health",
  bundle: "/v1/bundle",
  enroll: "/v1/enroll",
  renew: "/v1/renew",
  map: "/v1/map",
  status: "/v1/status",
  revocation: "/v1/revocation",
  login: "/v1/login",
  loginDevice: "/v1/login/device",
  loginDevicePoll: "/v1/login/device/poll",
  logout: "/v1/logout",
  adminTokens: "/v1/admin/tokens",
  adminNodes: "/v1/admin/nodes",
  adminPolicy: "/v1/admin/policy",
  adminPolicyCheck: "/v1/admin/policy/check",
  adminUsers: "/v1/admin/users",
} as const;

/** Every path under this prefix needs role admin in the caller's certificate. */
export const ADMIN_PREFIX = "/v1/admin/";

/** Node telemetry (docs/telemetry.md): OAuth-style token grants, then batches. */
export const TELEMETRY_PATHS = {
  token: "/v1/oauth/token",
  telemetry: "/v1/telemetry",
} as const;

/** External access (docs/external-access.md): a node publishes its services to public edges. */
export const EDGE_PATHS = {
  /** POST {service, port, protocol, hostname?, clientAuth?, clientCaPem?}: publish the caller's service. */
  expose: "/v1/expose",
  /** POST {service}: unpublish it. */
  unexpose: "/v1/unexpose",
  /** GET: the caller's publications, each with whether it is active and why not. */
  exposed: "/v1/exposed",
  /** POST {service, ttlMs}: a bearer token for a token-authenticated publication of the caller. */
  exposeToken: "/v1/expose/token",
} as const;

/**
 * A replica that cannot use its store now (PostgreSQL down or restarting, SQLite busy or its disk failing) answers
 * 503 with this code, a Retry-After header and `retryAfterS` in the body; clients try the next replica.
 */
export const STORE_UNAVAILABLE = "store_unavailable";
/** A PostgreSQL restart refused writes for 100-150 ms here; one second is Retry-After's smallest step. */
export const STORE_RETRY_AFTER_S = 1;

/** Every refusal: a machine-readable code, a sentence for the operator, sometimes more fields. */
export interface ErrorAnswer { error: string; detail: string; [more: string]: unknown }

/** GET /v1/health (no certificate). time: the server's clock in ms, for the node's clock-skew diagnosis. */
export interface HealthAnswer { ok: true; trustDomain: string; nodes: number; time: number }
/** GET /v1/bundle (no certificate): checked by the enrolling node against its token's root pin. */
export interface BundleAnswer { bundlePem: string; trustDomain: string }

/** POST /v1/enroll (no certificate): the token, the node's chosen name and a CSR for its own key. */
export interface EnrollRequest { token: string; name: string; csr: string }
export interface EnrollAnswer {
  name: string; tenant: string; groups: string[]; certPem: string; bundlePem: string;
  /** The signed revocation list in force (JSON text). */
  revocation: string;
  certTtlMs: number; notAfter: string; overlayIp?: string;
}

/** POST /v1/renew (mTLS): a CSR for a new key under the same name. */
export interface RenewRequest { csr: string }
export interface RenewAnswer { certPem: string; bundlePem: string; notAfter: string; certTtlMs: number }

/** Status reports: bounded lists of short strings, at most one a second. */
export const MAX_ENDPOINTS = 32;
export const MAX_ENDPOINT_CHARS = 64;
export const STATUS_MIN_INTERVAL_MS = 1_000;
/** POST /v1/status (mTLS): where the node can be reached now, and the services it announces. Answer {ok: true}. */
export interface StatusReport {
  endpoints: string[]; homeRelay?: string; natType?: string; services?: MapService[];
  /** The node's protocol (src/wire/protocol.ts) and software version; absent from release 0.1.0, which is protocol 1. */
  protocol?: number; version?: string;
}
