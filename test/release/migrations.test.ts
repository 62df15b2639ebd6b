// What the previous release wrote, read by this one (docs/decisions.md "Releases and the compatibility window"): a
// node's state directory and config, the coordination server's SQLite database and a PostgreSQL database, each made
// by that release's own code with data in it (test/fixtures/release-X.Y.Z, scripts/release-fixtures.ts). Each is migrated
// in place and keeps its data; each refuses, with a clear message and nothing changed, what a newer release wrote.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { X509Certificate } from "node:crypto";
import { cpSync, existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { readCredentials, keyMatchesCert } from "../../src/coord-client/state-files.js";
import { openStateDir, STATE_FORMAT, STATE_MARKER, StateVersionError } from "../../src/node/state-version.js";
import { ConfigError, loadNodeConfig } from "../../src/node/config.js";
import { SqliteStore } from "../../src/coord/sqlite-store.js";
import { PgStore } from "../../src/coord/pg-store.js";
import type { Store } from "../../src/coord/store.js";
import { RELEASE } from "../../src/release.js";
import { ember } from "../helpers/cli.js";
import { ROOT } from "../helpers/built.js";
import { parseChangelog, previousRelease } from "./previous-release.js";
import { tempDir } from "../helpers/pki.js";
import { postgresSkipReason, startPostgres, type PgCluster } from "../helpers/postgres.js";

/** The fixtures of the previous release as CHANGELOG.md names it (docs/operations.md "Cutting a release" makes them). */
const PREVIOUS = previousRelease(parseChangelog(readFileSync(join(ROOT, "CHANGELOG.md"), "utf8")), RELEASE.version);
const FIXTURES = join(ROOT, "test", "fixtures", `release-${PREVIOUS.version}`);
if (!existsSync(FIXTURES)) throw new Error(`no fixtures of the previous release ${PREVIOUS.version} in ${FIXTURES}: make them with scripts/release-fixtures.ts`);
let tmp: ReturnType<typeof tempDir>;
beforeAll(() => { tmp = tempDir("ember-migrations-"); });
afterAll(() => tmp?.cleanup());

/** A fresh copy of a fixture (the committed files stay untouched). */
function copyOf(name: string): string {
  const dest = join(tmp.dir, `${name}-${Math.random().toString(36).slice(2, 8)}`);
  cpSync(join(FIXTURES, name), dest, { recursive: true });
  return dest;
}
const snapshot = (dir: string) => Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), "utf8")]));

