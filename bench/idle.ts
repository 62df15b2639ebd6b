// Idle cost, side by side in one NAT-lab run (issue 16): EmberNet, wireguard-go with persistent keepalive 25 s,
// and nebula with a lighthouse, each as a mesh of 2 nodes (the measured node has 1 peer) and of 6 nodes (5 peers),
// every node on its own router with a public address, all on one routing core; plus EmberNet with every node
// behind its own endpoint-independent NAT (its holds then keep real NAT mappings). Every pair exchanges one ping,
// then nobody sends anything; after a settling time the measured node's interface is counted (all protocols,
// like peer-throughput.sh in ../shared/lab, whose wireguard-go and nebula setup this follows): packets and bytes
// per minute, the daemon's resident memory and its CPU time scaled to an hour.
//   sudo npm run bench:idle          (BENCH_IDLE_SETTLE_S=90, BENCH_IDLE_MEASURE_S=180 by default)
//   BENCH_IDLE_ONLY=ember            EmberNet rows only (before/after runs of one EmberNet change)
//   sudo BENCH_SMOKE=1 npm run bench:idle    meshes of 2 nodes only, 3 s settle, 5 s measured (CI's smoke)
// On a failure it prints what it knows: each EmberNet node's peers, drops and log tail (EmberLab.diagnose), and the
// last log lines of wireguard-go and nebula.
// Needs root, iproute2, nftables, wireguard-go + wireguard-tools and nebula (Debian packages; .ci/run installs them).
import { execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Lab, type Host } from "../test/natlab/lab.js";
import { EmberLab, type LabNode } from "../test/natlab/ember-mesh.js";
import { Diagnostics } from "./diagnostics.js";
import { SMOKE, knob } from "./smoke.js";

const SETTLE_S = knob("BENCH_IDLE_SETTLE_S", 90, 3, 0);
const MEASURE_S = knob("BENCH_IDLE_MEASURE_S", 180, 5);
/** Peers of the measured node, one mesh per size and system. */
const SIZES = SMOKE ? [1] : [1, 5];
const LIMIT_MS = knob("BENCH_LIMIT_MS", 1_800_000, 200_000);
const ONLY_EMBER = process.env.BENCH_IDLE_ONLY === "ember";
/** The sizes of the wireguard-go and nebula meshes: none when only EmberNet is measured. */
const OTHER_SIZES = ONLY_EMBER ? [] : SIZES;

interface Measured { system: string; peers: number; host: Host; pid: () => number }
interface Sample { packets: number; bytes: number; cpuTicks: number }

const TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
const diagnostics = new Diagnostics("bench:idle");
/** wireguard-go's control sockets, removed on exit (a SIGKILLed wireguard-go leaves its own behind). */
const wgSockets: string[] = [];
process.on("exit", () => { for (const s of wgSockets) rmSync(s, { force: true }); });

function sample(lab: Lab, m: Measured): Sample {
  const read = (f: string) => Number(lab.exec(m.host, ["cat", `/sys/class/net/eth0/statistics/${f}`]).trim());
  const stat = readFileSync(`/proc/${m.pid()}/stat`, "utf8").split(") ")[1].split(" ");
  return { packets: read("tx_packets"), bytes: read("tx_bytes"), cpuTicks: Number(stat[11]) + Number(stat[12]) };
}

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
}

/** The PID of the process called `comm` inside a namespace (wireguard-go and nebula run as their own processes). */
function pidIn(lab: Lab, host: Host, comm: string): number {
  for (const p of execFileSync("ip", ["netns", "pids", host.ns], { encoding: "utf8" }).split("\n").filter(Boolean)) {
    try { if (readFileSync(`/proc/${p}/comm`, "utf8").trim() === comm) return Number(p); } catch { /* gone */ }
  }
  throw new Error(`no ${comm} process in ${host.ns}`);
}

