// Coordination server benchmark: a real `ember coord` child process, N in-process CoordClients on real mTLS
// connections (one map stream each), every node enrolled through the API with its own key and CSR.
// Prints enrollment/s, server memory per connected node, and the time and bytes from one endpoint change
// and from one policy change until every affected node holds its delta.
//   npm run bench:coord                 # N = 1000 and 10000 on SQLite, PostgreSQL with 1 and with 2 replicas: 6 runs
//   npx tsx bench/coord.ts 2000         # one size, SQLite
//   npx tsx bench/coord.ts --pg 1 1000  # PostgreSQL (a throwaway cluster), one replica
//   npx tsx bench/coord.ts --pg 2 1000  # two replicas on it: nodes alternate between them (enrollment and streams),
//                                       # so deltas cross replicas through the change log
//   BENCH_SMOKE=1 npm run bench:coord   # CI's smoke: N = 200 on SQLite and on PostgreSQL with 2 replicas (when
//                                       # initdb is there), a floor of 200 connections (BENCH_FLOOR_N)
// Every run first measures bare node:https on the same machine (bench/https-floor.ts): the floor under each figure.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateEd25519, initCa, issueLeaf, privateKeyToPem, toPem, withIntermediates } from "../src/pki/index.js";
import { AdminClient } from "../src/coord-client/admin-client.js";
import { CoordClient, enroll } from "../src/coord-client/client.js";
import { postgresSkipReason, startPostgres, type PgCluster } from "../test/helpers/postgres.js";
import { coordRatios, formatRatios } from "./coord-ratios.js";
import { MEMORY_SETTLE_MS, printFloor } from "./https-floor.js";
import { SMOKE, knob } from "./smoke.js";

const EMBER = join(import.meta.dirname, "..", "bin", "ember.mjs");
const TEAM = 50; // nodes per team; policy lets a team reach itself
const ENROLL_CONCURRENCY = 16;
const CONNECT_BATCH = 250;
const MAX_WAIT_MS = 300_000;

/**
 * Source address of node i's connections: loopback has all of 127/8, and 10,000 nodes from one address would meet
 * the server's per-source limit on unauthenticated connections, which real nodes on their own hosts never do.
 */
const sourceOf = (i: number) => `127.0.${1 + (i >> 8) % 250}.${1 + (i & 255) % 250}`;

/** CPU time (user + system) a process has used, ms. */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) * 10; // clock ticks of 10 ms
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

async function waitUntil(fn: () => boolean, what: string, limitMs = MAX_WAIT_MS): Promise<number> {
  const t0 = performance.now();
  while (!fn()) {
    if (performance.now() - t0 > limitMs) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - t0;
}

function startCoord(data: string, caDir: string, store?: string): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--max-old-space-size=8192", EMBER, "coord", "--data", data, "--ca-dir", caDir, "--listen", "127.0.0.1:0", ...(store ? ["--store", store] : [])],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, EMBER_LOG_LEVEL: "warn" } });
    let out = "";
    child.stdout!.on("data", (c) => {
      out += c;
      const m = /coordination server (https:\/\/\S+)/.exec(out);
      if (m) resolve({ child, url: m[1] });
    });
    child.stderr!.on("data", (c) => process.stderr.write(c));
    child.on("exit", (code) => reject(new Error(`coord exited ${code}`)));
  });
}

function teamPolicy(teams: number, extra = ""): string {
  let s = "version: 1\nrules:\n";
  for (let t = 0; t < teams; t++) s += `  - allow: {source: "@team-${t}", target: "@team-${t}", protocol: any}\n`;
  return s + extra;
}

/** replicas = 0: SQLite; else that many `ember coord` processes on one PostgreSQL database. */
interface Figures {
  label: string; n: number; enrollPerS: number; serverCpuMs: number; streamCpuMs: number; connectS: number; kibPerNode: number;
  endpointMs: number; policyMs: number;
  /** Two or more replicas: replica 1's CPU applying enrollments taken by replica 0, over replica 0's. */
  foreignShare?: number;
}

/** Enrollments made on replica 0 alone to weigh what the other replica spends applying them. */
const FOREIGN_ENROLLMENTS = 300;

