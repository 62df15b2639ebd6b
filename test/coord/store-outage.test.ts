// A coordination store that cannot serve answers 503 store_unavailable with a Retry-After and the store's name
// (it was a 500 "internal error"), and clients given several replica URLs go on to the next one: the admin verbs
// (library and CLI), enrollment and certificate renewal. Two real `ember coord` replicas on a throwaway
// PostgreSQL; replica a reaches it through a TCP link the test cuts (a replica that lost its database), then
// PostgreSQL itself is stopped (every replica 503, nothing answered as a 500).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AdminClient } from "../../src/coord/admin-client.js";
import { CoordClient, enroll } from "../../src/coord/client.js";
import { isStoreOutage, storeOutageAnswer } from "../../src/coord/store-outage.js";
import { PATHS, STORE_RETRY_AFTER_S } from "../../src/wire/coord-api.js";
import { ReplicasFailed } from "../../src/wire/coord-failover.js";
import { ember } from "../helpers/cli.js";
import { postgresSkipReason, type PgCluster } from "../helpers/postgres.js";
import { startTcpLink, type TcpLink } from "../helpers/tcp-link.js";
import { rawRequest, startReplicaSet, tempDir, waitFor, type CoordProcess, type Mesh, type ReplicaSet } from "./helpers.js";

const pgSkip = postgresSkipReason();
if (pgSkip) console.log(`store outage tests on PostgreSQL skipped: ${pgSkip}`);

