// The Store contract, run against both backends: SQLite files and a real throwaway PostgreSQL cluster. Then what
// only a shared store must do: two replicas' stores migrating at once, racing for one token, and the change log
// that carries one replica's changes to the others (in commit order, with a notification).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import pg from "pg";
import { PgStore } from "../../src/coord/pg-store.js";
import { SqliteStore } from "../../src/coord/sqlite-store.js";
import type { NodeRecord, Store, TokenRecord } from "../../src/coord/store.js";
import { chooseOverlayAddress, intToIpv4 } from "../../src/coord/overlay-address.js";
import { postgresSkipReason, startPostgres, type PgCluster } from "../helpers/postgres.js";
import { tempDir } from "../helpers/pki.js";

const pgSkip = postgresSkipReason();
if (pgSkip) console.log(`PostgreSQL store tests skipped: ${pgSkip}`);

const tmp = tempDir("ember-store-");
let cluster: PgCluster | undefined;
let dbCount = 0;
const opened: Store[] = [];

beforeAll(async () => { if (!pgSkip) cluster = await startPostgres(); }, 60_000);
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close().catch(() => {})));
  cluster?.stop();
  tmp.cleanup();
});

const backends: { name: string; skip: boolean; open: () => Promise<Store> }[] = [
  { name: "sqlite", skip: false, open: async () => track(new SqliteStore(join(tmp.dir, `db-${++dbCount}`))) },
  { name: "postgres", skip: !!pgSkip, open: async () => track(new PgStore(await cluster!.createDatabase(`store_${++dbCount}`))) },
];

function track<T extends Store>(s: T): T { opened.push(s); return s; }

const HOUR = 3_600_000;

function token(id: string, over: Partial<TokenRecord> = {}): TokenRecord {
  return {
    id, secretHash: "h", tenant: "acme", groups: ["eng"], roles: [], usesLeft: 1, usesTotal: 1, expiresAt: Date.now() + HOUR,
    certTtlMs: 60_000, createdAt: 1, createdBy: "t", ...over,
  };
}

function nodeRecord(name: string, enrollmentId: string, over: Partial<NodeRecord> = {}): NodeRecord {
  return {
    name, tenant: "acme", groups: ["eng"], roles: [], enrollmentId, status: "active", enrolledAt: 1, tokenId: "tok", certTtlMs: 60_000,
    serial: `s-${enrollmentId}`, certPem: `PEM-${enrollmentId}`, notAfter: Date.now() + HOUR, endpoints: [], ...over,
  };
}

function enrollArgs(tokenId: string, name: string, enrollmentId: string, nameFree = () => false) {
  const node = nodeRecord(name, enrollmentId, { tokenId });
  return { tokenId, now: Date.now(), node, nameFree, cert: { serial: node.serial, name, enrollmentId, notAfter: node.notAfter, issuedAt: 1, kind: "enroll" as const } };
}

const sign = (n: number, serials: string[]) => `list-${n}:${[...serials].sort().join(",")}`;

