// Stream benchmark: application bytes through `ember forward` between two real daemons on loopback, side
// by side with plain TCP over loopback and with the raw encrypted-session datagram ceiling of
// bench/dataplane.ts section 4 (same machine, same run).
//   1. the raw ceiling: EmberNet DATA packets of 1400 B between two processes (udp-flow.ts)
//   2. plain TCP over loopback: 1 stream and 8 streams (a sender and a sink process)
//   3. the same through `ember forward` (two daemons, a static mesh with a local policy, --mtu 1500)
//   4. goodput under 5% random loss on the daemons' UDP (nftables in a private network namespace; root)
//   5. streams opened per second through the forward (connect, 1-byte echo, close; 32 at a time)
//   npm run bench:streams                  (BENCH_STREAM_MB=200, BENCH_LOSS_MB=50, BENCH_RAW_MS=2000, BENCH_OPEN_MS=3000)
//   BENCH_SMOKE=1 npm run bench:streams    8 MB, 2 MB under loss, 300 ms raw, 500 ms of opens (CI's smoke)
// On a failure it prints both daemons' last log lines and their `ember status`/`ember peers`.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { udpRun } from "./udp-flow.js";
import { knob } from "./smoke.js";
import { Diagnostics } from "./diagnostics.js";

const ROOT = join(import.meta.dirname, "..");
const EMBER = join(ROOT, "bin", "ember.mjs");
const TRANSFER = join(ROOT, "test", "natlab", "tools", "transfer.ts");
const MB = 1024 * 1024;
const BYTES_ONE = knob("BENCH_STREAM_MB", 200, 8) * MB;
const BYTES_EACH_OF_8 = BYTES_ONE / 8;
const LOSS_BYTES = knob("BENCH_LOSS_MB", 50, 2) * MB;
/** The first transfer through the forward, unmeasured: session, paths and JIT warm up. */
const WARM_UP_BYTES = Math.min(8 * MB, BYTES_ONE);
const RAW_MS = knob("BENCH_RAW_MS", 2_000, 300);
const OPEN_MS = knob("BENCH_OPEN_MS", 3_000, 500);
const LIMIT_MS = knob("BENCH_LIMIT_MS", 600_000, 150_000);

const diagnostics = new Diagnostics("bench:streams");

const children = new Set<ChildProcess>();
/** Set when this process runs inside the private namespace its parent made (root only). */
const NETNS = process.env.EMBER_BENCH_NETNS;
const dir = mkdtempSync(join(tmpdir(), "ember-bench-streams-"));

function cleanup(): void {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
}
process.on("exit", cleanup);