async function run(n: number, replicas: number): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), "ember-bench-coord-"));
  const clients: CoordClient[] = [];
  const coords: ChildProcess[] = [];
  let cluster: PgCluster | undefined;
  try {
    const ca = await initCa(join(dir, "ca"), "bench.internal");
    const keys = generateEd25519();
    const der = await issueLeaf(ca, { name: "bench-admin", tenant: "ops", roles: ["admin"], ttlMs: 24 * 3_600_000, publicKey: keys.publicKey });
    writeFileSync(join(dir, "admin.crt"), withIntermediates(toPem(der, "CERTIFICATE"), ca.bundlePem));
    writeFileSync(join(dir, "admin.key"), privateKeyToPem(keys.privateKey), { mode: 0o600 });
    let store: string | undefined;
    if (replicas > 0) {
      cluster = await startPostgres();
      store = await cluster.createDatabase("bench");
    }
    const urls: string[] = [];
    for (let r = 0; r < Math.max(1, replicas); r++) {
      const started = await startCoord(join(dir, `data-${r}`), ca.dir, store);
      coords.push(started.child);
      urls.push(started.url);
    }
    const url = urls[0];
    /** Node i's replica: nodes alternate, so half of every team is on each of two replicas. */
    const urlOf = (i: number) => urls[i % urls.length];
    const admin = () => new AdminClient({ coord: url, cert: join(dir, "admin.crt"), key: join(dir, "admin.key"), ca: join(ca.dir, "bundle.pem") }, {});
    const teams = Math.ceil(n / TEAM);

    // 1. Enrollment through the API: one token per team (uses = team size), key + CSR made per node.
    const tokens: string[] = [];
    for (let t = 0; t < teams; t++) tokens.push((await admin().createToken({ tenant: "bench", groups: [`team-${t}`], roles: [], uses: TEAM, ttlMs: 3_600_000 })).token);
    let next = 0;
    const serverCpu = () => coords.reduce((a, c) => a + cpuMs(c.pid!), 0);
    const cpu0 = serverCpu();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: ENROLL_CONCURRENCY }, async () => {
      for (let i = next++; i < n; i = next++) {
        await enroll({ coordUrl: urlOf(i), token: tokens[Math.floor(i / TEAM)], name: `n-${i}`, stateDir: join(dir, "nodes", `n-${i}`) });
      }
    }));
    const enrollMs = performance.now() - t0;
    const serverCpuPerEnroll = (serverCpu() - cpu0) / n;
    await admin().setPolicy(teamPolicy(teams));

    // 2. Connect every node's map stream.
    const rssOf = () => coords.reduce((a, c) => a + rssKiB(c.pid!), 0);
    const rssBefore = rssOf();
    const heapBefore = process.memoryUsage().heapUsed;
    const cpu1 = serverCpu(), clientCpu1 = process.cpuUsage();
    const t1 = performance.now();
    for (let i = 0; i < n; i += CONNECT_BATCH) {
      const batch: CoordClient[] = [];
      for (let j = i; j < Math.min(n, i + CONNECT_BATCH); j++) {
        const c = new CoordClient({ coordUrl: urlOf(j), stateDir: join(dir, "nodes", `n-${j}`), minBackoffMs: 1_000, maxBackoffMs: 10_000, localAddress: sourceOf(j) });
        c.start();
        batch.push(c);
      }
      clients.push(...batch);
      await waitUntil(() => batch.every((c) => c.map !== undefined), "batch connected");
    }
    const connectMs = performance.now() - t1;
    const serverCpuPerStream = (serverCpu() - cpu1) / n;
    const clientCpuUse = process.cpuUsage(clientCpu1);
    const clientCpuPerStream = (clientCpuUse.user + clientCpuUse.system) / 1000 / n;
    await new Promise((r) => setTimeout(r, MEMORY_SETTLE_MS)); // as the floor is read: status flushed, no forced GC
    const rssAfter = rssOf();
    const clientHeap = (process.memoryUsage().heapUsed - heapBefore) / n;

    // 3. One node's endpoint change: its 49 team mates must get it, nobody else.
    const bytesNow = () => clients.reduce((a, c) => a + c.stats.bytes, 0);
    const deltasNow = () => clients.reduce((a, c) => a + c.stats.deltas, 0);
    await new Promise((r) => setTimeout(r, 1_100)); // past the status rate limit of a fresh client
    let b0 = bytesNow(), d0 = deltasNow();
    const mover = clients[0];
    const team0 = clients.slice(1, Math.min(n, TEAM));
    const t2 = performance.now();
    mover.reportStatus({ endpoints: ["198.18.7.7:41641"], homeRelay: "relay-1" });
    await waitUntil(() => team0.every((c) => c.map!.peers.find((p) => p.name === "n-0")?.endpoints[0] === "198.18.7.7:41641"), "endpoint delta");
    const endpointMs = performance.now() - t2;
    await new Promise((r) => setTimeout(r, 300));
    const endpointBytes = bytesNow() - b0, endpointDeltas = deltasNow() - d0;

    // 4. One policy change: team-0 may now reach team-1 (100 nodes affected, each learns 50 new peers).
    b0 = bytesNow(); d0 = deltasNow();
    const team1 = clients.slice(TEAM, Math.min(n, 2 * TEAM));
    const t3 = performance.now();
    await admin().setPolicy(teamPolicy(teams, `  - allow: {source: "@team-0", target: "@team-1", protocol: tcp, ports: [443]}\n`));
    await waitUntil(() => team0.every((c) => c.map!.peers.length >= 2 * TEAM - 1) && team1.every((c) => c.map!.peers.length >= 2 * TEAM - 1), "policy delta");
    const policyMs = performance.now() - t3;
    await new Promise((r) => setTimeout(r, 300));
    const policyBytes = bytesNow() - b0, policyDeltas = deltasNow() - d0;

    // 5. Two replicas: enrollments on replica 0 only, in a group no policy names (no map changes); what replica 1
    // spends on them (the change log, its caches) against what replica 0 spends taking them.
    let foreignShare: number | undefined;
    if (coords.length >= 2) {
      const m = Math.min(n, FOREIGN_ENROLLMENTS);
      const token = (await admin().createToken({ tenant: "bench", groups: ["foreign"], roles: [], uses: m, ttlMs: 3_600_000 })).token;
      const own0 = cpuMs(coords[0].pid!), other0 = cpuMs(coords[1].pid!);
      let k = 0;
      await Promise.all(Array.from({ length: ENROLL_CONCURRENCY }, async () => {
        for (let i = k++; i < m; i = k++) await enroll({ coordUrl: urls[0], token, name: `f-${i}`, stateDir: join(dir, "foreign", `f-${i}`) });
      }));
      await new Promise((r) => setTimeout(r, 1_000)); // replica 1 catches up through LISTEN/NOTIFY
      foreignShare = (cpuMs(coords[1].pid!) - other0) / Math.max(1, cpuMs(coords[0].pid!) - own0);
    }

    const label = replicas ? `PostgreSQL, ${replicas} replica${replicas > 1 ? "s" : ""}` : "SQLite";
    const lines = [
      `N = ${n} nodes (${teams} teams of ${TEAM}; policy: each team reaches itself); store: ${label}${replicas > 1 ? ", nodes alternating" : ""}`,
      `  enrollment          ${(n / (enrollMs / 1000)).toFixed(0)} enrollments/s (${(enrollMs / 1000).toFixed(1)} s, ${ENROLL_CONCURRENCY} concurrent, key+CSR+HTTPS+fsync each); server CPU ${serverCpuPerEnroll.toFixed(2)} ms each (${(1000 / serverCpuPerEnroll).toFixed(0)}/s per server core)`,
      `  connect all streams ${(connectMs / 1000).toFixed(1)} s (CPU per stream: server ${serverCpuPerStream.toFixed(2)} ms, the bench's client ${clientCpuPerStream.toFixed(2)} ms); server RSS (all replicas) +${((rssAfter - rssBefore) / 1024).toFixed(0)} MiB = ${((rssAfter - rssBefore) / n).toFixed(1)} KiB per connected node (server total ${(rssAfter / 1024).toFixed(0)} MiB); client heap ${(clientHeap / 1024).toFixed(1)} KiB per client`,
      `  endpoint change     ${endpointMs.toFixed(1)} ms until all ${team0.length} affected nodes had it; ${endpointDeltas} deltas, ${endpointBytes} bytes on all streams`,
      `  policy change       ${policyMs.toFixed(1)} ms until all ${team0.length + 1 + team1.length} affected nodes had it; ${policyDeltas} deltas, ${policyBytes} bytes on all streams`,
    ];
    if (foreignShare !== undefined) {
      lines.push(`  foreign enrollment  replica 1 spent ${(foreignShare * 100).toFixed(0)}% of replica 0's CPU on ${Math.min(n, FOREIGN_ENROLLMENTS)} enrollments replica 0 took`);
    }
    process.stdout.write(lines.join("\n") + "\n");
    return {
      label, n, enrollPerS: n / (enrollMs / 1000), serverCpuMs: serverCpuPerEnroll, streamCpuMs: serverCpuPerStream,
      connectS: connectMs / 1000, kibPerNode: (rssAfter - rssBefore) / n, endpointMs, policyMs, foreignShare,
    };
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    for (const c of coords) c.kill("SIGKILL");
    cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const args = process.argv.slice(2);