describe(`node state directory of release ${PREVIOUS.version}`, () => {
  it("is migrated in place: marked with this format, credentials read as they were", () => {
    const dir = copyOf("node-state");
    const before = snapshot(dir);
    expect(before[STATE_MARKER]).toBeUndefined();
    expect(openStateDir(dir)).toEqual({ action: "write", why: "migrate", from: 1 });
    expect(JSON.parse(readFileSync(join(dir, STATE_MARKER), "utf8"))).toEqual({ format: STATE_FORMAT, writtenBy: RELEASE.version });
    const after = snapshot(dir);
    for (const f of Object.keys(before)) expect(after[f], f).toBe(before[f]);
    const creds = readCredentials(dir);
    expect(keyMatchesCert(creds.keyPem, creds.certPem)).toBe(true);
    expect(new X509Certificate(creds.certPem).subject).toMatch(/CN=laptop-1/);
    expect(openStateDir(dir)).toEqual({ action: "keep" });
  });

  it("one written by a newer release is refused, naming both releases, and nothing in it changes", () => {
    const dir = copyOf("node-state");
    writeFileSync(join(dir, STATE_MARKER), JSON.stringify({ format: STATE_FORMAT + 1, writtenBy: "9.0.0" }));
    const before = snapshot(dir);
    expect(() => openStateDir(dir)).toThrow(StateVersionError);
    expect(() => openStateDir(dir)).toThrow(new RegExp(`written by ember 9\\.0\\.0 .*ember ${RELEASE.version.replaceAll(".", "\\.")} reads up to ${STATE_FORMAT}.*downgrade would corrupt it`));
    expect(snapshot(dir)).toEqual(before);
    // The CLI says it in one line, before any token is spent or port bound, and exits 2.
    const r = ember(["up", "--state", dir, "--listen", "127.0.0.3:0"], { timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^ember: state directory .* was written by ember 9\.0\.0/);
    expect(snapshot(dir)).toEqual(before);
  });

  it("a garbled state.json is refused with what to do, not taken for a fresh directory", () => {
    const dir = copyOf("node-state");
    writeFileSync(join(dir, STATE_MARKER), "{ not json");
    expect(() => openStateDir(dir)).toThrow(/state\.json is unreadable \(not JSON\): restore it from a backup/);
  });
});

describe(`node config of release ${PREVIOUS.version}`, () => {
  it("reads as it did (no version key means version 1)", async () => {
    const c = await loadNodeConfig({ config: join(FIXTURES, "node.yaml") });
    expect(c.services.map((s) => s.name).sort()).toEqual(["ssh", "web"]);
    expect(c.listenPort).toBe(41641);
    expect(c.proxy).toEqual({ host: "127.0.0.1", port: 1080 });
    expect(c.stateDir).toBe(join(FIXTURES, "node-state"));
  });

  it("a config of a newer format is refused by name; version 1 is accepted", async () => {
    const text = readFileSync(join(FIXTURES, "node.yaml"), "utf8");
    const newer = join(tmp.dir, "newer.yaml"), same = join(tmp.dir, "same.yaml");
    writeFileSync(newer, `version: 2\n${text}`);
    writeFileSync(same, `version: 1\n${text}`);
    await expect(loadNodeConfig({ config: newer })).rejects.toThrow(ConfigError);
    await expect(loadNodeConfig({ config: newer })).rejects.toThrow(/is version 2, written for a newer EmberNet \(this release reads version 1\)/);
    expect((await loadNodeConfig({ config: same })).services).toHaveLength(2);
  });
});

/** The checks both stores pass after migrating the previous release's fixture mesh (scripts/release-fixtures.ts makes it). */
async function checkMigratedMesh(store: Store): Promise<void> {
  const nodes = await store.listNodes();
  const laptop = nodes.find((n) => n.name === "laptop-1")!;
  expect(laptop).toMatchObject({ tenant: "acme", groups: ["eng"], status: "active" });
  expect(laptop.overlayIp).toMatch(/^100\./);
  expect(laptop.protocol).toBeUndefined(); // no report since the upgrade
  expect(nodes.find((n) => n.name === "old-box")?.status).toBe("revoked");
  expect((await store.listRevoked()).map((r) => r.name)).toEqual(expect.arrayContaining(["old-box"]));
  expect((await store.getRevocation())?.number).toBeGreaterThanOrEqual(1);
  expect((await store.getPolicy())?.source).toMatch(/@eng/);
  expect((await store.getUser("alice"))?.passwordHash).toBeTruthy();
  expect(await store.tokenGroups()).toContain("eng");
  // The new columns work on the old rows: a status report records the version, a later status without one keeps it.
  await store.saveStatuses([{ name: "laptop-1", endpoints: ["198.18.0.9:41641"], lastSeen: Date.now(), protocol: 2, version: "0.2.0" }]);
  expect(await store.getNode("laptop-1")).toMatchObject({ protocol: 2, version: "0.2.0", endpoints: ["198.18.0.9:41641"] });
  await store.saveStatuses([{ name: "laptop-1", endpoints: [], lastSeen: Date.now() }]);
  expect(await store.getNode("laptop-1")).toMatchObject({ protocol: 2, version: "0.2.0" });
  await store.saveStatuses([{ name: "laptop-1", endpoints: [], lastSeen: Date.now(), protocol: 1 }]);
  const downgraded = await store.getNode("laptop-1");
  expect(downgraded?.protocol).toBe(1);
  expect(downgraded?.version).toBeUndefined();
}

describe(`SQLite database of release ${PREVIOUS.version}`, () => {
  it("migrates with its data: nodes, revocations, policy, console logins, tokens", async () => {
    const dir = join(tmp.dir, "sqlite-upgrade");
    cpSync(join(FIXTURES, "coord.db"), join(dir, "coord.db"), { recursive: true });
    const store = new SqliteStore(dir);
    try {
      const latest = await store.migrate();
      expect(latest).toBeGreaterThanOrEqual(7);
      await checkMigratedMesh(store);
    } finally { await store.close(); }
  });

  it("a database a newer release migrated is refused, naming the fix", async () => {
    const dir = join(tmp.dir, "sqlite-newer");
    cpSync(join(FIXTURES, "coord.db"), join(dir, "coord.db"), { recursive: true });
    const first = new SqliteStore(dir);
    const latest = await first.migrate();
    await first.close();
    const Database = (await import("better-sqlite3")).default;
    const db = new Database(join(dir, "coord.db"));
    db.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)").run(latest + 1, Date.now());
    db.close();
    const again = new SqliteStore(dir);
    try {
      await expect(again.migrate()).rejects.toThrow(new RegExp(`SQLite at .*coord\\.db was migrated by a newer EmberNet \\(schema version ${latest + 1}; .* knows up to ${latest}\\): a downgrade would corrupt it`));
    } finally { await again.close(); }
  });
});

const pgSkip = postgresSkipReason();
if (pgSkip) console.log(`PostgreSQL migration tests skipped: ${pgSkip}`);

describe.skipIf(!!pgSkip)(`PostgreSQL database of release ${PREVIOUS.version}`, () => {
  let cluster: PgCluster;
  beforeAll(async () => { cluster = await startPostgres(); }, 60_000);
  afterAll(() => cluster?.stop());

  async function restoredFixture(db: string): Promise<string> {
    const url = await cluster.createDatabase(db);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try { await c.query(readFileSync(join(FIXTURES, "pg.sql"), "utf8")); } finally { await c.end(); }
    return url;
  }

  it("migrates with its data: nodes, revocations, policy, console logins, tokens", async () => {
    const store = new PgStore(await restoredFixture("upgrade"));
    try {
      expect(await store.migrate()).toBeGreaterThanOrEqual(8);
      await checkMigratedMesh(store);
    } finally { await store.close(); }
  }, 60_000);

  it("a database a newer release migrated is refused, naming the fix", async () => {
    const url = await restoredFixture("newer");
    const first = new PgStore(url);
    const latest = await first.migrate();
    await first.close();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)", [latest + 1, Date.now()]);
    await c.end();
    const again = new PgStore(url);
    try {
      await expect(again.migrate()).rejects.toThrow(new RegExp(`PostgreSQL at .* was migrated by a newer EmberNet \\(schema version ${latest + 1}; .* knows up to ${latest}\\)`));
    } finally { await again.close(); }
  }, 60_000);
});