/** Starts argv and waits for a stdout line matching `ready`; a daemon (`daemon` its node name) is kept for diagnostics. */
function start(argv: string[], ready: RegExp, daemon?: string): Promise<{ proc: ChildProcess; line: string }> {
  const proc = spawn(argv[0], argv.slice(1), { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  children.add(proc);
  if (daemon) {
    diagnostics.watch(`ember up ${daemon}`, proc);
    diagnostics.emberNode(daemon, join(dir, daemon));
  }
  proc.on("exit", () => children.delete(proc));
  const tail: string[] = [];
  createInterface({ input: proc.stderr! }).on("line", (l) => { tail.push(l); if (tail.length > 20) tail.shift(); });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${argv.slice(0, 4).join(" ")} did not start:\n${tail.join("\n")}`)), 30_000);
    createInterface({ input: proc.stdout! }).on("line", (line) => { if (ready.test(line)) { clearTimeout(t); resolve({ proc, line }); } });
    proc.once("exit", (code) => { clearTimeout(t); reject(new Error(`${argv.slice(0, 4).join(" ")} exited ${code}:\n${tail.join("\n")}`)); });
  });
}

function run(argv: string[], timeoutMs = 60_000, input?: string): string {
  return execFileSync(argv[0], argv.slice(1), { cwd: ROOT, encoding: "utf8", timeout: timeoutMs, input, stdio: ["pipe", "pipe", "pipe"] });
}

interface Sent { bytes: number; ms: number; sha256: string; remoteSha256: string }

/** The kernel's TCP under loss (section 4): iperf3 on its own port, so the loss rule can name it. */
const KERNEL_LOSS_PORT = 9300;

/** One iperf3 transfer of `bytes` over loopback with the given congestion control; Mbit/s received. */
async function kernelTcp(cc: string, bytes: number): Promise<number> {
  await start(["iperf3", "-s", "-1", "-p", String(KERNEL_LOSS_PORT), "--forceflush"], /Server listening/);
  const out = run(["iperf3", "-c", "127.0.0.1", "-p", String(KERNEL_LOSS_PORT), "-n", String(bytes), "-C", cc, "-J"], 300_000);
  const j = JSON.parse(out) as { error?: string; end: { sum_received: { bits_per_second: number } } };
  if (j.error) throw new Error(`iperf3 -C ${cc}: ${j.error}`);
  return j.end.sum_received.bits_per_second / 1e6;
}

/** One sender process with n concurrent connections of `bytes` each to 127.0.0.1:port; Mbit/s, checked byte-exact. */
async function senders(port: number, n: number, bytes: number): Promise<number> {
  const { line } = await start([process.execPath, "--import", "tsx", TRANSFER, "send", "--port", String(port), "--bytes", String(bytes), "--streams", String(n)], /"bytes"/);
  const r = JSON.parse(line) as Sent & { streams: number; mbps: number };
  if (r.sha256 !== r.remoteSha256 || r.bytes !== n * bytes) throw new Error(`transfer not byte-exact: ${line}`);
  return r.mbps;
}

const row = (cells: (string | number)[], widths: number[]) => cells.map((c, i) => String(c).padEnd(widths[i])).join(" ");

async function main(): Promise<void> {
  console.log(`EmberNet stream benchmark — ${new Date().toISOString()}, ${cpus().length} x ${cpus()[0]?.model ?? "?"}, Node ${process.version}`);
  console.log(NETNS ? `(in private network namespace ${NETNS}: the loss rule of section 4 touches nothing else)` : "(not root: no private network namespace, section 4 (loss) is skipped)");

  // 1. raw ceiling.
  const raw = await udpRun("ember", 1400, RAW_MS);
  const rawMbps = (raw.report.payloadBytes * 8) / raw.report.seconds / 1e6;
  // Capacity: the rate with one free core for each end (the slower end's packets per CPU second), as in
  // bench/dataplane.ts section 4: robust to other load on a shared machine, where wall rates are not.
  const rawCapMbps = (Math.min(raw.sentCpuPps, raw.report.received / raw.report.cpuSeconds) * 1400 * 8) / 1e6;

  // Identities, policy and two daemons with a static mesh.
  run([process.execPath, EMBER, "ca", "init", "--dir", join(dir, "ca"), "--trust-domain", "bench.local"]);
  const ports = { a: 47100 + (process.pid % 500), b: 47700 + (process.pid % 500) };
  for (const [name, groups] of [["a", "clients"], ["b", "servers"]]) {
    const state = join(dir, name);
    mkdirSync(state);
    run([process.execPath, EMBER, "cert", "issue", "--ca-dir", join(dir, "ca"), "--name", name, "--tenant", "bench", "--groups", groups, "--out", join(state, "id")]);
    renameSync(join(state, "id.crt"), join(state, "cert.pem"));
    renameSync(join(state, "id.key"), join(state, "key.pem"));
    copyFileSync(join(dir, "ca", "bundle.pem"), join(state, "bundle.pem"));
  }
  writeFileSync(join(dir, "policy.yaml"), `rules:\n  - allow: {source: "@clients", target: b, protocol: tcp, ports: [9000, 9001]}\n`);
  const sink = await start([process.execPath, "--import", "tsx", TRANSFER, "sink", "--port", "9000"], /ready/);
  const echoPort = 9101;
  const echo = await start([process.execPath, "-e", `require("net").createServer((s)=>s.pipe(s)).listen(${echoPort},"127.0.0.1",()=>console.log("ready"))`], /ready/);
  void sink; void echo;
  writeFileSync(join(dir, "b.yaml"), `state: ${join(dir, "b")}\nlisten: 127.0.0.1:${ports.b}\nmtu: 1500\npolicy: ${join(dir, "policy.yaml")}\n`
    + `peers: {a: "127.0.0.1:${ports.a}"}\nlog_level: warn\nservices:\n  sink: {to: "127.0.0.1:9000", port: 9000}\n  echo: {to: "127.0.0.1:${echoPort}", port: 9001}\n`);
  // BENCH_PROFILE=DIR: both daemons write V8 CPU profiles there (open them in Chrome DevTools).
  const node = process.env.BENCH_PROFILE ? [process.execPath, "--cpu-prof", "--cpu-prof-dir", process.env.BENCH_PROFILE] : [process.execPath];
  const daemonB = (await start([...node, EMBER, "up", "--config", join(dir, "b.yaml")], /"event":"up"/, "b")).proc;
  const daemonA = (await start([...node, EMBER, "up", "--state", join(dir, "a"), "--listen", `127.0.0.1:${ports.a}`, "--mtu", "1500", "--policy", join(dir, "policy.yaml"),
    "--peer", `b=127.0.0.1:${ports.b}`, "--log-level", "warn"], /"event":"up"/, "a")).proc;
  /** Runs a transfer and also returns its capacity: bits over the busier daemon's CPU seconds. */
  const withCapacity = async (fn: () => Promise<number>, bytes: number): Promise<[number, number]> => {
    const [a0, b0] = [cpuSeconds(daemonA.pid!), cpuSeconds(daemonB.pid!)];
    const mbps = await fn();
    const busier = Math.max(cpuSeconds(daemonA.pid!) - a0, cpuSeconds(daemonB.pid!) - b0);
    return [mbps, (bytes * 8) / busier / 1e6];
  };
  const forward = (target: string) => Number(JSON.parse(run([process.execPath, EMBER, "forward", "0", target, "--detach", "--json", "--state", join(dir, "a")])).listen.split(":").pop());
  const fSink = forward("b:9000");
  const fEcho = forward("b:9001");

  // 2. plain TCP, straight to the sink.
  const tcp1 = await senders(9000, 1, BYTES_ONE);
  const tcp8 = await senders(9000, 8, BYTES_EACH_OF_8);
  // 3. through ember forward.
  await senders(fSink, 1, WARM_UP_BYTES);
  const [em1, em1cap] = await withCapacity(() => senders(fSink, 1, BYTES_ONE), BYTES_ONE);
  const [em8, em8cap] = await withCapacity(() => senders(fSink, 8, BYTES_EACH_OF_8), 8 * BYTES_EACH_OF_8);

  // 4. 5% random loss on the daemons' UDP, both directions (each datagram to either port); beside it the kernel's
  // own TCP through the same rule (5% of the segments each way), CUBIC and BBR (issue 29). For the section the
  // loopback MTU is 1500 and its segmentation offload one segment per packet, so a TCP packet carries what one of
  // EmberNet's datagrams does (at 65,536, or with 64 KB GSO packets, one drop would cost ~45 datagrams' worth).
  let loss5: number | undefined, loss5cap: number | undefined;
  const kernelLoss: { cc: string; mbps: number }[] = [];
  if (NETNS) {
    /** 5% of the packets each match selects are dropped as they arrive (on loopback: once per packet). */
    const lossRule = (...matches: string[]) => `table inet ebench_loss {\n  chain in {\n    type filter hook input priority -10; policy accept;\n`
      + matches.map((m) => `    ${m} numgen random mod 100 < 5 drop\n`).join("") + "  }\n}\n";
    const [lo] = JSON.parse(run(["ip", "-d", "-j", "link", "show", "lo"])) as { mtu: number; gso_max_size: number; gso_max_segs: number }[];
    run(["ip", "link", "set", "lo", "mtu", "1500", "gso_max_size", "1500", "gso_max_segs", "1"]);
    try {
      run(["nft", "-f", "-"], 10_000, lossRule(`udp dport { ${ports.a}, ${ports.b} }`));
      try { [loss5, loss5cap] = await withCapacity(() => senders(fSink, 1, LOSS_BYTES), LOSS_BYTES); } finally { run(["nft", "delete", "table", "inet", "ebench_loss"]); }
      // iperf3 sets each connection's congestion control itself (TCP_CONGESTION): a namespace may only pick
      // from the host's allowed list, which need not hold CUBIC.
      run(["nft", "-f", "-"], 10_000, lossRule(`tcp dport ${KERNEL_LOSS_PORT}`, `tcp sport ${KERNEL_LOSS_PORT}`));
      try {
        for (const cc of ["cubic", "bbr"]) kernelLoss.push({ cc, mbps: await kernelTcp(cc, LOSS_BYTES) });
      } finally {
        run(["nft", "delete", "table", "inet", "ebench_loss"]);
      }
    } finally {
      run(["ip", "link", "set", "lo", "mtu", String(lo.mtu), "gso_max_size", String(lo.gso_max_size), "gso_max_segs", String(lo.gso_max_segs)]);
    }
  }

  // 5. stream opens per second: connect, one byte echoed, close; 32 in flight.
  const opens = await openRate(fEcho);

  // Stop every child gently (a daemon writes its CPU profile on a normal exit), then report.
  await Promise.all([...children].map((c) => new Promise<void>((resolve) => {
    const t = setTimeout(() => { c.kill("SIGKILL"); resolve(); }, 5_000);
    c.once("exit", () => { clearTimeout(t); resolve(); });
    c.kill("SIGTERM");
  })));
  const pct = (x: number, of: number) => `${((100 * x) / of).toFixed(0)}%`;
  const w = [44, 10, 10, 14, 12];
  console.log("\nwall = goodput seen; capacity = goodput per CPU second of the busier daemon (the rate with one free core each)");
  console.log(`\n${row(["figure", "wall Mbit/s", "vs raw", "capacity Mbit/s", "vs raw cap."], w)}`);
  console.log(row(["1. raw encrypted session datagrams, 1400 B", rawMbps.toFixed(0), "100%", rawCapMbps.toFixed(0), "100%"], w));
  console.log(row(["2. plain TCP over loopback, 1 stream", tcp1.toFixed(0), pct(tcp1, rawMbps), "-", "-"], w));
  console.log(row(["   plain TCP over loopback, 8 streams", tcp8.toFixed(0), pct(tcp8, rawMbps), "-", "-"], w));
  console.log(row(["3. ember forward, 1 stream", em1.toFixed(0), pct(em1, rawMbps), em1cap.toFixed(0), pct(em1cap, rawCapMbps)], w));
  console.log(row(["   ember forward, 8 streams", em8.toFixed(0), pct(em8, rawMbps), em8cap.toFixed(0), pct(em8cap, rawCapMbps)], w));
  if (loss5 === undefined) console.log(row(["4. ember forward, 1 stream, 5% loss", "skipped (not root)", "", "", ""], w));
  else console.log(row(["4. ember forward, 1 stream, 5% loss", loss5.toFixed(0), pct(loss5, rawMbps), loss5cap!.toFixed(0), pct(loss5cap!, rawCapMbps)], w));
  for (const k of kernelLoss) console.log(row([`   kernel TCP (${k.cc}), 1 stream, 5% loss`, k.mbps.toFixed(0), pct(k.mbps, rawMbps), "-", "-"], w));
  if (loss5 !== undefined) {
    const cubic = kernelLoss.find((k) => k.cc === "cubic");
    console.log(`5% loss: ember forward at ${pct(loss5, em1)} of its own no-loss wall rate (target 40%)`
      + (cubic ? `, ${(loss5 / cubic.mbps).toFixed(2)}x the kernel's CUBIC through the same rule (target >= 1x)` : ""));
  }
  console.log(`5. stream opens through ember forward: ${opens.toFixed(0)}/s (connect + 1-byte echo + close, 32 in flight)`);
  console.log(`\n(sizes: ${BYTES_ONE / MB} MB single, 8 x ${BYTES_EACH_OF_8 / MB} MB, ${LOSS_BYTES / MB} MB under loss; every transfer checked by sha256)`);
}

/** User + system CPU seconds a process has used (Linux /proc). */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/** Opens per second through the forward at `port` for OPEN_MS (bounded: at most 100,000 opens). */
function openRate(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let done = 0, inflight = 0, failed = 0;
    const one = () => {
      if (performance.now() - t0 > OPEN_MS || done + inflight >= 100_000) {
        if (inflight === 0) resolve(done / ((performance.now() - t0) / 1000));
        return;
      }
      inflight++;
      const c = connect(port, "127.0.0.1");
      c.on("connect", () => c.write("x"));
      c.on("data", () => c.end());
      c.on("close", () => { inflight--; done++; one(); });
      c.on("error", () => { failed++; if (failed > 100) reject(new Error("too many failed opens")); });
    };
    for (let i = 0; i < 32; i++) one();
  });
}

/** SIGKILLs every process left in the namespace, by PID. */
function killNamespace(ns: string): void {
  let pids: string[] = [];
  try { pids = execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).split("\n").filter(Boolean); } catch { /* gone */ }
  for (const p of pids) { try { process.kill(Number(p), "SIGKILL"); } catch { /* exited */ } }
}