const pgAt = args.indexOf("--pg");
const replicas = pgAt >= 0 ? Number(args.splice(pgAt, 2)[1]) : 0;
if (!(replicas >= 0 && replicas <= 8)) throw new Error("--pg takes the number of replicas, 1-8");
const sizes = args.map(Number).filter((x) => x > 0);
// No arguments: every store at both sizes, as the figures in docs/performance.md are kept (the smoke: SQLite and two
// replicas, the store paths that differ most, at one small size).
const pgSkip = postgresSkipReason();
const everyStore = SMOKE ? [0, 2] : [0, 1, 2];
const stores = pgAt >= 0 || sizes.length ? [replicas] : pgSkip ? [0] : everyStore;
if (stores.length === 1 && pgAt < 0 && !sizes.length) console.log(`PostgreSQL runs skipped: ${pgSkip}`);
const FLOOR_N = knob("BENCH_FLOOR_N", 2_000, 200);
const floor = await printFloor(FLOOR_N);
const results: Figures[] = [];
for (const r of stores) for (const n of sizes.length ? sizes : SMOKE ? [200] : [1_000, 10_000]) results.push(await run(n, r));
{
  console.log("\n| store | N | enrollment | server CPU per enrollment | connect all streams | server RSS per node | endpoint change | policy change |");
  console.log("|---|---|---|---|---|---|---|---|");
  console.log(`| bare node:https, no EmberNet code | ${FLOOR_N.toLocaleString("en")} | ${floor.enroll.perS.toFixed(0)}/s | ` +
    `${floor.enroll.serverCpuMs.toFixed(2)} ms | ${(10_000 / floor.map.perS).toFixed(1)} s at 10,000 | ` +
    `${floor.small.serverKiBPerConnection.toFixed(0)}-${floor.map.serverKiBPerConnection.toFixed(0)} KiB | | |`);
  for (const f of results) {
    console.log(`| ${f.label} | ${f.n.toLocaleString("en")} | ${f.enrollPerS.toFixed(0)}/s | ${f.serverCpuMs.toFixed(2)} ms | ${f.connectS.toFixed(1)} s | ${f.kibPerNode.toFixed(0)} KiB | ${f.endpointMs.toFixed(0)} ms | ${f.policyMs.toFixed(0)} ms |`);
  }
}
// Issue 30's targets: each figure over the floor of this run, and whether it meets its target.
const floorForRatio = {
  enrollCpuMs: floor.enroll.serverCpuMs, streamCpuMs: floor.map.serverCpuMs, kibPerConnection: floor.map.serverKiBPerConnection,
};
for (const f of results) {
  console.log(`\nAgainst the floor: ${f.label}, N = ${f.n.toLocaleString("en")}`);
  const rows = coordRatios({ serverCpuMsPerEnroll: f.serverCpuMs, serverCpuMsPerStream: f.streamCpuMs, kibPerNode: f.kibPerNode, foreignShare: f.foreignShare }, floorForRatio);
  for (const line of formatRatios(rows)) console.log(line);
}
process.exit(0);
