// A throwaway PostgreSQL cluster for one test file: initdb into a temp dir (as the unprivileged `postgres` user
// when we are root: PostgreSQL refuses to run as root), started on a free port on 127.0.0.1 with its unix socket
// in the temp dir, stopped with `pg_ctl -m immediate` and deleted afterwards. Binaries are looked up on PATH,
// then in Debian's /usr/lib/postgresql/<version>/bin (where `apt-get install postgresql` puts them).
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import pg from "pg";

const TOOLS = ["initdb", "pg_ctl", "postgres"];

/** The directory holding initdb, pg_ctl and postgres, or undefined. */
export function findPostgresBin(): string | undefined {
  const dirs = (process.env.PATH ?? "").split(delimiter).filter(Boolean);
  const debian = "/usr/lib/postgresql";
  if (existsSync(debian)) {
    const versions = readdirSync(debian).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    dirs.push(...versions.map((v) => join(debian, v, "bin")));
  }
  return dirs.find((d) => TOOLS.every((t) => existsSync(join(d, t))));
}

/** Who runs the cluster: the `postgres` user when we are root (uid/gid), else ourselves. */
function runAs(): { uid: number; gid: number } | undefined | string {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch { return "running as root and there is no `postgres` user to run PostgreSQL as"; }
}

/** Why PostgreSQL tests cannot run here, or undefined when they can. */
export function postgresSkipReason(): string | undefined {
  if (!findPostgresBin()) return "PostgreSQL binaries (initdb, pg_ctl, postgres) not found on PATH or in /usr/lib/postgresql/*/bin (apt-get install postgresql)";
  const who = runAs();
  return typeof who === "string" ? who : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

export interface PgCluster {
  port: number;
  /** postgres://postgres@127.0.0.1:PORT/<db> */
  url(db: string): string;
  /** Creates an empty database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Restarts the server (pg_ctl restart -m fast: clients are disconnected, committed data stays), asynchronously. */
  restart(): Promise<void>;
  /** Stops the server (pg_ctl stop -m fast) and keeps its data, for an outage; startServer() brings it back. */
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  stop(): void;
}

export async function startPostgres(): Promise<PgCluster> {
  const bin = findPostgresBin();
  const who = runAs();
  if (!bin || typeof who === "string") throw new Error(postgresSkipReason());
  const dir = mkdtempSync(join(tmpdir(), "ember-pg-"));
  if (who) chownSync(dir, who.uid, who.gid);
  chmodSync(dir, 0o700);
  const data = join(dir, "data"), log = join(dir, "postgres.log");
  const run = (tool: string, args: string[], timeoutMs: number) => {
    const r = spawnSync(join(bin, tool), args, {
      cwd: dir, encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: process.env.PATH, LC_ALL: "C", TZ: "UTC" }, ...(who ? { uid: who.uid, gid: who.gid } : {}),
    });
    if (r.status !== 0) {
      const tail = existsSync(log) ? readFileSync(log, "utf8").slice(-2_000) : "";
      throw new Error(`${tool} ${args.join(" ")} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}${tail}`);
    }
  };
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    process.off("exit", stop);
    try { run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "-t", "20", "stop"], 25_000); } catch { /* not running */ }
    rmSync(dir, { recursive: true, force: true });
  };
  // A test process that dies without its afterAll still takes the cluster down with it.
  process.on("exit", stop);
  try {
    run("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"], 60_000);
    const port = await freePort();
    // fsync off: these clusters are thrown away; the crash tests kill coordination servers, not PostgreSQL.
    const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200`;
    run("pg_ctl", ["-D", data, "-l", log, "-o", opts, "-w", "-t", "30", "start"], 40_000);
    const url = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;
    const pgCtl = (action: string) => new Promise<void>((resolve, reject) => {
      execFile(join(bin, "pg_ctl"), ["-D", data, "-l", log, "-o", opts, "-m", "fast", "-w", "-t", "30", action], {
        cwd: dir, timeout: 40_000, env: { PATH: process.env.PATH, LC_ALL: "C", TZ: "UTC" }, ...(who ? { uid: who.uid, gid: who.gid } : {}),
      }, (err, _out, stderr) => (err ? reject(new Error(`pg_ctl ${action} failed: ${stderr || err.message}`)) : resolve()));
    });
    return {
      port, url, stop,
      restart: () => pgCtl("restart"),
      stopServer: () => pgCtl("stop"),
      startServer: () => pgCtl("start"),
      createDatabase: async (name: string) => {
        const c = new pg.Client({ connectionString: url("postgres") });
        await c.connect();
        try { await c.query(`CREATE DATABASE "${name.replace(/"/g, "")}"`); } finally { await c.end(); }
        return url(name);
      },
    };
  } catch (err) {
    stop();
    throw err;
  }
}
