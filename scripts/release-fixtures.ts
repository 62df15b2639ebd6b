// Makes the fixtures of test/release/migrations.test.ts with a build of the previous release (its bin/ember.mjs):
// a node's state directory and config, the coordination server's SQLite database and a PostgreSQL dump, each
// written by that release's own code with data in it. Run once per release, with the release's build:
//   npx tsx scripts/release-fixtures.ts /path/to/previous-release-checkout test/fixtures/release-X.Y.Z
// (test/release/previous-release.ts builds one: `git archive COMMIT`, `npm ci`).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import Database from "better-sqlite3";
import { startPostgres, findPostgresBin } from "../test/helpers/postgres.js";

const [oldRoot, outArg] = process.argv.slice(2);
if (!oldRoot || !outArg) { console.error("usage: tsx scripts/release-fixtures.ts PREVIOUS_RELEASE_DIR OUT_DIR"); process.exit(2); }
const OLD = join(resolve(oldRoot), "bin", "ember.mjs");
const out = resolve(outArg);
const tmp = mkdtempSync(join(tmpdir(), "ember-fixtures-"));
const env = { ...process.env, EMBER_PORTMAP: "off" };
const ember = (args: string[], input?: string) => execFileSync(process.execPath, [OLD, ...args], { env, encoding: "utf8", input, timeout: 60_000 });

function startCoord(args: string[]): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, [OLD, "coord", ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  const tail: string[] = [];
  createInterface({ input: proc.stderr! }).on("line", (l) => { tail.push(l); if (tail.length > 20) tail.shift(); });
  return new Promise((res, rej) => {
    createInterface({ input: proc.stdout! }).on("line", (l) => { const m = /(https:\/\/\S+)/.exec(l); if (m) res({ proc, url: m[1] }); });
    proc.once("exit", (c) => rej(new Error(`coord exited ${c}: ${tail.join("\n")}`)));
  });
}
const stop = (p: ChildProcess) => new Promise<void>((r) => { p.once("exit", () => r()); p.kill("SIGTERM"); });

/** What the fixture mesh holds: tokens (one used, one not), two nodes (one revoked), a policy, a console login. */
async function populate(url: string, stateDir: string): Promise<void> {
  const admin = ["--coord", url, "--cert", join(tmp, "admin.crt"), "--key", join(tmp, "admin.key"), "--ca", join(tmp, "ca", "bundle.pem")];
  writeFileSync(join(tmp, "policy.yaml"), "version: 1\nrules:\n  - allow: {source: \"@eng\", target: \"*\", protocol: tcp, ports: [22, 443]}\n");
  const token = () => JSON.parse(ember(["token", "create", "--tenant", "acme", "--groups", "eng", "--ttl", "720h", "--json", ...admin])).token as string;
  ember(["up", "--enroll-only", "--state", stateDir, "--coord", url, "--token", token(), "--name", "laptop-1"]);
  ember(["up", "--enroll-only", "--state", `${stateDir}-revoked`, "--coord", url, "--token", token(), "--name", "old-box"]);
  ember(["nodes", "revoke", "old-box", ...admin]);
  ember(["policy", "set", join(tmp, "policy.yaml"), ...admin]);
  token(); // left unused
  ember(["admin", "create", "alice", "--password-stdin", ...admin], "correct horse battery staple\n");
}

mkdirSync(out, { recursive: true });
const commit = (() => { try { return readFileSync(join(resolve(oldRoot), ".release-commit"), "utf8").trim(); } catch { return "unknown"; } })();
ember(["ca", "init", "--dir", join(tmp, "ca"), "--trust-domain", "fixture.embernet"]);
ember(["cert", "issue", "--ca-dir", join(tmp, "ca"), "--name", "ops-admin", "--tenant", "ops", "--admin", "--ttl", "1h", "--out", join(tmp, "admin")]);

// SQLite.
{
  const data = join(tmp, "coord-sqlite");
  const { proc, url } = await startCoord(["--data", data, "--ca-dir", join(tmp, "ca"), "--listen", "127.0.0.1:0"]);
  try { await populate(url, join(tmp, "node-state")); } finally { await stop(proc); }
  const db = new Database(join(data, "coord.db"));
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.pragma("journal_mode = DELETE");
  db.close();
  copyFileSync(join(data, "coord.db"), join(out, "coord.db"));
  rmSync(join(out, "node-state"), { recursive: true, force: true });
  cpSync(join(tmp, "node-state"), join(out, "node-state"), { recursive: true, filter: (src) => !src.endsWith(".sock") });
}

// PostgreSQL: the same mesh, dumped as SQL.
{
  const bin = findPostgresBin();
  if (!bin) throw new Error("PostgreSQL binaries are needed for the PostgreSQL fixture");
  const pg = await startPostgres();
  try {
    const url = await pg.createDatabase("fixture");
    const { proc, url: coordUrl } = await startCoord(["--data", join(tmp, "coord-pg"), "--store", url, "--ca-dir", join(tmp, "ca"), "--listen", "127.0.0.1:0"]);
    try { await populate(coordUrl, join(tmp, "node-state-pg")); } finally { await stop(proc); }
    const pgDump = [join(bin, "pg_dump"), ...readdirSync("/usr/lib/postgresql").map((v) => join("/usr/lib/postgresql", v, "bin", "pg_dump"))].find((f) => existsSync(f));
    if (!pgDump) throw new Error("pg_dump not found");
    const dump = execFileSync(pgDump, ["--no-owner", "--no-privileges", "--inserts", "--dbname", url], { encoding: "utf8" });
    // Plain SQL a driver can run in one query: no psql meta-commands (\restrict, \unrestrict).
    writeFileSync(join(out, "pg.sql"), dump.split("\n").filter((l) => !l.startsWith("\\")).join("\n"));
  } finally { pg.stop(); }
}

// A node config in the previous release's format, proven readable by that release's own loader.
const config = `# A node config as the previous release read it (no version key).
state: ./node-state
coord: https://coord.fixture.example:8443
listen: 0.0.0.0:41641
log_level: info
mtu: 1280
proxy: 1080
portmap: false
services:
  ssh: {to: "127.0.0.1:22", protocol: tcp, port: 22}
  web: {to: "127.0.0.1:8080", protocol: https, port: 443}
`;
writeFileSync(join(out, "node.yaml"), config);
const { loadNodeConfig } = await import(join(resolve(oldRoot), "dist", "src", "node", "config.js"));
const parsed = await loadNodeConfig({ config: join(out, "node.yaml") });
if (parsed.services.length !== 2) throw new Error("the previous release did not read the fixture config");
writeFileSync(join(out, "MADE-BY"), `previous release built from commit ${commit} by scripts/release-fixtures.ts on ${new Date().toISOString()}\n`);
rmSync(tmp, { recursive: true, force: true });
console.log(`fixtures written to ${out}`);
