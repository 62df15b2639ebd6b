// Overlay addresses (TUN mode): the pure choice (hash of tenant/name into 100.64.0.0/10, skipping .0 and .255,
// the next free one on collision), and the store that keeps it: real SQLite files, across re-enrollment,
// certificate renewal, a restart of the server, and a database from before the addresses existed.
import { afterAll, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { join } from "node:path";
import {
  chooseOverlayAddress, intToIpv4, ipv4ToInt, OverlayPoolExhausted, OVERLAY_BASE, OVERLAY_SIZE, preferredOverlayAddress, usableOverlayAddress,
} from "../../src/coord/overlay-address.js";
import { DB_FILE, SqliteStore } from "../../src/coord/sqlite-store.js";
import type { NodeRecord } from "../../src/coord/store.js";
import { CoordClient, enroll } from "../../src/coord-client/client.js";
import type { CoordServer } from "../../src/coord/server.js";
import { makeMesh, startInProcess, tempDir, waitFor, type Mesh } from "./helpers.js";

describe("chooseOverlayAddress", () => {
  it("is the identity's hash in 100.64.0.0/10, the same every time, never .0 or .255", () => {
    const free = () => false;
    const a = chooseOverlayAddress("acme", "db-1", free);
    expect(chooseOverlayAddress("acme", "db-1", free)).toBe(a);
    expect(intToIpv4(a)).toMatch(/^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d+\.\d+$/);
    expect(chooseOverlayAddress("globex", "db-1", free)).not.toBe(a); // the tenant is part of the identity
    for (let i = 0; i < 2000; i++) {
      const ip = chooseOverlayAddress("t", `n-${i}`, free);
      expect(usableOverlayAddress(ip)).toBe(true);
      expect(ip & 0xff).not.toBe(0);
      expect(ip & 0xff).not.toBe(255);
    }
  });

  it("knows the prefix's edges", () => {
    for (const bad of ["100.64.0.0", "100.127.255.255", "100.64.1.0", "100.64.0.255", "100.63.255.254", "100.128.0.1"]) expect(usableOverlayAddress(ipv4ToInt(bad)), bad).toBe(false);
    for (const ok of ["100.64.0.1", "100.127.255.254", "100.100.100.100"]) expect(usableOverlayAddress(ipv4ToInt(ok)), ok).toBe(true);
    expect(OVERLAY_BASE).toBe(ipv4ToInt("100.64.0.0"));
    expect(OVERLAY_SIZE).toBe(1 << 22);
  });

  it("takes the next free usable address on a collision, stepping over .255 and .0", () => {
    const first = chooseOverlayAddress("acme", "db-1", () => false);
    expect(chooseOverlayAddress("acme", "db-1", (ip) => ip === first)).toBe(first + 1 === ((first | 0xff) >>> 0) ? first + 3 : first + 1);
    // Force a walk over a /24 boundary: everything up to the end of the preferred address's /24 is taken.
    const end = (first | 0xff) >>> 0; // x.x.x.255
    const next = chooseOverlayAddress("acme", "db-1", (ip) => ip >= first && ip < end);
    expect(intToIpv4(next).endsWith(".1")).toBe(true);
    expect(next).toBe(end + 2);
  });

  it("walks from the hash, wraps at the end of the prefix, and says so when nothing is free", () => {
    const pref = preferredOverlayAddress("acme", "db-1");
    const wrapped = chooseOverlayAddress("acme", "db-1", (ip) => ip >= pref);
    expect(wrapped).toBe(OVERLAY_BASE + 1); // 100.64.0.0 is never handed out
    expect(() => chooseOverlayAddress("acme", "db-1", () => true)).toThrow(OverlayPoolExhausted);
  });
});

// ---- the store, on real SQLite files ------------------------------------------------------------------

function nodeRecord(name: string, tenant: string, enrollmentId: string): NodeRecord {
  return {
    name, tenant, groups: [], roles: [], enrollmentId, status: "active", enrolledAt: 1, tokenId: "tok", certTtlMs: 60_000,
    serial: `s-${enrollmentId}`, certPem: "PEM", notAfter: Date.now() + 60_000, endpoints: [],
  };
}

async function openStore(dir: string): Promise<SqliteStore> {
  const s = new SqliteStore(dir);
  await s.migrate();
  return s;
}

async function enrollIn(s: SqliteStore, name: string, tenant: string, enrollmentId: string): Promise<string> {
  const tokenId = `tok-${enrollmentId}-${tenant}`;
  await s.createToken({ id: tokenId, secretHash: "", tenant, groups: [], roles: [], usesLeft: 1, usesTotal: 1, expiresAt: Date.now() + 60_000, certTtlMs: 60_000, createdAt: 1, createdBy: "t" });
  const r = await s.enroll({
    tokenId, now: Date.now(), node: nodeRecord(name, tenant, enrollmentId), nameFree: () => true,
    cert: { serial: `s-${enrollmentId}`, name, enrollmentId, notAfter: Date.now() + 60_000, issuedAt: 1, kind: "enroll" },
  });
  if (!r.ok) throw new Error(r.detail);
  return r.overlayIp;
}

describe("overlay addresses in the SQLite store", () => {
  const tmp = tempDir("ember-overlay-");
  afterAll(() => tmp.cleanup());

  it("keeps an identity's address across re-enrollment, renewal and reopening the database", async () => {
    const dir = join(tmp.dir, "a");
    let s = await openStore(dir);
    const ip = await enrollIn(s, "db-1", "acme", "e1");
    expect(ip).toBe(intToIpv4(chooseOverlayAddress("acme", "db-1", () => false))); // the hash's choice
    expect((await s.getNode("db-1"))!.overlayIp).toBe(ip);
    await s.revoke({ name: "db-1", now: Date.now(), minNumber: 0, sign: () => "list" });
    expect(await enrollIn(s, "db-1", "acme", "e2")).toBe(ip);
    await s.renew({ name: "db-1", enrollmentId: "e2", certPem: "PEM2", cert: { serial: "s-r", name: "db-1", enrollmentId: "e2", notAfter: Date.now() + 60_000, issuedAt: 2, kind: "renew" } });
    expect((await s.getNode("db-1"))!.overlayIp).toBe(ip);
    await s.close();
    s = new SqliteStore(dir);
    await s.migrate();
    expect((await s.listNodes()).map((n) => n.overlayIp)).toEqual([ip]);
    await s.close();
  });

  it("never hands an identity's address to another: a colliding hash takes the next free, a name in another tenant gets its own", async () => {
    const dir = join(tmp.dir, "b");
    let s = await openStore(dir);
    await s.close();
    // Another identity already holds db-1's first choice: the store must step past it.
    const pref = preferredOverlayAddress("acme", "db-1");
    const raw = new Database(join(dir, DB_FILE));
    raw.prepare("INSERT INTO overlay_addresses (tenant, name, address, assigned_at) VALUES ('other', 'squatter', ?, 1)").run(pref);
    raw.close();
    s = await openStore(dir);
    const ip = await enrollIn(s, "db-1", "acme", "e1");
    expect(ip).not.toBe(intToIpv4(pref));
    expect(ip).toBe(intToIpv4(chooseOverlayAddress("acme", "db-1", (a) => a === pref)));
    // The name re-enrolled under another tenant is another identity: a new address; acme/db-1 keeps its own.
    await s.revoke({ name: "db-1", now: Date.now(), minNumber: 0, sign: () => "list" });
    const other = await enrollIn(s, "db-1", "globex", "e2");
    expect(other).not.toBe(ip);
    await s.revoke({ name: "db-1", now: Date.now(), minNumber: 0, sign: () => "list" });
    expect(await enrollIn(s, "db-1", "acme", "e3")).toBe(ip);
    await s.close();
  });

  it("gives nodes enrolled before the addresses existed theirs at migration, as a fresh enrollment would", async () => {
    const dir = join(tmp.dir, "c");
    let s = new SqliteStore(dir);
    const latest = await s.migrate();
    const ip = await enrollIn(s, "old-1", "acme", "e1");
    await s.close();
    // Back to schema 2: no overlay_addresses table.
    const raw = new Database(join(dir, DB_FILE));
    raw.exec(`DROP TABLE overlay_addresses; DROP INDEX nodes_by_user;
      ${["user_name", "user_groups", "user_cert_pem", "user_not_after"].map((c) => `ALTER TABLE nodes DROP COLUMN ${c};`).join(" ")}
      ${["tenant", "groups", "disabled"].map((c) => `ALTER TABLE console_users DROP COLUMN ${c};`).join(" ")}
      DELETE FROM schema_migrations WHERE version IN (3, 4);`);
    raw.close();
    s = new SqliteStore(dir);
    expect(await s.migrate()).toBe(latest); // every migration since, the overlay addresses among them
    expect((await s.getNode("old-1"))!.overlayIp).toBe(ip);
    await s.close();
  });
});

// ---- end to end: what nodes receive in their peer map ---------------------------------------------------

describe("overlay addresses in the peer map", () => {
  let mesh: Mesh;
  let server: CoordServer | undefined;
  const clients: CoordClient[] = [];
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await server?.close();
    mesh?.cleanup();
  });

  const client = (name: string) => {
    const c = new CoordClient({ coordUrl: server!.url, stateDir: join(mesh.dir, name), minBackoffMs: 200, maxBackoffMs: 1_000 });
    clients.push(c);
    c.start();
    return c;
  };
  const enrollNode = async (name: string, groups: string[]) => {
    const t = (await mesh.admin().createToken({ tenant: "acme", groups, roles: [] })).token;
    return enroll({ coordUrl: server!.url, token: t, name, stateDir: join(mesh.dir, name) });
  };

  it("puts each node's address in its own entry and in its peers', unchanged by a restart and a re-enrollment", async () => {
    mesh = await makeMesh();
    server = await startInProcess(mesh);
    await enrollNode("app-1", ["eng"]);
    await enrollNode("db-1", ["db"]);
    await mesh.admin().setPolicy(`rules:\n  - allow: {source: "@eng", target: "@db", protocol: tcp, ports: [5432]}\n`);
    let app = client("app-1");
    let db = client("db-1");
    await waitFor(() => app.map && db.map, 10_000, "maps");
    const appIp = app.map!.self.overlayIp!;
    const dbIp = db.map!.self.overlayIp!;
    expect(appIp).toMatch(/^100\.\d+\.\d+\.\d+$/);
    expect(dbIp).not.toBe(appIp);
    expect(app.map!.peers.find((p) => p.name === "db-1")?.overlayIp).toBe(dbIp);
    expect(db.map!.peers.find((p) => p.name === "app-1")?.overlayIp).toBe(appIp);
    const listed = (await mesh.admin().listNodes()).nodes;
    expect(Object.fromEntries(listed.map((n: any) => [n.name, n.overlayIp]))).toEqual({ "app-1": appIp, "db-1": dbIp });

    // A restart of the coordination server on the same database.
    await Promise.all(clients.splice(0).map((c) => c.stop()));
    await server.close();
    server = await startInProcess(mesh);
    app = client("app-1");
    db = client("db-1");
    await waitFor(() => app.map && db.map, 10_000, "maps after restart");
    expect(app.map!.self.overlayIp).toBe(appIp);
    expect(app.map!.peers.find((p) => p.name === "db-1")?.overlayIp).toBe(dbIp);

    // Revoked and enrolled again (a new key, a new enrollment): the same identity, the same address.
    await mesh.admin().revoke("db-1");
    await waitFor(() => !app.map!.peers.some((p) => p.name === "db-1"), 5_000, "db-1 gone");
    const r = await enrollNode("db-1", ["db"]);
    expect(r.certPem).toContain("BEGIN CERTIFICATE");
    await waitFor(() => app.map!.peers.find((p) => p.name === "db-1"), 5_000, "db-1 back");
    expect(app.map!.peers.find((p) => p.name === "db-1")!.overlayIp).toBe(dbIp);
  });
});
