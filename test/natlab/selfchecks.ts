// The lab's self-checks: each builds nothing itself, runs real UDP/TCP probes in a standard topology, and returns a
// table row plus the raw data the tests assert on. Shared by test/natlab/*.test.ts and scripts/natlab.ts.
import { execFileSync } from "node:child_process";
import { Lab, type Host, type Router, type ServerHost } from "./lab.js";
import type { ResultRow } from "./table.js";
import { runTool, startTool } from "./tools.js";

export const REFLECT_UDP = [3478, 3479];
export const REFLECT_TCP = [443, 8443];

export interface StandardLab {
  lab: Lab;
  srv: ServerHost;
  srv2: ServerHost;
  routers: { eim: Router; eim2: Router; edm: Router; blocked: Router; none: Router };
  hosts: { eim: Host; eim2: Host; edm: Host; blocked: Host; none: Host };
}

/** Two servers with reflectors, and one router of each kind (two EIM) with one host each. */
export async function buildStandardLab(opts: { prefix?: string } = {}): Promise<StandardLab> {
  const lab = await Lab.create(opts);
  try {
    const srv = await lab.addServerHost("srv");
    const srv2 = await lab.addServerHost("srv2");
    const routers = {
      eim: await lab.addRouter("a", "eim"),
      eim2: await lab.addRouter("b", "eim"),
      edm: await lab.addRouter("e", "edm"),
      blocked: await lab.addRouter("f", "udp-blocked"),
      none: await lab.addRouter("n", "none"),
    };
    const hosts = {
      eim: await lab.addHost("a1", routers.eim),
      eim2: await lab.addHost("b1", routers.eim2),
      edm: await lab.addHost("e1", routers.edm),
      blocked: await lab.addHost("f1", routers.blocked),
      none: await lab.addHost("n1", routers.none),
    };
    const args = ["--udp", REFLECT_UDP.join(","), "--tcp", REFLECT_TCP.join(",")];
    const reflectors = [startTool(lab, srv, "reflector", args), startTool(lab, srv2, "reflector", args)];
    for (const r of reflectors) await r.nextJson(15_000);
    return { lab, srv, srv2, routers, hosts };
  } catch (e) {
    await lab.destroy();
    throw e;
  }
}

type Seen = { address: string; port: number } | null;
export interface MappingResult { local: number; seen: Seen[] }

/** From one socket: what two reflectors (two IPs) and a second port on the first saw. */
export async function probeMapping(s: StandardLab, host: Host, localPort: number): Promise<MappingResult> {
  const targets = [`${s.srv.address}:${REFLECT_UDP[0]}`, `${s.srv2.address}:${REFLECT_UDP[0]}`, `${s.srv.address}:${REFLECT_UDP[1]}`];
  return runTool<MappingResult>(s.lab, host, "probe", ["mapping", "--targets", targets.join(","), "--port", String(localPort)]);
}

const fmt = (x: Seen) => (x ? `${x.address}:${x.port}` : "no reply");
const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => { const t = Date.now(); const v = await f(); return [v, Date.now() - t]; };

export async function checkNone(s: StandardLab): Promise<ResultRow & { data: MappingResult }> {
  const [m, ms] = await timed(() => probeMapping(s, s.hosts.none, 40100));
  const ok = m.seen.every((x) => x?.address === s.hosts.none.address && x.port === 40100);
  return { scenario: "none: reflexive address", expected: `host's own ${s.hosts.none.address}:40100`, observed: m.seen.map(fmt).join(", "), ms, ok, data: m };
}

export async function checkEim(s: StandardLab): Promise<ResultRow & { data: MappingResult }> {
  const [m, ms] = await timed(() => probeMapping(s, s.hosts.eim, 40200));
  const wan = s.routers.eim.wanAddress;
  const ports = new Set(m.seen.map((x) => x?.port));
  const ok = m.seen.every((x) => x?.address === wan) && ports.size === 1;
  return { scenario: "eim: mapping to 3 destinations", expected: `${wan}, one port for all`, observed: m.seen.map(fmt).join(", "), ms, ok, data: m };
}

