// The console's server-side sessions (docs/dashboard.md) for both stores: the schema each migration creates and
// the row mapping. One row per login; the session token carries its id (`sid`) across renewals, so logout, `ember
// admin delete`, `ember users disable` and a password replacement end every token of the login, on every replica
// and after a restart. The stores keep their own transactions; this file only names columns.
import type { ConsoleSession } from "./store.js";

/** SQLite migration 6. */
export const SQLITE_SESSIONS_SQL = `
  CREATE TABLE console_sessions (sid TEXT PRIMARY KEY, username TEXT NOT NULL, method TEXT NOT NULL,
    created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, ended_at INTEGER, ended_why TEXT);
  CREATE INDEX console_sessions_by_user ON console_sessions (username);
`;

/** PostgreSQL migration 7. */
export const PG_SESSIONS_SQL = `
  CREATE TABLE console_sessions (sid TEXT PRIMARY KEY, username TEXT NOT NULL, method TEXT NOT NULL,
    created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, ended_at BIGINT, ended_why TEXT);
  CREATE INDEX console_sessions_by_user ON console_sessions (username);
`;

export function sessionFromRow(r: Record<string, any>): ConsoleSession {
  return {
    sid: r.sid, username: r.username, method: r.method, createdAt: Number(r.created_at), expiresAt: Number(r.expires_at),
    ...(r.ended_at != null ? { endedAt: Number(r.ended_at), endedWhy: r.ended_why ?? "ended" } : {}),
  };
}