async function main(): Promise<void> {
  const avail = Lab.available();
  if (!avail.ok) throw new Error(`bench:idle needs the NAT lab: ${avail.why}`);
  for (const tool of ONLY_EMBER ? [] : ["wireguard-go", "wg", "nebula", "nebula-cert"]) {
    try { execFileSync("which", [tool], { stdio: "ignore" }); } catch { throw new Error(`${tool} is not installed (Debian packages wireguard-go, wireguard-tools, nebula)`); }
  }
  const dir = mkdtempSync(join(tmpdir(), "ember-bench-idle-"));
  const lab = await Lab.create();
  const measured: Measured[] = [];
  const children: ChildProcess[] = [];
  try {
    let hostNo = 0;
    const publicHost = async (): Promise<Host> => { const i = hostNo++; return lab.addHost(`h${i}`, await lab.addRouter(`q${i}`, "none")); };
    const natHost = async (): Promise<Host> => { const i = hostNo++; return lab.addHost(`h${i}`, await lab.addRouter(`q${i}`, "eim")); };

    // ---- EmberNet: one coordination server and one relay for every EmberNet group; a pair policy per group.
    const m = new EmberLab(lab, join(dir, "ember"));
    await m.startServices({ relays: 1 }); // one relay: what a mesh of this size needs
    diagnostics.source("EmberNet nodes", () => m.diagnose([...m.nodes.values()]));
    const emberGroups: { label: string; nodes: LabNode[] }[] = [];
    const rules: string[] = [];
    for (const [label, mk] of [["EmberNet", publicHost], ["EmberNet behind EIM NATs", natHost]] as const) {
      for (const peers of SIZES) {
        const names = Array.from({ length: peers + 1 }, (_, i) => `${label.includes("NAT") ? "n" : "e"}${peers}x${i}`);
        const nodes: LabNode[] = [];
        for (const name of names) nodes.push(await m.startNode(name, await mk(), {}, ["--log-level", "info"]));
        for (let i = 0; i < names.length; i++) for (let j = i + 1; j < names.length; j++) rules.push(`  - allow: {source: ${names[i]}, target: ${names[j]}}`);
        emberGroups.push({ label, nodes });
        measured.push({ system: label, peers, host: nodes[0].host, pid: () => nodes[0].proc.pid! });
      }
    }
    await m.setPolicy(`version: 1\nrules:\n${rules.join("\n")}\n`);

    // ---- wireguard-go: persistent keepalive 25 s, every peer with its public endpoint.
    const wgGroups: Host[][] = [];
    for (const peers of OTHER_SIZES) {
      const hosts: Host[] = [];
      for (let i = 0; i <= peers; i++) hosts.push(await publicHost());
      const keys = hosts.map(() => { const priv = execFileSync("wg", ["genkey"], { encoding: "utf8" }).trim(); return { priv, pub: execFileSync("wg", ["pubkey"], { input: priv, encoding: "utf8" }).trim() }; });
      const g = wgGroups.length;
      // One name per interface and run: wireguard-go's control socket (/var/run/wireguard/NAME.sock) is not per namespace.
      const ifName = (i: number) => `wi${process.pid}-${g}${i}`;
      hosts.forEach((h, i) => {
        wgSockets.push(`/var/run/wireguard/${ifName(i)}.sock`);
        children.push(lab.spawn(h, ["env", "WG_PROCESS_FOREGROUND=1", "wireguard-go", ifName(i)]));
        diagnostics.watch(`wireguard-go ${ifName(i)}`, children[children.length - 1]);
      });
      for (const [i, h] of hosts.entries()) {
        const until = Date.now() + 20_000;
        while ((await lab.run(h, ["ip", "link", "show", ifName(i)])).code !== 0) {
          if (Date.now() > until) throw new Error(`wireguard-go made no ${ifName(i)} in ${h.ns} within 20 s`);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      hosts.forEach((h, i) => {
        const kf = join(dir, `wg-${g}-${i}.key`);
        writeFileSync(kf, keys[i].priv + "\n", { mode: 0o600 });
        const args = ["wg", "set", ifName(i), "listen-port", "51820", "private-key", kf];
        hosts.forEach((o, j) => { if (j !== i) args.push("peer", keys[j].pub, "endpoint", `${o.publicAddress}:51820`, "allowed-ips", `100.64.${g}.${j + 1}/32`, "persistent-keepalive", "25"); });
        lab.exec(h, args);
        lab.exec(h, ["ip", "addr", "add", `100.64.${g}.${i + 1}/24`, "dev", ifName(i)]);
        lab.exec(h, ["ip", "link", "set", ifName(i), "up"]);
      });
      wgGroups.push(hosts);
      measured.push({ system: "wireguard-go (keepalive 25 s)", peers, host: hosts[0], pid: () => pidIn(lab, hosts[0], "wireguard-go") });
    }

    // ---- nebula 1.6: a lighthouse on its own host, nodes find each other through it (defaults otherwise).
    const nb = join(dir, "nebula");
    execFileSync("mkdir", ["-p", nb]);
    if (!ONLY_EMBER) execFileSync("nebula-cert", ["ca", "-name", "lab", "-out-crt", join(nb, "ca.crt"), "-out-key", join(nb, "ca.key")]);
    const nebulaConf = (name: string, ip: string, lighthouse: { ip: string; at: string } | undefined, listenHost: string): string => {
      execFileSync("nebula-cert", ["sign", "-ca-crt", join(nb, "ca.crt"), "-ca-key", join(nb, "ca.key"), "-name", name, "-ip", `${ip}/16`, "-out-crt", join(nb, `${name}.crt`), "-out-key", join(nb, `${name}.key`)]);
      const f = join(nb, `${name}.yml`);
      writeFileSync(f, [
        `pki: {ca: ${join(nb, "ca.crt")}, cert: ${join(nb, `${name}.crt`)}, key: ${join(nb, `${name}.key`)}}`,
        lighthouse ? `static_host_map: {"${lighthouse.ip}": ["${lighthouse.at}:4242"]}` : "static_host_map: {}",
        lighthouse ? `lighthouse: {am_lighthouse: false, hosts: ["${lighthouse.ip}"]}` : "lighthouse: {am_lighthouse: true}",
        `listen: {host: ${listenHost}, port: 4242}`,
        `tun: {dev: neb0}`,
        "logging: {level: warning}",
        "firewall: {outbound: [{port: any, proto: any, host: any}], inbound: [{port: any, proto: any, host: any}]}",
      ].join("\n") + "\n");
      return f;
    };
    const lhHost = ONLY_EMBER ? undefined : await publicHost();
    if (lhHost) children.push(lab.spawn(lhHost, ["nebula", "-config", nebulaConf("lh", "100.70.0.1", undefined, lhHost.address)]));
    if (lhHost) diagnostics.watch("nebula lighthouse", children[children.length - 1]);
    const nebulaGroups: Host[][] = [];
    for (const peers of OTHER_SIZES) {
      const hosts: Host[] = [];
      for (let i = 0; i <= peers; i++) {
        const h = await publicHost();
        const ip = `100.70.${nebulaGroups.length + 1}.${i + 1}`;
        children.push(lab.spawn(h, ["nebula", "-config", nebulaConf(`g${nebulaGroups.length}n${i}`, ip, { ip: "100.70.0.1", at: lhHost!.address }, h.address)]));
        diagnostics.watch(`nebula g${nebulaGroups.length}n${i}`, children[children.length - 1]);
        hosts.push(h);
      }
      nebulaGroups.push(hosts);
      measured.push({ system: "nebula (lighthouse)", peers, host: hosts[0], pid: () => pidIn(lab, hosts[0], "nebula") });
    }
    await new Promise((r) => setTimeout(r, 3_000));

    // ---- every pair exchanges one ping, then nobody sends anything.
    for (const g of emberGroups) for (const a of g.nodes) for (const b of g.nodes) if (a !== b) await m.firstPong(a, b, 60_000);
    const pingAll = async (groups: Host[][], ip: (g: number, i: number) => string) => {
      for (const [g, hosts] of groups.entries()) for (const [i, h] of hosts.entries()) for (let j = 0; j < hosts.length; j++) {
        if (i !== j) await lab.run(h, ["ping", "-c", "1", "-W", "5", ip(g, j)], { timeoutMs: 10_000 });
      }
    };
    await pingAll(wgGroups, (g, j) => `100.64.${g}.${j + 1}`);
    await pingAll(nebulaGroups, (g, j) => `100.70.${g + 1}.${j + 1}`);

    console.error(`bench:idle: settling ${SETTLE_S} s, then measuring ${MEASURE_S} s`);
    await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
    const before = measured.map((x) => sample(lab, x));
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, MEASURE_S * 1000));
    const after = measured.map((x) => sample(lab, x));
    const minutes = (Date.now() - t0) / 60_000;

    const rows = measured.map((x, i) => {
      const pkts = (after[i].packets - before[i].packets) / minutes;
      const bytes = (after[i].bytes - before[i].bytes) / minutes;
      const cpuSPerHour = ((after[i].cpuTicks - before[i].cpuTicks) / TICKS) * (60 / minutes);
      return { system: x.system, peers: x.peers, pkts, bytes, rss: rssMb(x.pid()), cpuSPerHour };
    });
    const lines = [
      `| system | peers | packets/min | bytes/min | RSS (MB) | idle CPU s/hour |`,
      `|---|---|---|---|---|---|`,
      ...rows.map((r) => `| ${r.system} | ${r.peers} | ${r.pkts.toFixed(1)} | ${Math.round(r.bytes)} | ${r.rss.toFixed(1)} | ${r.cpuSPerHour.toFixed(1)} |`),
    ];
    console.log(`\nIdle cost per node (interface of the measured node, all protocols; ${SETTLE_S} s settle, ${MEASURE_S} s measured)\n`);
    console.log(lines.join("\n"));
    const ember = (p: number) => rows.find((r) => r.system === "EmberNet" && r.peers === p)!;
    const wg = (p: number) => rows.find((r) => r.system.startsWith("wireguard") && r.peers === p)!;
    const neb = (p: number) => rows.find((r) => r.system.startsWith("nebula") && r.peers === p)!;
    console.log("");
    for (const p of OTHER_SIZES) {
      console.log(`${p} peer(s): EmberNet/wireguard-go packets ${(ember(p).pkts / wg(p).pkts).toFixed(2)}x, bytes ${(ember(p).bytes / wg(p).bytes).toFixed(2)}x; ` +
        `EmberNet/nebula packets ${(ember(p).pkts / neb(p).pkts).toFixed(2)}x, bytes ${(ember(p).bytes / neb(p).bytes).toFixed(2)}x`);
    }
  } catch (err) {
    await diagnostics.print(); // while the daemons still run: the error itself is printed last, below
    throw err;
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

setTimeout(() => {
  console.error(`bench:idle: ${LIMIT_MS / 1000} s limit reached, stopping`);
  void diagnostics.print().finally(() => process.exit(3)); // the lab removes its namespaces and children on exit
}, LIMIT_MS).unref();
void main().then(() => process.exit(0), (err) => { console.error(`bench:idle: ${(err as Error).message}`); process.exit(1); });
