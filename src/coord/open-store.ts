// Which store a coordination server runs on: SQLite in its data directory unless `--store` names a
// PostgreSQL database (several replicas share one: docs/coord.md, "Replicas on PostgreSQL").
import { PgStore } from "./pg-store.js";
import { SqliteStore } from "./sqlite-store.js";
import type { Store } from "./store.js";

export class StoreSpecError extends Error {}

/** `spec`: undefined or "sqlite" for the embedded default, else a postgres:// or postgresql:// URL. */
export function openStore(spec: string | undefined, dataDir: string): Store {
  if (spec === undefined || spec === "sqlite") return new SqliteStore(dataDir);
  let url: URL;
  try { url = new URL(spec); } catch { throw new StoreSpecError(`--store "${spec}": expected postgres://USER@HOST:PORT/DATABASE or "sqlite"`); }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new StoreSpecError(`--store: "${url.protocol}" is not a store this server knows (postgres://USER@HOST:PORT/DATABASE or "sqlite")`);
  }
  if (url.pathname.length <= 1) throw new StoreSpecError(`--store: name the database in the URL (postgres://USER@HOST:PORT/DATABASE)`);
  return new PgStore(spec);
}
