// ReplicaSync against a real PostgreSQL change log: another store's enrollments reach this replica's MapHub; a gap
// in the log's seqs left by a rolled-back writer is skipped as nothing; a stretch pruned past this replica's
// position makes it re-read everything (a resync), once.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pino from "pino";
import pg from "pg";
import { MapHub } from "../../src/coord/map-hub.js";
import { parsePolicy } from "../../src/coord/policy-adapter.js";
import { PgStore } from "../../src/coord/pg-store.js";
import { ReplicaSync } from "../../src/coord/replica-sync.js";
import { postgresSkipReason, startPostgres, type PgCluster } from "../helpers/postgres.js";

const pgSkip = postgresSkipReason();
if (pgSkip) console.log(`replica catch-up tests skipped: ${pgSkip}`);

let cluster: PgCluster | undefined;
let url = "";
const stores: PgStore[] = [];
beforeAll(async () => {
  if (pgSkip) return;
  cluster = await startPostgres();
  url = await cluster.createDatabase("catchup");
}, 60_000);
afterAll(async () => { await Promise.all(stores.map((s) => s.close().catch(() => {}))); cluster?.stop(); });

const HOUR = 3_600_000;
async function enrollOn(s: PgStore, name: string): Promise<void> {
  const now = Date.now();
  await s.createToken({ id: `tok-${name}`, secretHash: "h", tenant: "acme", groups: ["eng"], roles: [], usesLeft: 1, usesTotal: 1, expiresAt: now + HOUR, certTtlMs: 60_000, createdAt: now, createdBy: "t" });
  const node = { name, tenant: "acme", groups: ["eng"], roles: [], enrollmentId: `e-${name}`, status: "active" as const, enrolledAt: now, tokenId: `tok-${name}`, certTtlMs: 60_000, serial: `s-${name}`, certPem: `PEM-${name}`, notAfter: now + HOUR, endpoints: [] };
  const r = await s.enroll({ tokenId: node.tokenId, now, node, nameFree: () => false, cert: { serial: node.serial, name, enrollmentId: node.enrollmentId, notAfter: node.notAfter, issuedAt: now, kind: "enroll" } });
  expect(r.ok).toBe(true);
}

describe.skipIf(!!pgSkip)("ReplicaSync on a PostgreSQL change log", () => {
  it("applies another replica's enrollments, skips a rolled-back gap, and re-reads everything after a pruned stretch", async () => {
    const writer = new PgStore(url), reader = new PgStore(url);
    stores.push(writer, reader);
    await writer.migrate();
    await reader.migrate();
    const policy = parsePolicy("version: 1\nrules:\n  - allow: {source: \"*\", target: \"*\"}\n");
    if (!policy.ok) throw new Error("policy");
    const hub = new MapHub(policy.policy);
    const sync = new ReplicaSync(reader, {
      store: reader, hub, log: pino({ level: "silent" }), reloadPolicy: async () => {}, reloadRevocation: async () => undefined,
    }, await reader.latestSeq());
    const catchUp = async () => { sync.kick(); await sync.idle(); };

    await enrollOn(writer, "a");
    await catchUp();
    expect(hub.peer("a")?.certPem).toBe("PEM-a");

    // A writer that rolled back took a seq: the next change comes after a gap that is not a pruned stretch.
    const raw = new pg.Client({ connectionString: url });
    await raw.connect();
    try {
      await raw.query("BEGIN");
      await raw.query("INSERT INTO changes (kind, name, origin, at) VALUES ('node', 'ghost', 'x', 0)");
      await raw.query("ROLLBACK");
      await enrollOn(writer, "b");
      await catchUp();
      expect(hub.peer("b")).toBeDefined();
      expect(sync.stats.resyncs).toBe(0);

      // Pruned past this replica's position: c's change is gone, only d's is left.
      await enrollOn(writer, "c");
      await enrollOn(writer, "d");
      await raw.query("DELETE FROM changes WHERE seq < (SELECT MAX(seq) FROM changes)");
      await catchUp();
      expect(sync.stats.resyncs).toBe(1);
      expect(hub.peer("c")).toBeDefined();
      expect(hub.peer("d")).toBeDefined();
      await enrollOn(writer, "e");
      await catchUp();
      expect(hub.peer("e")).toBeDefined();
      expect(sync.stats.resyncs).toBe(1);
    } finally { await raw.end(); await sync.close(); }
  });
});
