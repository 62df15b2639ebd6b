// Fixtures for the coordination tests: a CA, an admin identity, an in-process or child-process server.
import { spawn, type ChildProcess } from "node:child_process";
import { Writable } from "node:stream";
import { request as httpsRequest, type Agent } from "node:https";
import { pino, type Logger } from "pino";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateEd25519, initCa, issueLeaf, privateKeyToPem, toPem, withIntermediates, type CaMaterial } from "../../src/pki/index.js";
import { AdminClient } from "../../src/coord/admin-client.js";
import { CoordServer } from "../../src/coord/server.js";
import { silentLogger } from "../../src/coord/log.js";
import { EMBER } from "../helpers/cli.js";
import { tempDir } from "../helpers/pki.js";
import { startPostgres, type PgCluster } from "../helpers/postgres.js";

export interface Mesh {
  dir: string;
  ca: CaMaterial;
  adminFlags: { cert: string; key: string; ca: string };
  admin: () => AdminClient;
  cleanup: () => void;
}

export async function makeMesh(): Promise<Mesh> {
  const t = tempDir("ember-coord-");
  const ca = await initCa(join(t.dir, "ca"), "acme.internal");
  const keys = generateEd25519();
  const der = await issueLeaf(ca, { name: "ops-admin", tenant: "ops", roles: ["admin"], ttlMs: 3_600_000, publicKey: keys.publicKey });
  const cert = join(t.dir, "admin.crt"), key = join(t.dir, "admin.key");
  writeFileSync(cert, withIntermediates(toPem(der, "CERTIFICATE"), ca.bundlePem));
  writeFileSync(key, privateKeyToPem(keys.privateKey), { mode: 0o600 });
  const adminFlags = { cert, key, ca: join(ca.dir, "bundle.pem") };
  let coordUrl = "";
  const mesh: Mesh & { setUrl: (u: string) => void } = {
    dir: t.dir, ca, adminFlags, cleanup: t.cleanup,
    admin: () => new AdminClient({ ...adminFlags, coord: coordUrl }, {}),
    setUrl: (u: string) => { coordUrl = u; },
  };
  return mesh;
}

export async function startInProcess(mesh: Mesh, opts: { minCertTtlMs?: number; logger?: Logger } = {}): Promise<CoordServer> {
  const server = new CoordServer({
    dataDir: join(mesh.dir, "data"), caDir: mesh.ca.dir, host: "127.0.0.1", port: 0, logger: opts.logger ?? silentLogger(),
    minCertTtlMs: opts.minCertTtlMs ?? 1_000, relays: [{ name: "relay-1", host: "127.0.0.1", port: 4443, stunPort: 3478 }],
  });
  (mesh as any).setUrl(await server.start());
  return server;
}

export interface CoordProcess { child: ChildProcess; url: string; stderr: () => string; kill9: () => Promise<void>; /** With --console-listen: the console's URL. */ consoleUrl?: string; /** With --metrics: the metrics URL. */ metricsUrl?: string }

/** Runs `ember coord` as a real child process; resolves once it prints its URL. `dataDir`: for replicas, one each. */
export function spawnCoord(mesh: Mesh, port = 0, extra: string[] = [], opts: { dataDir?: string } = {}): Promise<CoordProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [EMBER, "coord", "--data", opts.dataDir ?? join(mesh.dir, "data"), "--ca-dir", mesh.ca.dir, "--listen", `127.0.0.1:${port}`, "--min-cert-ttl", "1s", ...extra],
      { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    let out = "";
    const timer = setTimeout(() => { child.kill("SIGKILL"); reject(new Error(`coord did not start: ${err}`)); }, 20_000);
    child.stderr!.on("data", (c) => { err += c; if (err.length > 2_000_000) err = err.slice(-1_000_000); });
    child.stdout!.on("data", (c) => {
      out += c;
      const m = /coordination server (https:\/\/\S+)/.exec(out);
      const wantConsole = extra.includes("--console-listen");
      const con = /\nconsole (https:\/\/\S+)\/ui\//.exec(out);
      if (m && (!wantConsole || con)) {
        clearTimeout(timer);
        (mesh as any).setUrl(m[1]);
        resolve({
          child, url: m[1], stderr: () => err, consoleUrl: con?.[1], metricsUrl: /\nmetrics (http:\/\/\S+)/.exec(out)?.[1],
          kill9: () => new Promise((res) => { if (child.exitCode !== null || child.signalCode) return res(); child.once("exit", () => res()); child.kill("SIGKILL"); }),
        });
      }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`coord exited ${code}: ${err}`)); });
  });
}

