// The coordination server's HTTPS API as every client sees it (nodes, admins, relays): paths and the server's
// own identity. Here rather than in src/coord so that relay/ can talk to the server without importing it.
import type { ExpectedServer } from "../pki/mtls-client.js";

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
} as const;

/** The coordination server's own identity: clients refuse any other server certificate. */
export const SERVER_NAME = "coord";
export const SERVER_ROLE = "server";
export const COORD_SERVER: ExpectedServer = { name: SERVER_NAME, role: SERVER_ROLE, description: "coordination server" };

/**
 * A replica that cannot use its store now (PostgreSQL down or restarting, SQLite busy or its disk failing) answers
 * 503 with this code, a Retry-After header and `retryAfterS` in the body; clients try the next replica.
 */
export const STORE_UNAVAILABLE = "store_unavailable";
/** A PostgreSQL restart refused writes for 100-150 ms here; one second is Retry-After's smallest step. */
export const STORE_RETRY_AFTER_S = 1;