export async function checkEdm(s: StandardLab): Promise<ResultRow & { data: MappingResult }> {
  const [m, ms] = await timed(() => probeMapping(s, s.hosts.edm, 40300));
  const wan = s.routers.edm.wanAddress;
  const ports = new Set(m.seen.map((x) => x?.port));
  const ok = m.seen.every((x) => x?.address === wan) && ports.size === m.seen.length;
  return { scenario: "edm: mapping to 3 destinations", expected: `${wan}, a new port each`, observed: m.seen.map(fmt).join(", "), ms, ok, data: m };
}

export interface BlockedResult { udp: MappingResult; tcp443: { connected: boolean; seen?: Seen; error?: string }; tcpOther: { connected: boolean; error?: string } }

export async function checkUdpBlocked(s: StandardLab): Promise<ResultRow & { data: BlockedResult }> {
  const h = s.hosts.blocked;
  const [data, ms] = await timed(async () => {
    const [udp, tcp443, tcpOther] = await Promise.all([
      runTool<MappingResult>(s.lab, h, "probe", ["mapping", "--targets", `${s.srv.address}:${REFLECT_UDP[0]}`, "--timeout", "1500"]),
      runTool(s.lab, h, "probe", ["tcp", "--target", `${s.srv.address}:443`, "--timeout", "3000"]),
      runTool(s.lab, h, "probe", ["tcp", "--target", `${s.srv.address}:8443`, "--timeout", "1500"]),
    ]);
    return { udp, tcp443, tcpOther } as BlockedResult;
  });
  const ok = data.udp.seen[0] === null && data.tcp443.connected && data.tcp443.seen?.address === s.routers.blocked.wanAddress && !data.tcpOther.connected;
  const observed = `udp ${fmt(data.udp.seen[0] ?? null)}; tcp/443 ${data.tcp443.connected ? `seen as ${fmt(data.tcp443.seen ?? null)}` : data.tcp443.error}; tcp/8443 ${data.tcpOther.connected ? "connected" : data.tcpOther.error}`;
  return { scenario: "udp-blocked: udp, tcp/443, tcp/8443", expected: "udp none; 443 via NAT; 8443 blocked", observed, ms, ok, data };
}

export interface LossResult { withLoss: { sent: number; received: number }; cleared: { sent: number; received: number }; dropped: { in: number; out: number } }

/** 500 paced round trips through the EIM router with `percent`% loss each way, then again with loss cleared. */
export async function checkLoss(s: StandardLab, percent = 10, count = 500): Promise<ResultRow & { data: LossResult }> {
  const r = s.routers.eim;
  const rtt = () => runTool<{ sent: number; received: number }>(s.lab, s.hosts.eim, "probe",
    ["rtt", "--target", `${s.srv.address}:${REFLECT_UDP[0]}`, "--count", String(count), "--interval", "4", "--timeout", "800"], 30_000);
  const [data, ms] = await timed(async () => {
    await s.lab.setLoss(r, percent);
    let withLoss, dropped;
    try {
      withLoss = await rtt();
      dropped = s.lab.lossCounters(r);
    } finally {
      await s.lab.clearLoss(r);
    }
    const cleared = await rtt();
    return { withLoss, cleared, dropped } as LossResult;
  });
  const frac = data.withLoss.received / data.withLoss.sent;
  const ok = frac >= 0.7 && frac <= 0.95 && data.cleared.received === data.cleared.sent;
  return {
    scenario: `loss ${percent}% each way, ${count} round trips`, expected: "70-95% with loss, 100% cleared",
    observed: `${(frac * 100).toFixed(1)}% (dropped in ${data.dropped.in}/out ${data.dropped.out}), cleared ${data.cleared.received}/${data.cleared.sent}`,
    ms, ok, data,
  };
}