describe.each(backends)("store contract on $name", ({ skip, open }) => {
  it.skipIf(skip)("migrates once and again without change, and keeps tokens", async () => {
    const s = await open();
    const v = await s.migrate();
    expect(v).toBeGreaterThanOrEqual(3);
    expect(await s.migrate()).toBe(v);
    await s.createToken(token("t1", { groups: ["eng", "ops"], roles: ["admin"] }));
    expect(await s.getToken("t1")).toMatchObject({ id: "t1", groups: ["eng", "ops"], roles: ["admin"], usesLeft: 1, certTtlMs: 60_000 });
    expect(typeof (await s.getToken("t1"))!.expiresAt).toBe("number");
    expect(await s.getToken("nope")).toBeUndefined();
    expect((await s.tokenGroups()).sort()).toEqual(["eng", "ops"]);
  });

  it.skipIf(skip)("enrolls once per token use and refuses unknown, expired, used tokens and a held name", async () => {
    const s = await open();
    await s.migrate();
    await s.createToken(token("t1"));
    await s.createToken(token("t2", { usesLeft: 2, usesTotal: 2 }));
    await s.createToken(token("old", { expiresAt: Date.now() - 1 }));
    expect(await s.enroll(enrollArgs("missing", "a", "e0"))).toMatchObject({ ok: false, reason: "token_unknown" });
    expect(await s.enroll(enrollArgs("old", "a", "e0"))).toMatchObject({ ok: false, reason: "token_expired" });
    const ok = await s.enroll(enrollArgs("t1", "a", "e1"));
    expect(ok).toMatchObject({ ok: true, overlayIp: intToIpv4(chooseOverlayAddress("acme", "a", () => false)) });
    // The server's own check words it the same (test/coord/enroll.test.ts): one text for one refusal.
    expect(await s.enroll(enrollArgs("t1", "b", "e2"))).toMatchObject({ ok: false, reason: "token_used", detail: "token already used (1 of 1 uses); ask for a new one" });
    expect(await s.enroll(enrollArgs("t2", "a", "e3"))).toMatchObject({ ok: false, reason: "name_taken" });
    expect((await s.getToken("t2"))!.usesLeft).toBe(2); // a refusal consumes nothing
    const n = (await s.getNode("a"))!;
    expect(n).toMatchObject({ name: "a", tenant: "acme", groups: ["eng"], enrollmentId: "e1", status: "active", serial: "s-e1", endpoints: [] });
    expect(n.overlayIp).toBe((ok as { overlayIp: string }).overlayIp);
    // Re-enrollment when the caller says the name is free: same identity, same address, a new enrollment.
    expect(await s.enroll(enrollArgs("t2", "a", "e4", () => true))).toMatchObject({ ok: true, overlayIp: n.overlayIp });
    expect((await s.getNode("a"))!.enrollmentId).toBe("e4");
    expect((await s.getToken("t2"))!.usesLeft).toBe(1);
    // Several named nodes in one read: those that exist, whoever else is named.
    await s.createToken(token("t3"));
    await s.enroll(enrollArgs("t3", "b", "e5"));
    expect((await s.getNodes(["b", "nobody", "a"])).map((x) => x.name + x.enrollmentId).sort()).toEqual(["ae4", "be5"]);
    expect(await s.getNodes([])).toEqual([]);
  });

  it.skipIf(skip)("commits concurrent enrollments together, each with its own outcome", async () => {
    const s = await open();
    await s.migrate();
    await s.createToken(token("many", { usesLeft: 5, usesTotal: 5 }));
    // Asked at once (one group commit): a refusal and a statement error (a serial issued twice) fail only their own.
    const clash = enrollArgs("many", "d", "e-d");
    clash.cert.serial = "s-e-a";
    const outcomes = await Promise.allSettled([
      s.enroll(enrollArgs("many", "a", "e-a")), s.enroll(enrollArgs("missing", "b", "e-b")), s.enroll(enrollArgs("many", "c", "e-c")),
      s.enroll(clash), s.enroll(enrollArgs("many", "a", "e-a2")), s.enroll(enrollArgs("many", "e", "e-e")),
    ]);
    expect(outcomes.map((o) => o.status === "fulfilled" ? (o.value.ok ? "ok" : o.value.reason) : "error"))
      .toEqual(["ok", "token_unknown", "ok", "error", "name_taken", "ok"]);
    expect((await s.listNodes()).map((n) => n.name)).toEqual(["a", "c", "e"]);
    expect((await s.getToken("many"))!.usesLeft).toBe(2);
  });

  it.skipIf(skip)("renews, answers serial questions, saves statuses", async () => {
    const s = await open();
    await s.migrate();
    await s.createToken(token("t1"));
    await s.enroll(enrollArgs("t1", "a", "e1"));
    const later = Date.now() + 2 * HOUR;
    expect(await s.renew({ name: "a", enrollmentId: "e1", certPem: "PEM-2", cert: { serial: "s-2", name: "a", enrollmentId: "e1", notAfter: later, issuedAt: 2, kind: "renew" } })).toBe(true);
    expect(await s.renew({ name: "a", enrollmentId: "other", certPem: "x", cert: { serial: "s-3", name: "a", enrollmentId: "other", notAfter: later, issuedAt: 2, kind: "renew" } })).toBe(false);
    expect(await s.getNode("a")).toMatchObject({ serial: "s-2", certPem: "PEM-2", notAfter: later });
    expect(await s.isSerialOf("s-e1", "a", "e1")).toBe(true);
    expect(await s.isSerialOf("s-3", "a", "other")).toBe(false);
    expect((await s.liveSerials("a", "e1", Date.now())).map((x) => x.serial).sort()).toEqual(["s-2", "s-e1"]);
    await s.saveStatuses([{ name: "a", endpoints: ["198.18.0.1:4242"], homeRelay: "relay-1", natType: "eim", lastSeen: 1234 }]);
    expect(await s.getNode("a")).toMatchObject({ endpoints: ["198.18.0.1:4242"], homeRelay: "relay-1", natType: "eim", lastSeen: 1234 });
    expect((await s.listNodes()).map((n) => n.name)).toEqual(["a"]);
  });

  it.skipIf(skip)("revokes with every serial of the enrollment, numbering lists above the CA's", async () => {
    const s = await open();
    await s.migrate();
    await s.createToken(token("t1"));
    await s.enroll(enrollArgs("t1", "a", "e1"));
    await s.renew({ name: "a", enrollmentId: "e1", certPem: "P2", cert: { serial: "s-2", name: "a", enrollmentId: "e1", notAfter: Date.now() + HOUR, issuedAt: 2, kind: "renew" } });
    expect(await s.revoke({ name: "ghost", now: Date.now(), minNumber: 0, sign })).toBeUndefined();
    const r = (await s.revoke({ name: "a", now: Date.now(), minNumber: 5, sign }))!;
    expect(r.number).toBe(6);
    expect(r.text).toBe("list-6:s-2,s-e1");
    expect((await s.getNode("a"))!.status).toBe("revoked");
    const p = await s.publishRevocation({ now: Date.now(), minNumber: 0, sign });
    expect(p.number).toBe(7);
    expect(await s.getRevocation()).toMatchObject({ number: 7, text: "list-7:s-2,s-e1" });
    expect((await s.listRevoked()).map((x) => x.serial).sort()).toEqual(["s-2", "s-e1"]);
  });

  it.skipIf(skip)("keeps the latest policy and console users", async () => {
    const s = await open();
    await s.migrate();
    expect(await s.getPolicy()).toBeUndefined();
    const p1 = await s.setPolicy({ source: "a", hash: "h1", setAt: 1, setBy: "x" });
    const p2 = await s.setPolicy({ source: "b", hash: "h2", setAt: 2, setBy: "y" });
    expect(p2.id).toBeGreaterThan(p1.id);
    expect(await s.getPolicy()).toEqual({ id: p2.id, source: "b", hash: "h2", setAt: 2, setBy: "y" });
    expect(await s.putUser({ username: "ann", passwordHash: "h", createdAt: 1, createdBy: "x" })).toBe(true);
    expect(await s.putUser({ username: "ann", passwordHash: "h2", createdAt: 2, createdBy: "x" })).toBe(false);
    expect(await s.getUser("ann")).toEqual({ username: "ann", passwordHash: "h2", createdAt: 2, createdBy: "x" });
    expect((await s.listUsers()).map((u) => u.username)).toEqual(["ann"]);
    expect(await s.deleteUser("ann")).toBe(true);
    expect(await s.deleteUser("ann")).toBe(false);
  });

  it.skipIf(skip)("keeps who is logged in on a device until logout, disable, expiry or re-enrollment", async () => {
    const s = await open();
    await s.migrate();
    await s.createToken(token("t1", { usesLeft: 5, usesTotal: 5 }));
    for (const n of ["laptop-1", "laptop-2", "laptop-3"]) expect(await s.enroll(enrollArgs("t1", n, `e-${n}`))).toMatchObject({ ok: true });
    expect(await s.putUser({ username: "alice", passwordHash: "h", createdAt: 1, createdBy: "x", tenant: "acme", groups: ["eng"] })).toBe(true);
    expect(await s.getUser("alice")).toEqual({ username: "alice", passwordHash: "h", createdAt: 1, createdBy: "x", tenant: "acme", groups: ["eng"], disabled: false });
    const alice = (notAfter: number) => ({ name: "alice", groups: ["eng"], certPem: `U-${notAfter}`, notAfter });
    expect(await s.setNodeUser({ name: "laptop-1", enrollmentId: "e-laptop-1", user: alice(Date.now() + HOUR) })).toBe(true);
    expect(await s.setNodeUser({ name: "laptop-2", enrollmentId: "e-laptop-2", user: alice(Date.now() + HOUR) })).toBe(true);
    expect(await s.setNodeUser({ name: "laptop-3", enrollmentId: "e-laptop-3", user: alice(Date.now() - 1) })).toBe(true);
    expect(await s.setNodeUser({ name: "laptop-1", enrollmentId: "stale", user: alice(1) })).toBe(false);
    expect((await s.getNode("laptop-1"))!.user).toMatchObject({ name: "alice", groups: ["eng"] });
    expect(await s.clearExpiredLogins(Date.now())).toEqual(["laptop-3"]);
    expect((await s.getNode("laptop-3"))!.user).toBeUndefined();
    expect(await s.setUserDisabled("nobody", true)).toBeUndefined();
    expect((await s.setUserDisabled("alice", true))!.sort()).toEqual(["laptop-1", "laptop-2"]);
    expect((await s.getUser("alice"))!.disabled).toBe(true);
    expect((await s.getNode("laptop-2"))!.user).toBeUndefined();
    expect(await s.setUserDisabled("alice", false)).toEqual([]);
    expect(await s.setNodeUser({ name: "laptop-1", enrollmentId: "e-laptop-1", user: alice(Date.now() + HOUR) })).toBe(true);
    expect(await s.enroll(enrollArgs("t1", "laptop-1", "e-again", () => true))).toMatchObject({ ok: true });
    expect((await s.getNode("laptop-1"))!.user).toBeUndefined();
  });
});

