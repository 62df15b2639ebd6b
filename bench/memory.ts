// Resident memory of real `ember up` processes, as test/node/memory.test.ts measures it, with the breakdown the
// test does not print: per node RSS (anonymous vs file-backed pages from /proc/PID/smaps_rollup), V8 heap,
// external and ArrayBuffer memory (the node's own process.memoryUsage()), thread count. For bisecting and for
// environment experiments (MALLOC_ARENA_MAX=2 npm run bench:memory; the daemons inherit this environment).
// REST_S: seconds at rest before each reading (75 as in the test); EXTRA: identities enrolled for the large map;
// STDOUT_DIR: where each node's stdout goes (NODE_OPTIONS=--trace-gc writes there).
//   npm run bench:memory                 (NODES=6, REST_S=75, EXTRA=994)
//   BENCH_SMOKE=1 npm run bench:memory   NODES=3, REST_S=2, EXTRA=20 (CI's smoke)
import { createWriteStream, readFileSync } from "node:fs";
import { join } from "node:path";
import { LocalMesh, type DemoNode } from "../src/cli/demo-mesh.js";
import { enroll } from "../src/coord/client.js";
import { startRestingMesh } from "./resting-mesh.js";
import { tempDir } from "../test/helpers/pki.js";
import { knob } from "./smoke.js";

const REST_S = knob("REST_S", 75, 2, 0);
const EXTRA = knob("EXTRA", 994, 20, 0);
const NODES = knob("NODES", 6, 3, 2);
/** How long the nodes may take to hold the large map. */
const MAP_WAIT_MS = 300_000;

function proc(pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const roll = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (re: RegExp, s: string) => Number(re.exec(s)?.[1] ?? 0) / 1024;
  return {
    rss: kb(/VmRSS:\s+(\d+)/, status), anon: kb(/RssAnon:\s+(\d+)/, status), file: kb(/RssFile:\s+(\d+)/, status),
    threads: Number(/Threads:\s+(\d+)/.exec(status)![1]), pss: kb(/^Pss:\s+(\d+)/m, roll),
  };
}

async function report(mesh: LocalMesh, nodes: DemoNode[], label: string) {
  const f = (x: number) => x.toFixed(1);
  const rows = await Promise.all(nodes.map(async (n) => {
    const p = proc(n.proc!.pid!);
    const m = (await mesh.request<any>(n, "status")).memory;
    return { p, m, line: `  ${n.name}: RSS ${f(p.rss)} (anon ${f(p.anon)}, file ${f(p.file)}) threads ${p.threads} | heap ${m.heapUsedMb}/${m.heapTotalMb} external ${m.externalMb} arrayBuffers ${m.arrayBuffersMb}` };
  }));
  const rss = rows.map((r) => r.p.rss);
  console.log(`${label}: RSS min ${f(Math.min(...rss))} max ${f(Math.max(...rss))} MB\n${rows.map((r) => r.line).join("\n")}`);
}

const tmp = tempDir("ember-bench-memory-");
const mesh = new LocalMesh(tmp.dir, () => undefined);
process.once("SIGINT", () => void mesh.stop().finally(() => { tmp.cleanup(); process.exit(130); }));
try {
  const nodes = await startRestingMesh(mesh, tmp.dir, "memory", NODES, (n) => {
    if (process.env.STDOUT_DIR) n.proc!.stdout!.pipe(createWriteStream(join(process.env.STDOUT_DIR, `${n.name}.stdout`)));
  });
  await report(mesh, nodes, "connected");
  await new Promise((r) => setTimeout(r, REST_S * 1000));
  await report(mesh, nodes, `${NODES - 1} peers, at rest`);
  if (EXTRA > 0) {
    const token = (await mesh.admin().createToken({ tenant: "t1", groups: [], roles: [], uses: EXTRA, ttlMs: 3_600_000 })).token;
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let i = next++; i < EXTRA; i = next++) await enroll({ coordUrl: mesh.coordUrl, token, name: `x${i}`, stateDir: join(tmp.dir, "x", `x${i}`) });
    }));
    const mapBy = Date.now() + MAP_WAIT_MS;
    while ((await mesh.request<any[]>(nodes[0], "peers")).length < NODES - 1 + EXTRA) {
      if (Date.now() > mapBy) throw new Error(`${nodes[0].name} did not hold ${NODES - 1 + EXTRA} peers within ${MAP_WAIT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 500));
    }
    await report(mesh, nodes, `${NODES - 1 + EXTRA} peers, map applied`);
    await new Promise((r) => setTimeout(r, REST_S * 1000));
    await report(mesh, nodes, `${NODES - 1 + EXTRA} peers, at rest`);
  }
  if (process.env.HOLD_S) {
    console.log(`holding ${process.env.HOLD_S} s; node PIDs ${nodes.map((n) => n.proc!.pid).join(" ")}`);
    await new Promise((r) => setTimeout(r, Number(process.env.HOLD_S) * 1000));
  }
} finally {
  await mesh.stop();
  tmp.cleanup();
}