export interface CutResult { before: number; during: number; after: number; count: number }

/** UDP from the EIM host to a reflector on the no-NAT host: passes, is cut at the core by handle, passes again. */
export async function checkCut(s: StandardLab, count = 20): Promise<ResultRow & { data: CutResult }> {
  const target = `${s.hosts.none.address}:${REFLECT_UDP[0]}`;
  const refl = startTool(s.lab, s.hosts.none, "reflector", ["--udp", String(REFLECT_UDP[0])]);
  const [data, ms] = await timed(async () => {
    await refl.nextJson(15_000);
    const rtt = async () => (await runTool<{ received: number }>(s.lab, s.hosts.eim, "probe",
      ["rtt", "--target", target, "--count", String(count), "--interval", "10", "--timeout", "500"])).received;
    const before = await rtt();
    const cut = await s.lab.cutUdp(s.hosts.eim, s.hosts.none);
    let during: number;
    try { during = await rtt(); } finally { await cut.restore(); }
    const after = await rtt();
    return { before, during, after, count };
  });
  refl.child.kill("SIGKILL");
  const ok = data.before === count && data.during === 0 && data.after === count;
  return { scenario: "cut/restore udp eim host <-> none host", expected: `${count}, 0, ${count} replies`, observed: `${data.before}, ${data.during}, ${data.after}`, ms, ok, data };
}

// --- simultaneous punching between two EIM NATs (DESIGN.md: Linux conntrack clash) ---

export interface PunchSide {
  ok: boolean; pongMs: number; pingMs: number; sent: number; lowSent: number; pings: number; pongs: number;
  mapped: { address: string; port: number }; fromPorts: number[];
}
export interface PunchTrial {
  mode: "naive" | "lowttl"; port: number; skewMs: number; holdMs: number;
  a: PunchSide; b: PunchSide; ok: boolean;
  /** Wall time until both sides had a pong and the peer's ping (max of the two), null on failure. */
  connectMs: number | null;
  /** Public port each router used towards the peer, read from its conntrack (null without the conntrack tool). */
  aPortToPeer: number | null; bPortToPeer: number | null;
}

/** One trial: both hosts learn their mapping from the reflector, then are told "go" (B after skewMs) and punch. */
export async function punchTrial(s: StandardLab, mode: "naive" | "lowttl", port: number, opts: { skewMs?: number; holdMs?: number; budgetMs?: number } = {}): Promise<PunchTrial> {
  const skewMs = opts.skewMs ?? 0, holdMs = opts.holdMs ?? 100, budget = opts.budgetMs ?? 3000;
  const a = s.hosts.eim, b = s.hosts.eim2;
  const args = ["--port", String(port), "--stun", `${s.srv.address}:${REFLECT_UDP[0]}`, "--mode", mode,
    "--hold", String(holdMs), "--budget", String(budget), "--low-ttl", "2"];
  const pa = startTool(s.lab, a, "punch", args), pb = startTool(s.lab, b, "punch", args);
  const [ra, rb] = await Promise.all([pa.nextJson(15_000), pb.nextJson(15_000)]);
  if (!ra.ready || !rb.ready) throw new Error(`punch tools not ready: ${JSON.stringify([ra, rb])}`);
  const resA = pa.nextJson<PunchSide>(budget + 10_000), resB = pb.nextJson<PunchSide>(budget + 10_000);
  pa.send(`go ${rb.mapped.address}:${rb.mapped.port}`);
  if (skewMs > 0) await new Promise((r) => setTimeout(r, skewMs));
  pb.send(`go ${ra.mapped.address}:${ra.mapped.port}`);
  const [sa, sb] = await Promise.all([resA, resB]);
  const ok = sa.ok && sb.ok;
  return {
    mode, port, skewMs, holdMs, a: sa, b: sb, ok,
    connectMs: ok ? Math.max(sa.pongMs, sa.pingMs, sb.pongMs + skewMs, sb.pingMs + skewMs) : null,
    aPortToPeer: portToPeer(s.lab, s.routers.eim, a, rb.mapped.address, port),
    bPortToPeer: portToPeer(s.lab, s.routers.eim2, b, ra.mapped.address, port),
  };
}

