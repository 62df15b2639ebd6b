#!/usr/bin/env node
// TCP throughput through the native tunnel between two namespaces (iperf3 -t 5), and the raw veth
// figure in the same run. Root only; needs iperf3 and the built addon (npm run build:native).
//   node bench/native-tunnel.mjs [seconds]
//   BENCH_SMOKE=1 npm run bench:native-tunnel    1 s per iperf3 run (CI's smoke)
// Its namespaces are ntbench-a/-b, apart from the tests' (a run removes what an earlier killed run left).
import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { NS, OVERLAY, UNDERLAY, inNs, setup, startNode, stopNode, teardownNamespaces, useNamespaces } from "../test/native/fixtures/tunnel-lab.mjs";

const secs = Number(process.argv[2] ?? (process.env.BENCH_SMOKE === "1" ? 1 : 5));
if (!(secs > 0)) {
  console.error(`bench:native-tunnel: "${process.argv[2]}" is not a number of seconds > 0`);
  process.exit(2);
}
useNamespaces("ntbench");
const open = { tcp: [[5201, 5202]], udp: [], icmp: true };

async function iperf(host, port) {
  const server = spawn("ip", ["netns", "exec", NS[1], "iperf3", "-s", "-1", "-p", String(port)], { stdio: "ignore" });
  await sleep(500);
  try {
    const out = JSON.parse(inNs(NS[0], ["iperf3", "-c", host, "-p", String(port), "-t", String(secs), "-J"], { timeout: (secs + 20) * 1000 }));
    return { mbps: out.end.sum_received.bits_per_second / 1e6, retransmits: out.end.sum_sent.retransmits };
  } finally {
    try { process.kill(server.pid, "SIGTERM"); } catch { /* exited */ }
  }
}

setup();
const nodes = [startNode(0, open), startNode(1, open)];
try {
  await Promise.all(nodes.map((n) => n.ready));
  const tunnel = await iperf(OVERLAY[1], 5201);
  const [a, b] = [await nodes[0].stats(), await nodes[1].stats()];
  const raw = await iperf(UNDERLAY[1], 5202);
  const s = a.stats, r = b.stats;
  console.log(`tunnel: ${tunnel.mbps.toFixed(0)} Mbit/s (${tunnel.retransmits} TCP retransmits)   raw veth: ${raw.mbps.toFixed(0)} Mbit/s`);
  console.log(`A tx: ${s.tunRxPackets} packets from TUN in ${s.tunReads} reads (vnet header ${s.tunVnetHdr}), ${s.udpTxPackets} datagrams in ${s.udpTxCalls} send calls (${(s.udpTxPackets / Math.max(1, s.udpTxCalls)).toFixed(1)}/call), gso=${s.gso}`);
  console.log(`B rx: ${r.udpRxPackets} datagrams in ${r.udpRxBatches} receive batches (${(r.udpRxPackets / Math.max(1, r.udpRxBatches)).toFixed(1)}/batch), gro=${r.gro}, ${r.tunTxPackets} packets into TUN in ${r.tunWrites} writes`);
  const drops = (x) => Object.entries(x.drops).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`).join(" ") || "none";
  console.log(`drops A: ${drops(s)}   B: ${drops(r)}`);
} finally {
  await Promise.all(nodes.map(stopNode));
  teardownNamespaces();
}
