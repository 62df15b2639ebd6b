// Which handler failures mean "the store cannot serve now" rather than a bug. Those answer 503 store_unavailable
// with a Retry-After and the store's name, so an operator sees what is down and a client with several replica
// URLs tries the next one; any other failure stays a logged 500.
import { STORE_RETRY_AFTER_S, STORE_UNAVAILABLE } from "../wire/coord-api.js";
import { HttpError } from "./http.js";

/**
 * SQLSTATEs of an unreachable, restarting or overloaded PostgreSQL: class 08 (connection exception), class 53
 * (insufficient resources), admin/crash shutdown and "cannot connect now" (57P01-03), lock_timeout (55P03),
 * serialization failure and deadlock (40001, 40P01: retrying succeeds), and a read-only standby (25006).
 */
const PG_STATES = new Set(["57P01", "57P02", "57P03", "55P03", "40001", "40P01", "25006"]);
const PG_CLASSES = new Set(["08", "53"]);
/** node-postgres's own errors for a connection it lost or could not make (they carry no SQLSTATE). */
const PG_CLIENT = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed|Query read timeout)/;
/** Socket errors of the database connection. */
const SOCKET = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "EPIPE"]);
/** better-sqlite3's codes for a database another process holds, or a disk that fails or is full. */
const SQLITE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|PROTOCOL|NOMEM)/;

/** True when `err` says the store is unavailable for now (pure: looks only at the error). */
export function isStoreOutage(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = String((err as NodeJS.ErrnoException).code ?? "");
  if (/^[0-9A-Z]{5}$/.test(code) && (PG_STATES.has(code) || PG_CLASSES.has(code.slice(0, 2)))) return true;
  return SOCKET.has(code) || SQLITE.test(code) || PG_CLIENT.test(err.message);
}

/** The 503 for a store outage, or undefined when `err` is something else. `label` names the store. */
export function storeOutageAnswer(err: unknown, label: string): HttpError | undefined {
  if (!isStoreOutage(err)) return undefined;
  const why = (err as Error).message.split("\n")[0].slice(0, 200);
  return new HttpError(503, STORE_UNAVAILABLE, `the coordination store (${label}) is unavailable: ${why}; retry in ${STORE_RETRY_AFTER_S} s`,
    { retryAfterS: STORE_RETRY_AFTER_S }, { "retry-after": String(STORE_RETRY_AFTER_S) });
}