if (process.getuid?.() === 0 && !NETNS) {
  // As root: run the whole bench again inside a private network namespace (loopback only), then remove it.
  const ns = `ebench${process.pid}`;
  execFileSync("ip", ["netns", "add", ns]);
  try {
    execFileSync("ip", ["netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, "--import", "tsx", import.meta.filename], {
      stdio: "inherit", env: { ...process.env, EMBER_BENCH_NETNS: ns },
    });
    // The bench inside keeps the time limit; this backstop and a signal end whatever still runs in the namespace.
    const stopAll = () => killNamespace(ns);
    const backstop = setTimeout(stopAll, LIMIT_MS + 30_000);
    for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, stopAll);
    process.exitCode = await new Promise<number>((r) => child.on("exit", (code) => r(code ?? 1)));
    clearTimeout(backstop);
  } finally {
    killNamespace(ns);
    execFileSync("ip", ["netns", "del", ns]);
  }
} else {
  setTimeout(() => {
    console.error(`bench: ${LIMIT_MS / 1000} s limit reached, stopping`);
    void diagnostics.print().finally(() => { cleanup(); process.exit(3); });
  }, LIMIT_MS).unref();
  await main().catch(async (err) => {
    await diagnostics.print(); // while the daemons still run
    console.error(`bench: ${(err as Error).message}`);
    process.exitCode = 1;
  });
}
cleanup();
process.exit(process.exitCode ?? 0);
