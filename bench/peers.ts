// Peer throughput, side by side in one run (the method of ../shared/lab/peer-throughput.sh): two network
// namespaces joined by one veth pair (198.18.10.1/24 <-> .2), iperf3 TCP from A to B, 1 stream and 4 streams,
// over the raw link, wireguard-go, nebula (cipher aes, the script's default), EmberNet in TUN mode with the
// native addon, and EmberNet's userspace `ember forward` (the same two daemons, a forward on A to a service
// on B). For every tunnel, the CPU seconds its daemons on both sides spend per GB received
// (utime + stime from /proc/PID/stat before and after each iperf3 run, all threads).
//   sudo npm run bench:peers                  (T=5 seconds per iperf3 run by default; whole run ~2 minutes)
//   sudo BENCH_SMOKE=1 npm run bench:peers    T=1 and a 180 s limit, EmberNet logging at info (CI's smoke)
// On a failure it prints what it knows: every daemon's last log lines, and `ember status`/`ember peers` of its nodes.
// Needs root, iproute2, iperf3, wireguard-go + wireguard-tools, nebula (Debian packages) and the built addon
// (npm run build:native). Debian's wireguard-go (0.0.20220316) predates upstream's TUN offloads and UDP GSO/GRO;
// WG_UPSTREAM=/path/to/wireguard-go (a binary built from upstream, https://git.zx2c4.com/wireguard-go, `make`)
// adds it as a second reference row, and the summary's EmberNet / wireguard-go ratio is then against it. Namespaces are ${PREFIX}-a/-b (PREFIX = "bp" + PID, recorded in /run/bench-peers);
// every process this bench starts is killed by PID at the end and the namespaces are deleted, on errors and
// Ctrl-C too; a run that was killed outright leaves its record, and the next run removes what it names.
// Long waits (iperf3, pings, CLI calls) are asynchronous: tsx SIGKILLs a child that does not answer Ctrl-C
// within 30 ms, which would skip the cleanup.
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { controlRequest } from "../src/node/control-socket.js";
import { loadNativeAddon } from "../src/native/addon.js";
import { generateEd25519, initCa, issueLeaf, privateKeyToPem, toPem, withIntermediates, type CaMaterial } from "../src/pki/index.js";
import { Diagnostics } from "./diagnostics.js";
import { SMOKE, knob } from "./smoke.js";

const ROOT = join(import.meta.dirname, "..");
const EMBER = join(ROOT, "bin", "ember.mjs");
const T = knob("T", 5, 1);
const LIMIT_MS = knob("BENCH_LIMIT_MS", 600_000, 180_000);
/** The daemons' log level: warn keeps logging off the measured path; the smoke's info lines explain a failure. */
const EMBER_LOG_LEVEL = SMOKE ? "info" : "warn";
const PREFIX = `bp${process.pid}`;
const NS = { a: `${PREFIX}-a`, b: `${PREFIX}-b` } as const;
const VETH = { a: `${PREFIX}va`, b: `${PREFIX}vb` } as const;
const UNDERLAY = { a: "198.18.10.1", b: "198.18.10.2" } as const;
// Overlay addresses of the references: inside 100.64.0.0/10, away from what the coordination server hands out.
const WG_IP = { a: "100.127.10.1", b: "100.127.10.2" } as const;
const NEB_IP = { a: "100.126.10.1", b: "100.126.10.2" } as const;
const IPERF_PORT = 5201;
/** The wireguard-go references: Debian's from PATH, and upstream's when WG_UPSTREAM names a binary. */
const WG_UPSTREAM = process.env.WG_UPSTREAM || undefined;
/** Interface-name letter of each wireguard-go: its UAPI socket, /var/run/wireguard/DEV.sock, is not per namespace. */
const WG_DEV_LETTERS = ["w", "u"] as const;
const TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

type Side = "a" | "b";
const children = new Set<ChildProcess>();
const dir = mkdtempSync(join(tmpdir(), "ember-bench-peers-"));
const diagnostics = new Diagnostics("bench:peers");
let cleaned = false;

// ---------------------------------------------------------------------------------------------- processes

/** Runs argv inside a namespace (`ip netns exec` execs it, so the child's PID is the program's own). */
function spawnIn(side: Side, argv: string[], opts: SpawnOptions = {}): ChildProcess {
  const c = spawn("ip", ["netns", "exec", NS[side], ...argv], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], ...opts });
  children.add(c);
  c.on("exit", () => children.delete(c));
  return c;
}

