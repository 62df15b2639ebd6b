// Idle CPU of resting `ember up` nodes on loopback (issue 16), without the NAT lab: a coordination server, one relay
// and NODES nodes on 127.0.0.1, every pair exchanges one ping, then nothing; after SETTLE_S each node's CPU time
// (utime + stime from /proc/PID/stat) is read over MEASURE_S and scaled to an hour. Every node has NODES - 1 peers,
// so one run gives NODES readings of the same configuration (the clock tick is 10 ms: 0.2 s/hour over 180 s).
//   npm run build && npx tsx bench/idle-loopback.ts     (NODES=6, SETTLE_S=90, MEASURE_S=180 by default)
// HOLD_S: keep the mesh at rest that long afterwards (prints the node PIDs, for strace -c or perf).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { LocalMesh } from "../src/cli/demo-mesh.js";
import { startRestingMesh } from "./resting-mesh.js";
import { tempDir } from "../test/helpers/pki.js";

const NODES = Number(process.env.NODES ?? 6);
const SETTLE_S = Number(process.env.SETTLE_S ?? 90);
const MEASURE_S = Number(process.env.MEASURE_S ?? 180);
const TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return Number(stat[11]) + Number(stat[12]);
}

const tmp = tempDir("ember-bench-idle-loopback-");
const mesh = new LocalMesh(tmp.dir, () => undefined);
process.once("SIGINT", () => void mesh.stop().finally(() => { tmp.cleanup(); process.exit(130); }));
try {
  const nodes = await startRestingMesh(mesh, tmp.dir, "idle", NODES);
  console.error(`idle-loopback: ${NODES} nodes, settling ${SETTLE_S} s, then measuring ${MEASURE_S} s`);
  await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
  const before = nodes.map((n) => cpuTicks(n.proc!.pid!));
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, MEASURE_S * 1000));
  const after = nodes.map((n) => cpuTicks(n.proc!.pid!));
  const hours = (Date.now() - t0) / 3_600_000;
  const perHour = nodes.map((_, i) => (after[i] - before[i]) / TICKS / hours);
  const mean = perHour.reduce((a, b) => a + b, 0) / perHour.length;
  console.log(`idle CPU s/hour per node (${NODES - 1} peers, loopback, ${SETTLE_S} s settle, ${MEASURE_S} s measured): ` +
    `${perHour.map((x) => x.toFixed(2)).join(" ")}; mean ${mean.toFixed(2)}, min ${Math.min(...perHour).toFixed(2)}, max ${Math.max(...perHour).toFixed(2)}`);
  if (process.env.HOLD_S) {
    console.log(`holding ${process.env.HOLD_S} s; node PIDs ${nodes.map((n) => n.proc!.pid).join(" ")}`);
    await new Promise((r) => setTimeout(r, Number(process.env.HOLD_S) * 1000));
  }
} finally {
  await mesh.stop();
  tmp.cleanup();
}
