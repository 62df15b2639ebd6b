// The publications table (external access, docs/external-access.md) for both stores: the schema each
// migration creates and the row mapping. The stores keep their own transactions; this file only names columns.
import type { PublicationRecord } from "./store.js";

/** SQLite migration 5 (4 is reserved for users, issue 15): one row per published hostname. */
export const SQLITE_PUBLICATIONS_SQL = `
  CREATE TABLE publications (hostname TEXT PRIMARY KEY, tenant TEXT NOT NULL, node TEXT NOT NULL, service TEXT NOT NULL,
    port INTEGER NOT NULL, protocol TEXT NOT NULL, client_auth TEXT NOT NULL, client_ca_pem TEXT,
    created_at INTEGER NOT NULL, created_by TEXT NOT NULL, UNIQUE (node, service));
`;

/** PostgreSQL migration 6 (5 is reserved for users, issue 15). */
export const PG_PUBLICATIONS_SQL = `
  CREATE TABLE publications (hostname TEXT PRIMARY KEY, tenant TEXT NOT NULL, node TEXT NOT NULL, service TEXT NOT NULL,
    port INTEGER NOT NULL, protocol TEXT NOT NULL, client_auth TEXT NOT NULL, client_ca_pem TEXT,
    created_at BIGINT NOT NULL, created_by TEXT NOT NULL, UNIQUE (node, service));
`;

export const PUBLICATION_COLUMNS = "hostname, tenant, node, service, port, protocol, client_auth, client_ca_pem, created_at, created_by";

export function publicationValues(p: PublicationRecord): unknown[] {
  return [p.hostname, p.tenant, p.node, p.service, p.port, p.protocol, p.clientAuth, p.clientCaPem ?? null, p.createdAt, p.createdBy];
}

export function publicationFromRow(r: Record<string, any>): PublicationRecord {
  return {
    hostname: r.hostname, tenant: r.tenant, node: r.node, service: r.service, port: Number(r.port), protocol: r.protocol,
    clientAuth: r.client_auth, ...(r.client_ca_pem != null ? { clientCaPem: r.client_ca_pem } : {}),
    createdAt: Number(r.created_at), createdBy: r.created_by,
  };
}
