// The publications table on both stores (docs/external-access.md), and the migration loop that applies every
// version not recorded yet, so migrations numbered apart on two branches (users 4/5, publications 5/6) merge.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import Database from "better-sqlite3";
import { PgStore } from "../../src/coord/pg-store.js";
import { DB_FILE, SqliteStore } from "../../src/coord/sqlite-store.js";
import type { PublicationRecord, Store } from "../../src/coord/store.js";
import { postgresSkipReason, startPostgres, type PgCluster } from "../helpers/postgres.js";
import { tempDir } from "../helpers/pki.js";

const pgSkip = postgresSkipReason();
if (pgSkip) console.log(`PostgreSQL publication store tests skipped: ${pgSkip}`);

const tmp = tempDir("ember-pubstore-");
let cluster: PgCluster | undefined;
let dbCount = 0;
const opened: Store[] = [];

beforeAll(async () => { if (!pgSkip) cluster = await startPostgres(); }, 60_000);
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close().catch(() => {})));
  cluster?.stop();
  tmp.cleanup();
});

function track<T extends Store>(s: T): T { opened.push(s); return s; }

const backends: { name: string; skip: boolean; open: () => Promise<Store> }[] = [
  { name: "sqlite", skip: false, open: async () => track(new SqliteStore(join(tmp.dir, `db-${++dbCount}`))) },
  { name: "postgres", skip: !!pgSkip, open: async () => track(new PgStore(await cluster!.createDatabase(`pub_${++dbCount}`))) },
];

function pub(hostname: string, node: string, service: string, over: Partial<PublicationRecord> = {}): PublicationRecord {
  return { hostname, tenant: "acme", node, service, port: 443, protocol: "https", clientAuth: "none", createdAt: dbCount, createdBy: node, ...over };
}

describe.each(backends)("publications on $name", ({ skip, open }) => {
  it.skipIf(skip)("replaces a node's publication of a service, refuses another's hostname, deletes", async () => {
    const s = await open();
    await s.migrate();
    expect(await s.putPublication(pub("status.example.test", "web-1", "status-page", { clientAuth: "cert", clientCaPem: "CA-PEM" }))).toEqual({ ok: true });
    expect(await s.putPublication(pub("status.example.test", "web-2", "other"))).toEqual({ ok: false, holder: { node: "web-1", service: "status-page" } });
    // The same service under a new hostname: one row, the new one.
    expect(await s.putPublication(pub("status2.example.test", "web-1", "status-page"))).toEqual({ ok: true });
    expect((await s.listPublications()).map((p) => [p.hostname, p.clientAuth, p.clientCaPem])).toEqual([["status2.example.test", "none", undefined]]);
    expect(await s.putPublication(pub("status.example.test", "web-2", "other", { clientAuth: "cert", clientCaPem: "CA-PEM" }))).toEqual({ ok: true });
    expect((await s.listPublications()).find((p) => p.node === "web-2")).toMatchObject({ clientCaPem: "CA-PEM", port: 443 });
    expect(await s.deletePublication("web-1", "status-page")).toBe(true);
    expect(await s.deletePublication("web-1", "status-page")).toBe(false);
    expect((await s.listPublications()).map((p) => p.node)).toEqual(["web-2"]);
  });
});

describe("SQLite migrations", () => {
  it("apply a version missing below the highest one recorded (a migration merged from another branch)", async () => {
    const dir = join(tmp.dir, "gap");
    const s = track(new SqliteStore(dir));
    const latest = await s.migrate();
    await s.close();
    opened.pop();
    // As if version 2 came from a branch merged after this database reached `latest`.
    const db = new Database(join(dir, DB_FILE));
    db.exec("DROP TABLE console_users; DELETE FROM schema_migrations WHERE version = 2");
    db.close();
    const again = track(new SqliteStore(dir));
    expect(await again.migrate()).toBe(latest);
    expect(await again.listUsers()).toEqual([]);
    expect(await again.listPublications()).toEqual([]);
  });
});