function portToPeer(lab: Lab, router: Router, host: Host, peerAddress: string, port: number): number | null {
  if (!hasConntrackTool()) return null;
  for (const line of lab.conntrackUdp(router)) {
    const kv = [...line.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!] as const);
    const orig = Object.fromEntries(kv.slice(0, 4)), reply = Object.fromEntries(kv.slice(4, 8));
    if (orig.src === host.address && orig.dst === peerAddress && Number(orig.sport) === port) return Number(reply.dport);
  }
  return null;
}

let conntrackTool: boolean | undefined;
export function hasConntrackTool(): boolean {
  if (conntrackTool === undefined) {
    try { execFileSync("conntrack", ["--version"], { stdio: "pipe" }); conntrackTool = true; } catch { conntrackTool = false; }
  }
  return conntrackTool;
}

export function punchRow(label: string, trials: PunchTrial[], expected: string, ok: boolean): ResultRow {
  const won = trials.filter((t) => t.ok);
  const times = won.map((t) => t.connectMs!).sort((x, y) => x - y);
  const remaps = trials.filter((t) => (t.aPortToPeer !== null && t.aPortToPeer !== t.port) || (t.bPortToPeer !== null && t.bPortToPeer !== t.port));
  const remapText = remaps.length ? `; remapped ${remaps.map((t) => `${t.port}->${t.aPortToPeer}/${t.bPortToPeer}`).join(" ")}` : "";
  return {
    scenario: label, expected,
    observed: `${won.length}/${trials.length} connected${times.length ? ` (${times.join(", ")} ms)` : ""}${remapText}`,
    ms: times.length ? times[Math.floor(times.length / 2)]! : null, ok,
  };
}

/** Runs coturn's STUN client against a coturn server in the server namespace, from the EIM host. */
export async function checkStunClient(s: StandardLab): Promise<ResultRow & { data: { mapped: string | null; why?: string } }> {
  const t = Date.now();
  for (const tool of ["turnutils_stunclient", "turnserver"]) {
    try { execFileSync("which", [tool], { stdio: "pipe" }); } catch {
      return { scenario: "interop: turnutils_stunclient", expected: "mapped = eim WAN", observed: `${tool} missing (Debian coturn)`, ms: null, ok: false, data: { mapped: null, why: `${tool} missing` } };
    }
  }
  const port = 3490;
  const server = s.lab.spawn(s.srv, ["turnserver", "--stun-only", "-n", "--no-cli", "--no-tls", "--no-dtls",
    "--listening-ip", s.srv.address, "--listening-port", String(port), "--log-file", "stdout", "--simple-log"]);
  server.stdout!.resume(); server.stderr!.resume();
  let mapped: string | null = null, out = "";
  try {
    for (let i = 0; i < 20 && !mapped; i++) {
      await new Promise((r) => setTimeout(r, 150));
      const r = await s.lab.run(s.hosts.eim, ["turnutils_stunclient", "-p", String(port), s.srv.address], { timeoutMs: 5000 });
      out = r.stdout + r.stderr;
      mapped = /UDP reflexive addr: (\d+\.\d+\.\d+\.\d+:\d+)/.exec(out)?.[1] ?? null;
    }
  } finally {
    server.kill("SIGKILL");
  }
  const ok = mapped?.startsWith(`${s.routers.eim.wanAddress}:`) ?? false;
  return { scenario: "interop: turnutils_stunclient -> turnserver", expected: `mapped ${s.routers.eim.wanAddress}:*`, observed: mapped ?? `no mapping: ${out.trim().split("\n").pop()}`, ms: Date.now() - t, ok, data: { mapped } };
}