describe("which failures are a store outage", () => {
  it("PostgreSQL connection, shutdown and resource states, socket errors and node-postgres's own; not a bug's TypeError", () => {
    const coded = (code: string, message = "x") => Object.assign(new Error(message), { code });
    for (const code of ["08006", "08001", "57P01", "57P03", "53300", "55P03", "40001", "40P01", "25006", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT"]) {
      expect(isStoreOutage(coded(code)), code).toBe(true);
    }
    expect(isStoreOutage(new Error("Connection terminated unexpectedly"))).toBe(true);
    expect(isStoreOutage(new Error("timeout exceeded when trying to connect"))).toBe(true);
    for (const code of ["23505", "42P01", "22P02", "ERR_INVALID_ARG_TYPE"]) expect(isStoreOutage(coded(code)), code).toBe(false);
    expect(isStoreOutage(new TypeError("Cannot read properties of undefined (reading 'name')"))).toBe(false);
    expect(isStoreOutage("a string")).toBe(false);
  });

  it("a real SQLITE_BUSY (another process holds the write lock) is an outage, answered 503 with Retry-After", () => {
    const t = tempDir("ember-busy-");
    const holder = new Database(join(t.dir, "coord.db"));
    const other = new Database(join(t.dir, "coord.db"));
    try {
      holder.exec("CREATE TABLE x (a)");
      other.pragma("busy_timeout = 0");
      holder.exec("BEGIN IMMEDIATE");
      let busy: unknown;
      try { other.exec("INSERT INTO x VALUES (1)"); } catch (err) { busy = err; }
      expect((busy as { code?: string })?.code).toBe("SQLITE_BUSY");
      const answer = storeOutageAnswer(busy, "SQLite at /var/lib/ember/coord.db")!;
      expect(answer.status).toBe(503);
      expect(answer.code).toBe("store_unavailable");
      expect(answer.detail).toMatch(/^the coordination store \(SQLite at \/var\/lib\/ember\/coord\.db\) is unavailable: .*; retry in 1 s$/);
      expect(answer.headers["retry-after"]).toBe(String(STORE_RETRY_AFTER_S));
      expect(storeOutageAnswer(new TypeError("bug"), "SQLite")).toBeUndefined();
    } finally {
      holder.exec("ROLLBACK");
      holder.close();
      other.close();
      t.cleanup();
    }
  });
});

describe.skipIf(!!pgSkip)("a store outage on replicas", () => {
  let set: ReplicaSet | undefined;
  let cluster: PgCluster | undefined;
  let mesh: Mesh | undefined;
  let link: TcpLink | undefined;
  let reps: CoordProcess[] = [];
  let client: CoordClient | undefined;
  const admin = (coord: string) => new AdminClient({ ...mesh!.adminFlags, coord }, {});
  const both = () => `${reps[0].url},${reps[1].url}`;
  const adminGet = (r: CoordProcess) => rawRequest(r.url, "GET", PATHS.adminNodes, { cert: readFileSync(mesh!.adminFlags.cert, "utf8"), key: readFileSync(mesh!.adminFlags.key, "utf8") });

  beforeAll(async () => {
    // Replica a reaches PostgreSQL through a link the test cuts; replica b directly.
    set = await startReplicaSet(2, {
      storeFor: async (db, i, pg) => { if (i > 0) return db; link = await startTcpLink(pg.port); return db.replace(`:${pg.port}/`, `:${link.port}/`); },
    });
    ({ cluster, mesh, reps } = set);
    await admin(reps[1].url).setPolicy(`version: 1\nrules:\n  - allow: {source: "*", target: "*"}\n`);
  }, 60_000);

  afterAll(async () => {
    await client?.stop();
    await set?.stop();
    await link?.close();
  });

  it("replica a without its database: 503 naming the store; admin verbs, enrollment and renewal go to replica b", async () => {
    const [a] = reps;
    // A node whose stream is on a, with a certificate renewed every few seconds.
    const dir = join(mesh!.dir, "node-1");
    await enroll({ coordUrl: both(), token: (await admin(a.url).createToken({ tenant: "acme", groups: [], roles: [], certTtlMs: 6_000 })).token, name: "node-1", stateDir: dir });
    client = new CoordClient({ coordUrl: both(), stateDir: dir, failBack: false, minBackoffMs: 200, maxBackoffMs: 1_000 });
    client.start();
    await waitFor(() => client!.map, 10_000, "node-1's map from replica a");
    expect(client.origin).toBe(new URL(a.url).origin);

    await link!.cut();
    const cutAt = Date.now();
    const r = await adminGet(a);
    expect(r.status).toBe(503);
    expect(r.json.error).toBe("store_unavailable");
    expect(r.json.detail).toContain(`the coordination store (PostgreSQL at postgres://postgres@127.0.0.1:${link!.port}/coord) is unavailable`);
    expect(r.headers["retry-after"]).toBe(String(STORE_RETRY_AFTER_S));
    expect(r.json.retryAfterS).toBe(STORE_RETRY_AFTER_S);

    // Admin verbs with both URLs: a read and a write (a 503 applied nothing, so even a POST goes on).
    const listed = await admin(both()).listNodes();
    expect(listed.nodes.map((n: { name: string }) => n.name)).toContain("node-1");
    const token = (await admin(both()).createToken({ tenant: "acme", groups: [], roles: [] })).token;
    // Enrollment: replica a serves the bundle (no store needed), refuses the enrollment with 503; b enrolls.
    await enroll({ coordUrl: both(), token, name: "node-2", stateDir: join(mesh!.dir, "node-2") });
    // The CLI verb, as an operator runs it.
    const cli = ember(["nodes", "list", "--coord", both(), "--cert", mesh!.adminFlags.cert, "--key", mesh!.adminFlags.key, "--ca", mesh!.adminFlags.ca, "--json"]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout).map((n: { name: string }) => n.name)).toEqual(expect.arrayContaining(["node-1", "node-2"]));
    // Renewal falls due while a cannot reach its store: b renews.
    const renewals = client.stats.renewals;
    await waitFor(() => client!.stats.renewals > renewals, 10_000, "a renewal while replica a has no store");
    const renewedAfterMs = Date.now() - cutAt;
    expect(a.stderr()).toMatch(/"event":"store_unavailable"/);
    expect(a.stderr()).not.toMatch(/"event":"internal_error"/);
    console.log(`store outage on replica a: 503 store_unavailable; admin list/token, enrollment and the CLI answered by b; node-1 renewed ${renewedAfterMs} ms after the cut`);
  }, 60_000);

  it("PostgreSQL stopped: every replica answers 503 naming the store, no 500; all is back once it starts", async () => {
    // Replica a's link stays cut (refused at once): through a mended link to a stopped server, node-postgres
    // sometimes waited its whole 10 s connection timeout before a's 503, which made this test slow, not wrong.
    await cluster!.stopServer();
    try {
      for (const r of reps) {
        const x = await adminGet(r);
        expect(x.status).toBe(503);
        expect(x.json.detail).toMatch(/the coordination store \(PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:\d+\/coord\) is unavailable/);
      }
      const err = await admin(both()).listNodes().catch((e) => e);
      expect(err).toBeInstanceOf(ReplicasFailed);
      expect(err.message.match(/store_unavailable/g)?.length).toBeGreaterThanOrEqual(2);
      const cli = ember(["nodes", "list", "--coord", both(), "--cert", mesh!.adminFlags.cert, "--key", mesh!.adminFlags.key, "--ca", mesh!.adminFlags.ca]);
      expect(cli.code).toBe(2);
      expect(cli.stderr).toMatch(/^ember: coordination server unreachable or refused: no coordination replica could answer: https:\/\/127\.0\.0\.1:\d+: store_unavailable: /);
      expect(cli.stderr.trim().split("\n")).toHaveLength(1);
    } finally {
      await cluster!.startServer();
      await link!.mend();
    }
    const t0 = Date.now();
    let back: { nodes: unknown[] } | undefined;
    for (let i = 0; i < 50 && !back; i++) {
      back = await admin(both()).listNodes().catch(() => undefined);
      if (!back) await new Promise((r) => setTimeout(r, 200));
    }
    expect(back?.nodes.length).toBeGreaterThanOrEqual(2);
    console.log(`PostgreSQL stopped: both replicas answered 503 store_unavailable; listing worked again ${Date.now() - t0} ms after it started`);
  }, 90_000);
});