describe.skipIf(!!pgSkip)("PostgreSQL shared by several replicas", () => {
  let sharedUrl = "";
  async function replicas(n: number): Promise<PgStore[]> {
    sharedUrl = await cluster!.createDatabase(`shared_${++dbCount}`);
    return Array.from({ length: n }, () => track(new PgStore(sharedUrl)));
  }
  async function sql(text: string): Promise<pg.QueryResult> {
    const c = new pg.Client({ connectionString: sharedUrl });
    await c.connect();
    try { return await c.query(text); } finally { await c.end(); }
  }

  it("applies each migration once when replicas start at the same moment", async () => {
    const rs = await replicas(3);
    const versions = await Promise.all(rs.map((s) => s.migrate()));
    expect(new Set(versions).size).toBe(1);
    const rows = (await sql("SELECT version FROM schema_migrations ORDER BY version")).rows.map((r) => r.version);
    // Every version, each once.
    expect(rows).toEqual(Array.from({ length: versions[0] }, (_, i) => i + 1));
  });

  it("gives a one-time token to exactly one of several replicas racing for it", async () => {
    const rs = await replicas(4);
    await rs[0].migrate();
    for (let round = 0; round < 10; round++) {
      await rs[0].createToken(token(`race-${round}`));
      const results = await Promise.all(rs.map((s, i) => s.enroll(enrollArgs(`race-${round}`, `n-${round}-${i}`, `e-${round}-${i}`))));
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      expect(results.filter((r) => !r.ok).every((r) => !r.ok && r.reason === "token_used")).toBe(true);
      expect((await rs[1].getToken(`race-${round}`))!.usesLeft).toBe(0);
    }
    expect(await rs[2].listNodes()).toHaveLength(10);
  });

  it("logs changes in commit order with the origin replica, and notifies the others", async () => {
    const [a, b] = await replicas(2);
    await a.migrate();
    const head = await b.latestSeq();
    const notified: number[] = [];
    await b.subscribe((seq) => notified.push(seq), () => {});
    await a.createToken(token("t1", { usesLeft: 5, usesTotal: 5 }));
    const t0 = Date.now();
    await a.enroll(enrollArgs("t1", "x", "e1"));
    for (let i = 0; i < 200 && notified.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    const notifyMs = Date.now() - t0;
    expect(notified.length).toBe(1);
    // Concurrent writers from both replicas: seq order is commit order, no gaps a reader could step over.
    await Promise.all([
      ...Array.from({ length: 5 }, (_, i) => a.setPolicy({ source: `p${i}`, hash: `h${i}`, setAt: i, setBy: "a" })),
      ...Array.from({ length: 5 }, (_, i) => b.saveStatuses([{ name: "x", endpoints: [`198.18.0.1:${1000 + i}`], lastSeen: i }])),
      b.revoke({ name: "x", now: Date.now(), minNumber: 0, sign }),
    ]);
    const changes = await b.changesSince(head, 100);
    expect(changes.map((c) => c.seq)).toEqual([...changes.map((c) => c.seq)].sort((p, q) => p - q));
    expect(changes[0]).toMatchObject({ kind: "node", name: "x", origin: a.replicaId });
    expect(changes.filter((c) => c.kind === "policy").every((c) => c.origin === a.replicaId)).toBe(true);
    expect(changes.filter((c) => c.kind === "status")).toHaveLength(5);
    expect(changes.find((c) => c.kind === "revoke")).toMatchObject({ name: "x", origin: b.replicaId });
    console.log(`change notification reached the other store ${notifyMs} ms after the enrollment started`);
  });

  it("gets its notifications back after the LISTEN connection is cut", async () => {
    const [a, b] = await replicas(2);
    await a.migrate();
    const states: boolean[] = [];
    let seen = 0;
    await b.subscribe(() => { seen++; }, (up) => states.push(up));
    const cut = await sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN ember_changes' AND datname = current_database()");
    expect(cut.rowCount).toBe(1);
    for (let i = 0; i < 300 && states.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    expect(states).toEqual([true, false, true]); // up at subscribe, lost, back (first retry after 250 ms)
    await a.setPolicy({ source: "p", hash: "h", setAt: 1, setBy: "a" });
    for (let i = 0; i < 200 && seen === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(seen).toBe(1);
  });

  it("measures what decided NOTIFY over polling: notification delay after commit, and the cost of one poll", async () => {
    const [a, b] = await replicas(2);
    await a.migrate();
    let seen = 0;
    await b.subscribe(() => { seen++; }, () => {});
    const delays: number[] = [];
    for (let i = 0; i < 20; i++) {
      const before = seen;
      await a.setPolicy({ source: `p${i}`, hash: `h${i}`, setAt: i, setBy: "a" });
      const t0 = performance.now();
      for (let k = 0; k < 1000 && seen === before; k++) await new Promise((r) => setImmediate(r));
      delays.push(performance.now() - t0);
    }
    const head = await b.latestSeq();
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) await b.changesSince(head, 1000);
    const pollMs = (performance.now() - t0) / 100;
    delays.sort((x, y) => x - y);
    expect(seen).toBe(20);
    console.log(`NOTIFY after commit: median ${delays[10].toFixed(2)} ms, max ${delays[19].toFixed(2)} ms; one empty poll: ${pollMs.toFixed(2)} ms`);
  });
});
