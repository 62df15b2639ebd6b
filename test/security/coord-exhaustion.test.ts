// The coordination server's HTTPS listener under connection exhaustion: 2,000 connections that never finish
// TLS, finish it and send nothing, or dribble a ClientHello or a request head at one byte per second, from 40
// loopback addresses plus 200 from one address. Throughout, fresh connections must still get /v1/health
// (no certificate) and an mTLS request answered, an enrolled node's map stream (an authenticated
// connection) must stay up, and the server's descriptors and memory stay bounded. The server runs with a
// 2 s handshake deadline and a 4 s lifetime for connections without a client certificate so that the test
// sees them expire; the defaults are 10 s and 30 s.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { request } from "node:https";
import { enroll } from "../../src/coord-client/client.js";
import { makeMesh, portOf, spawnCoord, type CoordProcess, type Mesh } from "../coord/helpers.js";
import { captureClientHello, fdCount, floodProcess, loopbackSources, rssMiB, sampleMax, type FloodProc } from "./helpers.js";

const FLOOD = 2_000;
const FD_BOUND = 1_300; // the unauthenticated budget (1,024) plus the server's own descriptors
const RSS_BOUND_MIB = 400;

let mesh: Mesh;
let coord: CoordProcess;
const floods: FloodProc[] = [];

beforeAll(async () => {
  mesh = await makeMesh();
  coord = await spawnCoord(mesh, 0, ["--handshake-timeout", "2s", "--anonymous-timeout", "4s"]);
}, 60_000);

afterAll(async () => {
  await Promise.all(floods.map((f) => f.stop()));
  await coord?.kill9();
  mesh?.cleanup();
});

/** One request on a fresh connection; resolves with its status and latency, never rejects. */
function once(path: string, cert?: { cert: Buffer; key: Buffer }): Promise<{ status: number | string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port: portOf(coord.url), path, agent: false, rejectUnauthorized: false, timeout: 5_000, ...cert }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0 }));
    });
    req.on("error", (e) => resolve({ status: e.message, ms: performance.now() - t0 }));
    req.on("timeout", () => req.destroy(new Error("no answer in 5 s")));
    req.end();
  });
}

describe("coordination listener exhaustion", () => {
  it("keeps answering health and mTLS requests and an open map stream through 2,000 hostile connections, with bounded fds and memory", async () => {
    const pid = coord.child.pid!;
    const admin = { cert: readFileSync(mesh.adminFlags.cert), key: readFileSync(mesh.adminFlags.key) };
    const t = await mesh.admin().createToken({ tenant: "acme", groups: ["eng"], roles: [] });
    const stateDir = join(mesh.dir, "node-1");
    await enroll({ coordUrl: coord.url, token: t.token, name: "node-1", stateDir });
    const nodeCert = { cert: readFileSync(join(stateDir, "cert.pem")), key: readFileSync(join(stateDir, "key.pem")) };

    // The node's map stream: an authenticated, long-lived connection that must never be evicted.
    let mapBytes = 0;
    let mapClosed = false;
    const map = request({ host: "127.0.0.1", port: portOf(coord.url), path: "/v1/map", agent: false, rejectUnauthorized: false, ...nodeCert }, (res) => {
      expect(res.statusCode).toBe(200);
      res.on("data", (c: Buffer) => { mapBytes += c.length; });
      res.on("close", () => { mapClosed = true; });
    });
    map.on("error", () => { mapClosed = true; });
    map.end();

    const base = { fds: fdCount(pid), rss: rssMiB(pid) };
    const fds = sampleMax(100, () => fdCount(pid));
    const rss = sampleMax(250, () => rssMiB(pid));
    const probes: { health: number[]; mtls: number[]; failures: string[] } = { health: [], mtls: [], failures: [] };
    let probing = true;
    const prober = (async () => {
      while (probing) {
        const [h, m] = await Promise.all([once("/v1/health"), once("/v1/revocation", admin)]);
        if (h.status === 200) probes.health.push(h.ms); else probes.failures.push(`health: ${h.status}`);
        if (m.status === 200) probes.mtls.push(m.ms); else probes.failures.push(`mtls: ${m.status}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    })();

    // The attackers run in their own processes: their CPU is not the valid clients' (or this test's) problem.
    const hello = await captureClientHello();
    const spread = floodProcess({ host: "127.0.0.1", port: portOf(coord.url), count: FLOOD - 200, sources: loopbackSources(40),
      kinds: ["idle", "partial", "slow", "tls-idle", "slowloris"], clientHello: hello });
    const single = floodProcess({ host: "127.0.0.1", port: portOf(coord.url), count: 200, sources: ["127.0.9.9"], kinds: ["idle", "tls-idle"], clientHello: hello });
    floods.push(spread, single);
    const t0 = Date.now();
    const opened = await Promise.all([spread.opened, single.opened]);
    const openedMs = Date.now() - t0;
    // Hold past the 2 s handshake deadline and the 4 s lifetime of unauthenticated connections.
    await new Promise((r) => setTimeout(r, 5_500));
    const stillOpen = spread.last().open + single.last().open;
    const connected = opened[0].connected + opened[1].connected;
    probing = false;
    await prober;
    const peak = { fds: fds.stop(), rss: rss.stop() };
    await Promise.all([spread.stop(), single.stop()]);

    const max = (a: number[]) => Math.max(...a);
    console.log(`coord exhaustion: ${FLOOD} connections opened in ${openedMs} ms (${connected} connected), `
      + `${stillOpen} still open after 5.5 s; fds ${base.fds} -> peak ${peak.fds}; RSS ${base.rss.toFixed(0)} -> peak ${peak.rss.toFixed(0)} MiB; `
      + `probes ${probes.health.length}+${probes.mtls.length}, max health ${max(probes.health).toFixed(0)} ms, max mTLS ${max(probes.mtls).toFixed(0)} ms; map stream ${mapBytes} bytes`);

    expect(probes.failures).toEqual([]);
    expect(probes.health.length).toBeGreaterThanOrEqual(10);
    expect(max(probes.health)).toBeLessThan(2_000);
    expect(max(probes.mtls)).toBeLessThan(2_000);
    expect(mapClosed).toBe(false);
    expect(mapBytes).toBeGreaterThan(0);
    expect(stillOpen).toBe(0); // every unauthenticated connection closed by its deadline
    expect(peak.fds).toBeLessThan(FD_BOUND);
    expect(peak.rss).toBeLessThan(RSS_BOUND_MIB);
    expect(coord.child.exitCode).toBe(null);
    map.destroy();
  }, 60_000);
});