function execIn(side: Side, argv: string[], timeoutMs = 30_000): string {
  return execFileSync("ip", ["netns", "exec", NS[side], ...argv], { cwd: ROOT, encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "pipe"] });
}

function tryIn(side: Side, argv: string[], timeoutMs = 30_000): boolean {
  try { execIn(side, argv, timeoutMs); return true; } catch { return false; }
}

/** execIn without blocking the event loop (a signal is handled at once); rejects with stdout and stderr. */
function runIn(side: Side | undefined, argv: string[], timeoutMs: number): Promise<string> {
  const cmd = side ? ["ip", "netns", "exec", NS[side], ...argv] : argv;
  return new Promise((resolve, reject) => {
    execFile(cmd[0], cmd.slice(1), { cwd: ROOT, encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stdout, stderr })); else resolve(stdout);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits for a stdout line matching `ready`; fails with the stderr tail when the child exits first. */
function started(label: string, child: ChildProcess, ready: RegExp, timeoutMs = 60_000): Promise<string> {
  const tail: string[] = [];
  createInterface({ input: child.stderr! }).on("line", (l) => { tail.push(l); if (tail.length > 30) tail.shift(); });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${label} did not start within ${timeoutMs / 1000} s:\n${tail.join("\n")}`)), timeoutMs);
    createInterface({ input: child.stdout! }).on("line", (l) => { if (ready.test(l)) { clearTimeout(t); resolve(l); } });
    child.once("exit", (code) => { clearTimeout(t); reject(new Error(`${label} exited ${code}:\n${tail.join("\n")}`)); });
  });
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

function sleepSync(ms: number): void { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); }

function alive(pid: number): boolean { try { process.kill(pid, 0); return true; } catch { return false; } }

const OWNER_DIR = "/run/bench-peers";

/** Namespaces of earlier runs that were killed before their cleanup (their recorded PID is gone): their processes, then them. */
function sweepDeadRuns(): void {
  let files: string[] = [];
  try { files = readdirSync(OWNER_DIR); } catch { return; }
  for (const f of files) {
    const m = /^(bp(\d+))\.owner$/.exec(f);
    if (!m || alive(Number(m[2]))) continue;
    for (const ns of [`${m[1]}-a`, `${m[1]}-b`]) {
      try { for (const p of execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).split("\n").filter(Boolean)) process.kill(Number(p), "SIGKILL"); } catch { /* none */ }
      try { execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" }); } catch { /* gone */ }
    }
    for (const l of WG_DEV_LETTERS) for (const s of ["a", "b"]) rmSync(`/var/run/wireguard/${m[1]}${l}${s}.sock`, { force: true });
    const tmp = readFileSync(join(OWNER_DIR, f), "utf8").split("\n")[1] ?? "";
    if (tmp.startsWith(join(tmpdir(), "ember-bench-peers-"))) rmSync(tmp, { recursive: true, force: true });
    rmSync(join(OWNER_DIR, f), { force: true });
  }
}

/** Stops what this run started: its children by PID (TERM, then KILL), anything left in its own namespaces, the namespaces. */
function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  const pids = new Set<number>();
  for (const c of children) if (c.pid && c.exitCode === null && c.signalCode === null) pids.add(c.pid);
  for (const ns of Object.values(NS)) {
    try { for (const p of execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).split("\n").filter(Boolean)) pids.add(Number(p)); } catch { /* no such namespace */ }
  }
  for (const p of pids) { try { process.kill(p, "SIGTERM"); } catch { /* gone */ } }
  const end = Date.now() + 3_000;
  while ([...pids].some(alive) && Date.now() < end) sleepSync(100);
  for (const p of pids) if (alive(p)) { try { process.kill(p, "SIGKILL"); } catch { /* gone */ } }
  sleepSync(200);
  for (const ns of Object.values(NS)) { try { execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" }); } catch { /* not there */ } }
  for (const l of WG_DEV_LETTERS) for (const s of ["a", "b"]) rmSync(`/var/run/wireguard/${PREFIX}${l}${s}.sock`, { force: true });
  rmSync(dir, { recursive: true, force: true });
  rmSync(join(OWNER_DIR, `${PREFIX}.owner`), { force: true });
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => { console.error(`bench:peers: ${sig}, cleaning up`); cleanup(); process.exit(130); });
setTimeout(() => {
  console.error(`bench:peers: ${LIMIT_MS / 1000} s limit reached, stopping`);
  void diagnostics.print().finally(() => { cleanup(); process.exit(3); });
}, LIMIT_MS).unref();

// ---------------------------------------------------------------------------------------------- measuring

/** utime + stime of a process (all its threads), in clock ticks. */
function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return Number(f[11]) + Number(f[12]);
}
const ticksOf = (pids: number[]) => pids.reduce((s, p) => s + cpuTicks(p), 0);

/**
 * iperf3 -s -1 in B, once it listens. The previous run's server is stopped and waited for first (stop()): one still
 * holding the port makes the next one fail to bind, and the listening socket ss saw would be the old one's.
 * A server that exits before it listens fails at once with its stderr.
 */
async function iperfServer(): Promise<ChildProcess> {
  const server = spawnIn("b", ["iperf3", "-s", "-1", "-p", String(IPERF_PORT)], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  server.stderr!.on("data", (c: Buffer) => { err = (err + c).slice(-2_000); });
  await until("iperf3 server listening in B", 10_000, () => {
    if (server.exitCode !== null) throw new Error(`iperf3 -s in B exited ${server.exitCode} before it listened: ${err.trim()}`);
    return execIn("b", ["ss", "-Hltn", `sport = :${IPERF_PORT}`]).trim() ? true : undefined;
  });
  return server;
}

interface Run { mbps: number; bytes: number; retransmits: number; cpuTicks: number; iperfCpu: { client: number; server: number } }

/** One iperf3 run A -> B (server in B on 5201), with the CPU ticks of `daemons` during it. */
async function iperf(connectTo: string, port: number, streams: number, daemons: number[]): Promise<Run> {
  const server = await iperfServer();
  const t0 = ticksOf(daemons);
  let out: string, used: number;
  try {
    out = await runIn("a", ["iperf3", "-c", connectTo, "-p", String(port), "-t", String(T), "-P", String(streams), "-J"], (T + 40) * 1000);
    used = ticksOf(daemons) - t0; // before the wait for the server's exit
  } catch (err) {
    const e = err as { stdout?: string; message: string };
    throw new Error(`iperf3 -c ${connectTo} -p ${port} -P ${streams} failed: ${(e.stdout ?? "").slice(0, 400) || e.message}`);
  } finally {
    await stop([server]);
  }
  const j = JSON.parse(out);
  if (j.error) throw new Error(`iperf3 -c ${connectTo}: ${j.error}`);
  return {
    mbps: j.end.sum_received.bits_per_second / 1e6,
    bytes: j.end.sum_received.bytes,
    retransmits: j.end.sum_sent.retransmits ?? 0,
    cpuTicks: used,
    iperfCpu: { client: j.end.cpu_utilization_percent?.host_total ?? NaN, server: j.end.cpu_utilization_percent?.remote_total ?? NaN },
  };
}

/** Encrypted UDP between two processes next to plain UDP: iperf3 -u at full rate, 1200-byte datagrams, A -> B. */
const UDP_LEN = 1200;
interface UdpRun { system: string; sentMbps: number; receivedMbps: number; lostPct: number; cpuTicks: number; bytes: number }
const udpRows: UdpRun[] = [];

async function iperfUdp(system: string, connectTo: string, daemons: number[]): Promise<void> {
  const server = await iperfServer();
  const t0 = ticksOf(daemons);
  let out: string, used: number;
  try {
    out = await runIn("a", ["iperf3", "-c", connectTo, "-p", String(IPERF_PORT), "-u", "-b", "0", "-l", String(UDP_LEN), "-t", String(T), "-J"], (T + 40) * 1000);
    used = ticksOf(daemons) - t0; // before the wait for the server's exit
  } finally {
    await stop([server]);
  }
  const j = JSON.parse(out);
  if (j.error) throw new Error(`iperf3 -u -c ${connectTo}: ${j.error}`);
  const sum = j.end.sum;
  const lostPct = sum.lost_percent ?? 0;
  const run = { system, sentMbps: sum.bits_per_second / 1e6, receivedMbps: (sum.bits_per_second / 1e6) * (1 - lostPct / 100), lostPct, cpuTicks: used, bytes: sum.bytes * (1 - lostPct / 100) };
  udpRows.push(run);
  console.error(`bench:peers: ${system} UDP: ${run.receivedMbps.toFixed(0)} Mbit/s received, ${lostPct.toFixed(1)}% lost`);
}

interface Row { system: string; mtu: string; one: Run; four: Run; daemons: boolean; note?: string }
const rows: Row[] = [];

async function measure(system: string, connectTo: string, port: number, daemons: number[], mtu: string, note?: string): Promise<Row> {
  const one = await iperf(connectTo, port, 1, daemons);
  const four = await iperf(connectTo, port, 4, daemons);
  const row = { system, mtu, one, four, daemons: daemons.length > 0, note };
  rows.push(row);
  console.error(`bench:peers: ${system}: ${one.mbps.toFixed(0)} / ${four.mbps.toFixed(0)} Mbit/s`);
  return row;
}

const mtuOf = (side: Side, dev: string) => /mtu (\d+)/.exec(execIn(side, ["ip", "-o", "link", "show", "dev", dev]))?.[1] ?? "?";

async function pingUntil(side: Side, ip: string, timeoutMs: number): Promise<void> {
  await until(`ping ${ip} from ${NS[side]}`, timeoutMs, () => runIn(side, ["ping", "-c", "1", "-W", "1", ip], 5_000).then(() => true, () => undefined));
}

function pidIn(side: Side, comm: string): number {
  for (const p of execFileSync("ip", ["netns", "pids", NS[side]], { encoding: "utf8" }).split("\n").filter(Boolean)) {
    try { if (readFileSync(`/proc/${p}/comm`, "utf8").trim() === comm) return Number(p); } catch { /* gone */ }
  }
  throw new Error(`no ${comm} process in ${NS[side]}`);
}

async function stop(procs: ChildProcess[]): Promise<void> {
  await Promise.all(procs.map((c) => new Promise<void>((res) => {
    if (c.exitCode !== null || c.signalCode !== null) return res();
    const k = setTimeout(() => c.kill("SIGKILL"), 5_000);
    c.once("exit", () => { clearTimeout(k); res(); });
    c.kill("SIGTERM");
  })));
}

// ---------------------------------------------------------------------------------------------- the systems

function setupLink(): void {
  for (const ns of Object.values(NS)) { try { execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" }); } catch { /* none */ } }
  for (const s of ["a", "b"] as const) execFileSync("ip", ["netns", "add", NS[s]]);
  execFileSync("ip", ["link", "add", VETH.a, "type", "veth", "peer", "name", VETH.b]);
  for (const s of ["a", "b"] as const) {
    execFileSync("ip", ["link", "set", VETH[s], "netns", NS[s]]);
    execIn(s, ["ip", "addr", "add", `${UNDERLAY[s]}/24`, "dev", VETH[s]]);
    execIn(s, ["ip", "link", "set", "lo", "up"]);
    execIn(s, ["ip", "link", "set", VETH[s], "up"]);
  }
}

interface WgRef { origin: "Debian" | "upstream"; system: string; bin: string; version: string; letter: (typeof WG_DEV_LETTERS)[number] }

/** `wireguard-go --version`'s version (v0.0.20220316 -> 0.0.20220316); throws with the binary's output when it has none. */
function wgVersion(bin: string): string {
  let out: string;
  try { out = execFileSync(bin, ["--version"], { encoding: "utf8", timeout: 10_000, stdio: ["ignore", "pipe", "pipe"] }); } catch (err) {
    throw new Error(`${bin} --version failed: ${(err as Error).message.split("\n")[0]}`);
  }
  const v = /^wireguard-go v?(\S+)/m.exec(out)?.[1];
  if (!v) throw new Error(`${bin} --version does not say it is wireguard-go: ${out.split("\n")[0]}`);
  return v;
}

/** The references this run measures: Debian's always, upstream's when WG_UPSTREAM is set (it must be an executable wireguard-go). */
function wireguardRefs(): WgRef[] {
  const debian = execFileSync("which", ["wireguard-go"], { encoding: "utf8" }).trim();
  const refs: WgRef[] = [{ origin: "Debian", system: "wireguard-go (Debian)", bin: debian, version: wgVersion(debian), letter: "w" }];
  if (WG_UPSTREAM) {
    const bin = resolve(WG_UPSTREAM);
    if (!existsSync(bin)) throw new Error(`WG_UPSTREAM=${WG_UPSTREAM}: no such file`);
    refs.push({ origin: "upstream", system: "wireguard-go (upstream)", bin, version: wgVersion(bin), letter: "u" });
  }
  return refs;
}

/** One line for the record: which wireguard-go the summary compares against, and how to add upstream's when it is missing. */
function wireguardRefLine(refs: WgRef[]): string {
  const [debian, upstream] = refs;
  const d = `Debian's wireguard-go ${debian.version} (${debian.bin})`;
  return upstream
    ? `wireguard-go references: upstream wireguard-go ${upstream.version} (WG_UPSTREAM=${upstream.bin}) and ${d}; the ratio line compares against upstream`
    : `wireguard-go reference: ${d}; upstream wireguard-go not given (build it from https://git.zx2c4.com/wireguard-go with \`make\`, Go >= 1.23, and pass WG_UPSTREAM=/path/to/wireguard-go)`;
}

/**
 * One wireguard-go pair, A and B. Each reference gets its own interface names (PREFIX + w/u + a/b): the UAPI socket
 * /var/run/wireguard/DEV.sock lives in the host's mount namespace, so names, not network namespaces, keep them apart.
 */
async function wireguard(ref: WgRef): Promise<void> {
  const dev = { a: `${PREFIX}${ref.letter}a`, b: `${PREFIX}${ref.letter}b` };
  const key = (s: Side) => { const priv = execFileSync("wg", ["genkey"], { encoding: "utf8" }).trim(); return { priv, pub: execFileSync("wg", ["pubkey"], { input: priv, encoding: "utf8" }).trim(), s }; };
  const keys = { a: key("a"), b: key("b") };
  const procs = (["a", "b"] as const).map((s) => spawnIn(s, [ref.bin, dev[s]], { env: { ...process.env, WG_PROCESS_FOREGROUND: "1" } }));
  procs.forEach((p, i) => diagnostics.watch(`${ref.system} ${"ab"[i]}`, p));
  try {
    for (const s of ["a", "b"] as const) {
      await until(`wireguard-go ${dev[s]}`, 20_000, () => (tryIn(s, ["ip", "link", "show", dev[s]]) ? true : undefined));
      const o: Side = s === "a" ? "b" : "a";
      const kf = join(dir, `wg-${s}.key`);
      writeFileSync(kf, keys[s].priv + "\n", { mode: 0o600 });
      execIn(s, ["wg", "set", dev[s], "listen-port", "51820", "private-key", kf, "peer", keys[o].pub, "endpoint", `${UNDERLAY[o]}:51820`, "allowed-ips", `${WG_IP[o]}/32`]);
      execIn(s, ["ip", "addr", "add", `${WG_IP[s]}/24`, "dev", dev[s]]);
      execIn(s, ["ip", "link", "set", dev[s], "up"]);
    }
    await pingUntil("a", WG_IP.b, 20_000);
    await measure(ref.system, WG_IP.b, IPERF_PORT, procs.map((p) => p.pid!), mtuOf("a", dev.a), `${ref.version}, ${ref.bin}`);
  } finally {
    await stop(procs);
  }
}

async function nebula(): Promise<void> {
  const cipher = process.env.NEBULA_CIPHER ?? "aes";
  const nb = join(dir, "nebula");
  mkdirSync(nb);
  execFileSync("nebula-cert", ["ca", "-name", "lab", "-out-crt", join(nb, "ca.crt"), "-out-key", join(nb, "ca.key")]);
  const procs: ChildProcess[] = [];
  try {
    for (const s of ["a", "b"] as const) {
      const o: Side = s === "a" ? "b" : "a";
      execFileSync("nebula-cert", ["sign", "-ca-crt", join(nb, "ca.crt"), "-ca-key", join(nb, "ca.key"), "-name", s, "-ip", `${NEB_IP[s]}/24`,
        "-out-crt", join(nb, `${s}.crt`), "-out-key", join(nb, `${s}.key`)]);
      const f = join(nb, `${s}.yml`);
      writeFileSync(f, [
        `pki: {ca: ${join(nb, "ca.crt")}, cert: ${join(nb, `${s}.crt`)}, key: ${join(nb, `${s}.key`)}}`,
        `static_host_map: {"${NEB_IP[o]}": ["${UNDERLAY[o]}:4242"]}`,
        "lighthouse: {am_lighthouse: false}",
        `listen: {host: ${UNDERLAY[s]}, port: 4242}`,
        "tun: {dev: neb0}",
        `cipher: ${cipher}`,
        "logging: {level: warning}",
        "firewall: {outbound: [{port: any, proto: any, host: any}], inbound: [{port: any, proto: any, host: any}]}",
      ].join("\n") + "\n");
      procs.push(spawnIn(s, ["nebula", "-config", f]));
      diagnostics.watch(`nebula ${s}`, procs[procs.length - 1]);
    }
    await pingUntil("a", NEB_IP.b, 30_000);
    await measure(`nebula (${cipher})`, NEB_IP.b, IPERF_PORT, procs.map((p) => p.pid!), mtuOf("a", "neb0"));
  } finally {
    await stop(procs);
  }
}

async function writeLeaf(ca: CaMaterial, prefix: string, name: string, tenant: string, roles: string[]) {
  const keys = generateEd25519();
  const der = await issueLeaf(ca, { name, tenant, roles, ttlMs: 3_600_000, publicKey: keys.publicKey });
  const cert = join(dir, `${prefix}.crt`), key = join(dir, `${prefix}.key`);
  writeFileSync(cert, withIntermediates(toPem(der, "CERTIFICATE"), ca.bundlePem));
  writeFileSync(key, privateKeyToPem(keys.privateKey), { mode: 0o600 });
  return ["--cert", cert, "--key", key, "--ca", join(ca.dir, "bundle.pem")];
}

interface EmberNode { name: string; state: string; socket: string; proc: ChildProcess; overlay: string }

async function embernet(): Promise<void> {
  const em = join(dir, "ember");
  mkdirSync(em);
  const ca = await initCa(join(em, "ca"), "bench.embernet");
  const admin = await writeLeaf(ca, "admin", "ops-admin", "ops", ["admin"]);
  // The coordination server in A on its veth address: B's node reaches it over the same link.
  const coord = spawnIn("a", [process.execPath, EMBER, "coord", "--data", join(em, "coord"), "--ca-dir", ca.dir, "--listen", `${UNDERLAY.a}:8443`]);
  diagnostics.watch("ember coord", coord);
  const coordUrl = /(https:\/\/\S+)/.exec(await started("ember coord", coord, /coordination server https:\/\//))![1];
  const adminArgs = ["--coord", coordUrl, ...admin];
  const policy = join(em, "policy.yaml");
  writeFileSync(policy, 'version: 1\nrules:\n  - allow: {source: "*", target: "*"}\n');
  await runIn("a", [process.execPath, EMBER, "policy", "set", policy, ...adminArgs], 60_000);
  const token = async () => JSON.parse(await runIn("a", [process.execPath, EMBER, "token", "create", "--tenant", "lab", "--json", ...adminArgs], 60_000)).token as string;

  const nodes: Record<Side, EmberNode> = {} as Record<Side, EmberNode>;
  for (const [s, name] of [["a", "pa"], ["b", "pb"]] as const) {
    const state = join(em, name);
    const config = join(em, `${name}.yaml`);
    // B serves the iperf3 port to the mesh (what `ember forward` on A reaches; TUN traffic needs no service).
    writeFileSync(config, s === "b" ? `services:\n  iperf: {to: "127.0.0.1:${IPERF_PORT}", port: ${IPERF_PORT}}\n` : "{}\n");
    const proc = spawnIn(s, [process.execPath, EMBER, "up", "--config", config, "--coord", coordUrl, "--token", await token(), "--name", name, "--state", state,
      "--listen", `${UNDERLAY[s]}:0`, "--tun", "ember0", "--mtu", "1500", "--no-portmap", "--log-level", EMBER_LOG_LEVEL]);
    diagnostics.watch(`ember up ${name}`, proc);
    diagnostics.emberNode(name, state);
    await started(`ember up ${name}`, proc, /"event":"up"/);
    nodes[s] = { name, state, socket: join(state, "ember.sock"), proc, overlay: "" };
  }
  const status = (n: EmberNode) => controlRequest<any>(n.socket, "status", {}, 10_000);
  for (const s of ["a", "b"] as const) {
    nodes[s].overlay = await until(`${nodes[s].name}'s TUN device`, 30_000, async () => (await status(nodes[s]).catch(() => undefined))?.dataPlane?.native?.tun?.address as string | undefined);
  }
  const st = await status(nodes.a);
  if (st.dataPlane?.backend !== "native") throw new Error(`pa runs the ${st.dataPlane?.backend} data plane, not the native one: ${JSON.stringify(st.dataPlane)}`);
  await pingUntil("a", nodes.b.overlay, 30_000);
  const path = await until("pa -> pb direct", 30_000, async () => {
    await controlRequest(nodes.a.socket, "ping", { name: "pb", timeoutMs: 1_000 }, 3_000).catch(() => undefined);
    const peers = await controlRequest<any[]>(nodes.a.socket, "peers", {}, 5_000).catch(() => []);
    return peers.find((p) => p.name === "pb")?.path === "direct" ? "direct" : undefined;
  });
  const daemons = [nodes.a.proc.pid!, nodes.b.proc.pid!];
  const native = async () => ({ a: (await status(nodes.a)).dataPlane.native.stats, b: (await status(nodes.b)).dataPlane.native.stats });
  const s0 = await native();
  const tunRow = await measure("EmberNet TUN (native addon)", nodes.b.overlay, IPERF_PORT, daemons, mtuOf("a", "ember0"), `path ${path}`);
  await iperfUdp("EmberNet TUN (native addon)", nodes.b.overlay, daemons);
  const s1 = await native();
  const d = (k: string, side: "a" | "b") => (s1[side][k] ?? 0) - (s0[side][k] ?? 0);
  const dropList = (side: "a" | "b") => Object.entries(s1[side].drops ?? {}).map(([k, v]) => [k, (v as number) - ((s0[side].drops ?? {})[k] ?? 0)] as const).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`).join(" ") || "none";
  tunRow.note = `path ${path}; A: ${d("tunRxPackets", "a")} packets from ${d("tunReads", "a")} TUN reads (TSO ${s1.a.tunVnetHdr}), ${(d("udpTxPackets", "a") / Math.max(1, d("udpTxCalls", "a"))).toFixed(1)} datagrams per send call (gso=${s1.a.gso}); ` +
    `B: ${(d("udpRxPackets", "b") / Math.max(1, d("udpRxBatches", "b"))).toFixed(1)} datagrams per receive batch (gro=${s1.b.gro}), ${d("tunTxPackets", "b")} packets into TUN in ${d("tunWrites", "b")} writes; drops A: ${dropList("a")}, B: ${dropList("b")}`;

  // The same two daemons, userspace streams: a forward on A (loopback) to pb's iperf3 service.
  const fwd = JSON.parse(await runIn(undefined, [process.execPath, EMBER, "forward", "0", `pb:${IPERF_PORT}`, "--detach", "--json", "--state", nodes.a.state], 30_000));
  const fwdPort = Number(String(fwd.listen).split(":").pop());
  await measure("EmberNet `ember forward` (userspace)", "127.0.0.1", fwdPort, daemons, "-", `forward 127.0.0.1:${fwdPort} -> pb:${IPERF_PORT}, same daemons`);
  await stop([nodes.a.proc, nodes.b.proc, coord]);
}

// ---------------------------------------------------------------------------------------------- report

function report(wgRefs: WgRef[]): void {
  const gb = (r: Run) => r.bytes / 1e9;
  const cpu = (row: Row) => (row.daemons ? (((row.one.cpuTicks + row.four.cpuTicks) / TICKS) / (gb(row.one) + gb(row.four))).toFixed(1) : "-");
  const iperfCpu = (r: Run) => `${r.iperfCpu.client.toFixed(0)}/${r.iperfCpu.server.toFixed(0)}`;
  const lines = [
    "| system | tunnel MTU | 1 stream Mbit/s | 4 streams Mbit/s | CPU s/GB (daemons, both sides) | retransmits 1/4 | iperf3 CPU % client/server, 1 stream |",
    "|---|---|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.system} | ${r.mtu} | ${r.one.mbps.toFixed(0)} | ${r.four.mbps.toFixed(0)} | ${cpu(r)} | ${r.one.retransmits}/${r.four.retransmits} | ${iperfCpu(r.one)} |`),
  ];
  console.log(`\nPeer throughput, iperf3 TCP A -> B, ${T} s per run — ${new Date().toISOString()}, ${cpus().length} x ${cpus()[0]?.model ?? "?"}, load ${loadavg().map((x) => x.toFixed(1)).join(" ")}, Node ${process.version}\n`);
  console.log(lines.join("\n"));
  const find = (p: string) => rows.find((r) => r.system.startsWith(p));
  // The issue's target is against upstream wireguard-go; Debian's stands in when WG_UPSTREAM was not given.
  const wgRef = wgRefs[wgRefs.length - 1];
  const ember = find("EmberNet TUN"), wg = find(wgRef.system), neb = find("nebula");
  console.log("");
  console.log(wireguardRefLine(wgRefs));
  if (ember && wg && neb) {
    const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
    console.log(`EmberNet TUN / wireguard-go ${wgRef.origin} ${wgRef.version}: 1 stream ${ratio(ember.one.mbps, wg.one.mbps)}, 4 streams ${ratio(ember.four.mbps, wg.four.mbps)} (target >= 1.5x); ` +
      `CPU s/GB ${cpu(ember)} vs ${cpu(wg)} (target: below)`);
    console.log(`EmberNet TUN / nebula: 1 stream ${ratio(ember.one.mbps, neb.one.mbps)}, 4 streams ${ratio(ember.four.mbps, neb.four.mbps)} (target >= 1.5x)`);
  }
  for (const r of rows) if (r.note) console.log(`${r.system}: ${r.note}`);
  if (udpRows.length) {
    console.log(`\nUDP between two processes (iperf3 -u -b 0 -l ${UDP_LEN}, A -> B, ${T} s): received Mbit/s, loss, CPU s/GB of the daemons\n`);
    console.log(["| system | sent Mbit/s | received Mbit/s | lost | CPU s/GB |", "|---|---|---|---|---|",
      ...udpRows.map((u) => `| ${u.system} | ${u.sentMbps.toFixed(0)} | ${u.receivedMbps.toFixed(0)} | ${u.lostPct.toFixed(1)}% | ${u.cpuTicks ? (u.cpuTicks / TICKS / (u.bytes / 1e9)).toFixed(1) : "-"} |`)].join("\n"));
    const plain = udpRows.find((u) => u.system === "raw veth"), enc = udpRows.find((u) => u.system.startsWith("EmberNet TUN"));
    if (plain && enc) console.log(`\nEncrypted UDP (EmberNet TUN) / plain UDP: ${((100 * enc.receivedMbps) / plain.receivedMbps).toFixed(0)}% (target >= 90%)`);
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("needs root (network namespaces, TUN devices)");
  for (const tool of ["iperf3", "wireguard-go", "wg", "nebula", "nebula-cert", "ss"]) {
    try { execFileSync("which", [tool], { stdio: "ignore" }); } catch { throw new Error(`${tool} is not installed (Debian packages iperf3, wireguard-go, wireguard-tools, nebula, iproute2)`); }
  }
  const addon = loadNativeAddon();
  if (!addon.addon) throw new Error(`the native addon is not loaded: ${addon.reason}`);
  if (!existsSync(join(ROOT, "dist", "src", "cli", "main.js"))) console.error("bench:peers: no dist/ (npm run build): the daemons run from sources through tsx, which only slows their start");
  const wgRefs = wireguardRefs();
  console.error(`bench:peers: ${wireguardRefLine(wgRefs)}`);
  sweepDeadRuns();
  mkdirSync(OWNER_DIR, { recursive: true });
  writeFileSync(join(OWNER_DIR, `${PREFIX}.owner`), `${process.pid}\n${dir}\n`);
  setupLink();
  await measure("raw veth", UNDERLAY.b, IPERF_PORT, [], execIn("a", ["cat", `/sys/class/net/${VETH.a}/mtu`]).trim());
  await iperfUdp("raw veth", UNDERLAY.b, []);
  for (const ref of wgRefs) await wireguard(ref);
  await nebula();
  await embernet();
  report(wgRefs);
}

void main().then(() => { cleanup(); process.exit(0); }, async (err) => {
  await diagnostics.print(); // before cleanup, while the daemons still answer
  console.error(`bench:peers: ${(err as Error).stack ?? err}`);
  cleanup();
  process.exit(1);
});