/** The environment that gives admin verbs their connection (EMBER_COORD, EMBER_CERT, EMBER_KEY, EMBER_CA). */
export function adminEnv(mesh: Mesh, coord: { url: string }): NodeJS.ProcessEnv {
  return { EMBER_COORD: coord.url, EMBER_CERT: mesh.adminFlags.cert, EMBER_KEY: mesh.adminFlags.key, EMBER_CA: mesh.adminFlags.ca };
}

/** A fresh mesh, its `ember coord` child and the admin environment; stop() kills the server and removes the files. */
export async function adminCoord(): Promise<{ mesh: Mesh; coord: CoordProcess; env: NodeJS.ProcessEnv; stop: () => Promise<void> }> {
  const mesh = await makeMesh();
  const coord = await spawnCoord(mesh);
  return { mesh, coord, env: adminEnv(mesh, coord), stop: async () => { await coord.kill9(); mesh.cleanup(); } };
}

export function waitFor<T>(fn: () => T | undefined | false, timeoutMs = 10_000, what = "condition"): Promise<T> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      let v: T | undefined | false;
      try { v = fn(); } catch { v = undefined; }
      if (v) return resolve(v);
      if (Date.now() - start > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

export function portOf(url: string): number {
  return Number(new URL(url).port);
}

export { tempDir };

/** A pino logger that keeps its JSON lines in memory, for asserting on what the server logged. */
export function memoryLogger(): { logger: Logger; lines: () => any[] } {
  const lines: string[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { lines.push(...String(chunk).split("\n").filter(Boolean)); cb(); } });
  return { logger: pino({ level: "debug" }, sink), lines: () => lines.map((l) => JSON.parse(l)) };
}

export interface RawAnswer { status: number; body: string; json?: any; headers: Record<string, string | string[] | undefined> }

/**
 * One HTTPS request with any method, path and body, optionally with a client certificate; the server's
 * certificate is not checked (tests only). The path is sent exactly as given, escapes included.
 */
export function rawRequest(url: string, method: string, path: string, o: {
  cert?: string; key?: string; body?: Buffer | string; headers?: Record<string, string>; timeoutMs?: number; localAddress?: string; agent?: Agent;
} = {}): Promise<RawAnswer & { headers: Record<string, string | string[] | undefined> }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: u.hostname, port: u.port, method, path, cert: o.cert, key: o.key, rejectUnauthorized: false, agent: o.agent ?? false, localAddress: o.localAddress,
      headers: { ...(o.body !== undefined ? { "content-type": "application/json", "content-length": Buffer.byteLength(o.body) } : {}), ...o.headers },
      timeout: o.timeoutMs ?? 15_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        let json: any;
        try { json = JSON.parse(body); } catch { json = undefined; }
        resolve({ status: res.statusCode ?? 0, body, json, headers: res.headers });
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer in ${o.timeoutMs ?? 15_000} ms`)));
    req.on("error", reject);
    req.end(o.body);
  });
}

export interface ReplicaSet { cluster: PgCluster; mesh: Mesh; db: string; reps: CoordProcess[]; stop: () => Promise<void> }

/**
 * `count` real `ember coord` replicas on one throwaway PostgreSQL database, each with its own data directory
 * (data-0, data-1, ...). `storeFor` may route a replica to the database another way (a TCP link to cut).
 * stop() kills them -9, stops the cluster and removes the mesh's files.
 */
export async function startReplicaSet(count: number, opts: { storeFor?: (db: string, index: number, cluster: PgCluster) => Promise<string> } = {}): Promise<ReplicaSet> {
  const cluster = await startPostgres();
  const mesh = await makeMesh();
  const db = await cluster.createDatabase("coord");
  const reps = await Promise.all(Array.from({ length: count }, async (_, i) =>
    spawnCoord(mesh, 0, ["--store", (await opts.storeFor?.(db, i, cluster)) ?? db], { dataDir: join(mesh.dir, `data-${i}`) })));
  return {
    cluster, mesh, db, reps,
    stop: async () => {
      await Promise.all(reps.map((r) => r.kill9()));
      cluster.stop();
      mesh.cleanup();
    },
  };
}
