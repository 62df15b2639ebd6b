// What bare Node costs on this machine for the coordination server's two kinds of connection, with no
// EmberNet code on either side: the floor beside which bench/coord.ts's figures are read (docs/performance.md).
//   enroll: a TLS 1.3 connection carrying two small requests (the bundle, then the enrollment), then closed;
//   stream: an mTLS connection (Ed25519 client certificate) carrying one GET answered by a 40 KB write (a full
//           map) or a 10-byte one, then held open, idle.
// The server is a child process (bench/https-floor-server.mjs), the clients run here, as in bench/coord.ts.
//   npx tsx bench/https-floor.ts [N]
import { fork, type ChildProcess } from "node:child_process";
import { Agent, request } from "node:https";
import { mkdtempSync, rmSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { IncomingMessage } from "node:http";
import { generateEd25519, initCa, issueLeaf, privateKeyToPem, toPem, withIntermediates } from "../src/pki/index.js";

type Mode = "enroll" | "stream-small" | "stream-map";
interface ServerReport { cpuMs: number; rssKiB: number }
export interface FloorFigures { perS: number; serverCpuMs: number; clientCpuMs: number; serverKiBPerConnection: number }

const ENROLL_CONCURRENCY = 16; // as bench/coord.ts
const CONNECT_BATCH = 250;

async function tlsMaterial() {
  const dir = mkdtempSync(join(tmpdir(), "ember-https-floor-"));
  try {
    const ca = await initCa(join(dir, "ca"), "floor.internal");
    const leaf = async (name: string) => {
      const keys = generateEd25519();
      const der = await issueLeaf(ca, { name, tenant: "floor", ttlMs: 3_600_000, publicKey: keys.publicKey });
      return { cert: withIntermediates(toPem(der, "CERTIFICATE"), ca.bundlePem), key: privateKeyToPem(keys.privateKey) };
    };
    return { bundle: ca.bundlePem, server: await leaf("floor-server"), client: await leaf("floor-client") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
type Material = Awaited<ReturnType<typeof tlsMaterial>>;

function startServer(mode: Mode, m: Material): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(join(import.meta.dirname, "https-floor-server.mjs"), [mode],
    { stdio: ["pipe", "inherit", "inherit", "ipc"] });
  child.stdin!.end(JSON.stringify({ ...m.server, ca: m.bundle }));
  return new Promise((resolve, reject) => {
    child.once("message", (msg) => resolve({ child, port: (msg as { port: number }).port }));
    child.once("exit", (code) => reject(new Error(`https-floor-server exited ${code}`)));
  });
}

/**
 * Time left to a server after its connections are up, before its memory is read: the floor and the coordination
 * server (bench/coord.ts) are read alike, resident memory after this settle and no forced GC (until 2026-12-08 the
 * floor alone was read after two forced GCs, which left its garbage out and the coordination server's in).
 */
export const MEMORY_SETTLE_MS = 2_500;

function report(child: ChildProcess, settleMs: number): Promise<ServerReport> {
  return new Promise((resolve) => { child.once("message", (m) => resolve(m as ServerReport)); child.send({ settleMs }); });
}

const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

export async function measureFloor(mode: Mode, n: number): Promise<FloorFigures> {
  const m = await tlsMaterial();
  const { child, port } = await startServer(mode, m);
  const held: IncomingMessage[] = [];
  try {
    const stream = mode !== "enroll";
    // One secure context for every client, and no verification of the server on the client's side: the floor
    // leaves out what every real client adds (a context per node, the chain check), so it is Node's least.
    const secureContext = createSecureContext({ minVersion: "TLSv1.3", ...(stream ? m.client : {}) });
    const once = (agent: Agent, expect: number) => new Promise<void>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, path: "/", method: stream ? "GET" : "POST", agent,
        rejectUnauthorized: false }, (res) => {
        let got = 0;
        res.on("data", (d: Buffer) => {
          got += d.length;
          if (stream && got >= expect) { held.push(res); resolve(); }
        });
        res.on("end", resolve);
      });
      req.on("error", reject);
      req.end(stream ? undefined : Buffer.alloc(600, 1)); // about a CSR with its JSON
    });
    const before = await report(child, 0);
    const c0 = cpuMs(), t0 = performance.now();
    if (stream) {
      const expect = mode === "stream-map" ? 40_000 : 10;
      for (let i = 0; i < n; i += CONNECT_BATCH) {
        const batch = Math.min(CONNECT_BATCH, n - i);
        await Promise.all(Array.from({ length: batch }, () => once(new Agent({ secureContext, maxSockets: 1 }), expect)));
      }
    } else {
      let next = 0;
      await Promise.all(Array.from({ length: ENROLL_CONCURRENCY }, async () => {
        for (let i = next++; i < n; i = next++) {
          const agent = new Agent({ secureContext, keepAlive: true, maxSockets: 1 });
          await once(agent, 0);
          await once(agent, 0);
          agent.destroy();
        }
      }));
    }
    const wallMs = performance.now() - t0, clientMs = cpuMs() - c0;
    const after = await report(child, MEMORY_SETTLE_MS);
    return {
      perS: n / (wallMs / 1000), serverCpuMs: (after.cpuMs - before.cpuMs) / n, clientCpuMs: clientMs / n,
      serverKiBPerConnection: stream ? (after.rssKiB - before.rssKiB) / n : 0,
    };
  } finally {
    for (const r of held) r.destroy();
    child.kill("SIGKILL");
  }
}

/** The three floors, printed in bench/coord.ts's words. */
export async function printFloor(n: number): Promise<{ enroll: FloorFigures; map: FloorFigures; small: FloorFigures }> {
  const enroll = await measureFloor("enroll", n);
  const map = await measureFloor("stream-map", n);
  const small = await measureFloor("stream-small", n);
  const f = (x: FloorFigures) => `server ${x.serverCpuMs.toFixed(2)} ms, client ${x.clientCpuMs.toFixed(2)} ms of CPU each`;
  console.log(`Bare node:https on this machine, no EmberNet code (bench/https-floor.ts, N = ${n}):`);
  console.log(`  enrollment-shaped connections  ${enroll.perS.toFixed(0)}/s (${f(enroll)})`);
  console.log(`  map-stream-shaped connections  ${map.perS.toFixed(0)}/s (${f(map)}): ${(10_000 / map.perS).toFixed(1)} s for 10,000`);
  console.log(`  server memory per idle mTLS connection: ${small.serverKiBPerConnection.toFixed(1)} KiB after a 10-byte answer, ` +
    `${map.serverKiBPerConnection.toFixed(1)} KiB after a 40 KB one`);
  return { enroll, map, small };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await printFloor(Number(process.argv[2] ?? 2_000));
  process.exit(0);
}
