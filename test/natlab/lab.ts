// NAT lab: real networks from Linux network namespaces, veth links, routing and nftables NAT.
// One "core" namespace routes between public links (198.18.N.0/24); NAT routers hang off the core with a
// WAN link and own a LAN bridge (198.19.N.0/24) that hosts join. See docs/natlab.md for the plan and rules.
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { natRuleset, lossRuleset, CORE_RULESET, cutRules, FRAGMENT_COUNTER_RULESET, type NatKind } from "./nft.js";
import { LinkEmulator, linkEmulatorArgv } from "./link-emulator.js";
import type { LinkProfile } from "./link-profiles.js";

export type { NatKind } from "./nft.js";
export const NAT_KINDS: readonly NatKind[] = ["eim", "edm", "udp-blocked", "none"];

/** Where lab-owned namespaces are recorded with their creator PID, for the crash-safety sweep. */
const OWNER_DIR = "/run/natlab";
const NAME_RE = /^[a-z][a-z0-9]{0,5}$/; // router/host names: ns name = prefix(<=7) + "-" + role + name <= 15
const PREFIX_RE = /^[a-z][a-z0-9]{1,6}$/;

interface Place { readonly name: string; readonly ns: string }
export interface Core extends Place { readonly role: "core" }
export interface Router extends Place {
  readonly role: "router";
  readonly nat: NatKind;
  /** Public address on the router's WAN link (the NAT's external address). */
  readonly wanAddress: string;
  /** Router address on its LAN bridge (the hosts' gateway). */
  readonly lanAddress: string;
  readonly lanNet: string;
  readonly hosts: Host[];
  /** The address the internet sees for this router's NAT: its WAN address, or its carrier router's (NAT444). */
  readonly publicAddress: string;
  /** The router this one's WAN hangs off (a carrier-grade NAT), if not the core. */
  readonly behind?: Router;
  /** The emulated link between this router's WAN and the core, if it was made with one. */
  readonly link?: LinkEmulator;
}
/** A further LAN on a router (a second subnet behind the same NAT), routed by the router without NAT. */
export interface Subnet { readonly router: Router; readonly bridge: string; readonly lanAddress: string; readonly lanNet: string }
export interface Host extends Place {
  readonly role: "host";
  readonly router: Router;
  /** The host's own interface address (on its router's LAN). */
  readonly address: string;
  /** The address the internet sees: the router's WAN address behind a NAT, the host's own with `none`. */
  readonly publicAddress: string;
}
export interface ServerHost extends Place {
  readonly role: "server";
  /** Public address on its own link to the core. */
  readonly address: string;
  readonly publicAddress: string;
}
export type Node = Core | Router | Host | ServerHost;

export interface ExecResult { code: number | null; stdout: string; stderr: string }
export interface Cut { readonly handles: number[]; restore(): Promise<void> }

let labCounter = 0;
const liveLabs = new Set<Lab>();

export class Lab {
  readonly prefix: string;
  readonly core: Core;
  private readonly namespaces: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly names = new Set<string>();
  private nextNet = 1; // N in 198.18.N.0/24 (links to the core) and 198.19.N.0/24 (LANs)
  /** Veth ports used on each router's bridges (hosts, subnets' hosts, routers behind it): names h0, h1, ... */
  private readonly ports = new Map<string, number>();
  private readonly behindCount = new Map<string, number>();
  /** Each host's veth port on its router's bridge, by host namespace (moveHost takes it to another router). */
  private readonly hostPorts = new Map<string, string>();
  /** Addresses hosts left (kept out of use: conntrack entries for them may still live in the NAT). */
  private readonly retired = new Set<string>();
  private destroyed = false;

  private constructor(prefix: string) {
    this.prefix = prefix;
    this.core = { role: "core", name: "core", ns: `${prefix}-core` };
  }

  /** Why the lab cannot run here, or ok. Cached; tests skip with the reason. */
  static available(): { ok: true } | { ok: false; why: string } {
    if (availability) return availability;
    availability = probeAvailability();
    return availability;
  }

  /** Builds the core namespace. The default prefix is unique per process and lab (PID + counter). */
  static async create(opts: { prefix?: string } = {}): Promise<Lab> {
    const avail = Lab.available();
    if (!avail.ok) throw new Error(`natlab unavailable: ${avail.why}`);
    const prefix = opts.prefix ?? defaultPrefix();
    if (!PREFIX_RE.test(prefix)) throw new Error(`natlab prefix "${prefix}" must match ${PREFIX_RE} (namespace names fit 15 chars)`);
    Lab.sweepOrphans();
    sweepPrefix(prefix); // leftovers of a crashed run that used this same prefix
    const lab = new Lab(prefix);
    liveLabs.add(lab);
    installExitHooks();
    writeOwner(prefix);
    try {
      lab.addNamespace(lab.core.ns);
      lab.sysctlForward(lab.core.ns);
      lab.nft(lab.core, CORE_RULESET);
    } catch (e) {
      lab.destroySync();
      throw e;
    }
    return lab;
  }

  /** Deletes namespaces of labs whose recorded creator process is gone (never a live lab's, never unrecorded ones). */
  static sweepOrphans(): string[] {
    const removed: string[] = [];
    let files: string[] = [];
    try { files = readdirSync(OWNER_DIR); } catch { return removed; }
    for (const f of files) {
      if (!f.endsWith(".owner")) continue;
      const prefix = f.slice(0, -".owner".length);
      const pid = Number(readFileSync(join(OWNER_DIR, f), "utf8").trim());
      if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) continue;
      removed.push(...sweepPrefix(prefix));
      rmSync(join(OWNER_DIR, f), { force: true });
    }
    return removed;
  }

  /** A server in its own namespace with a public address on a link to the core (STUN, relay, coordination). */
  async addServerHost(name: string): Promise<ServerHost> {
    this.checkName(name);
    const n = this.allocNet();
    const ns = `${this.prefix}-s${name}`;
    this.addNamespace(ns);
    const address = `198.18.${n}.2`;
    this.link(this.core.ns, `c${n}`, `198.18.${n}.1/24`, ns, "eth0", `${address}/24`);
    this.ip(ns, ["route", "add", "default", "via", `198.18.${n}.1`]);
    return { role: "server", name, ns, address, publicAddress: address };
  }

  /**
   * A router with a WAN link to the core and an empty LAN bridge, applying one NAT kind. With `behind`, its WAN
   * is a port on that router's LAN instead (a home NAT behind a carrier NAT: NAT444). With `link`, its WAN link
   * to the core runs through the link emulator with that profile (delay, jitter, loss, rate, outages).
   */
  async addRouter(name: string, nat: NatKind, opts: { behind?: Router; link?: LinkProfile; linkSeed?: number } = {}): Promise<Router> {
    this.checkName(name);
    if (!NAT_KINDS.includes(nat)) throw new Error(`unknown NAT kind "${nat}" (expected one of ${NAT_KINDS.join(", ")})`);
    const n = this.allocNet();
    const ns = `${this.prefix}-r${name}`;
    this.addNamespace(ns);
    const parent = opts.behind;
    if (parent && opts.link) throw new Error(`router ${name}: an emulated link joins a router to the core; use it on the carrier router ${parent.name} instead`);
    const wanAddress = parent ? this.lanPortAddress(parent) : `198.18.${n}.2`;
    const lanAddress = `198.19.${n}.1`;
    let linkEmulator: LinkEmulator | undefined;
    if (parent) {
      const port = this.nextPort(parent);
      this.link(parent.ns, port, null, ns, "wan0", `${wanAddress}/24`);
      this.ip(parent.ns, ["link", "set", port, "master", "lan0"]);
      this.ip(ns, ["route", "add", "default", "via", parent.lanAddress]);
    } else if (opts.link) {
      linkEmulator = await this.emulatedLink(name, n, ns, wanAddress, opts.link, opts.linkSeed ?? n);
      this.ip(ns, ["route", "add", "default", "via", `198.18.${n}.1`]);
    } else {
      this.link(this.core.ns, `c${n}`, `198.18.${n}.1/24`, ns, "wan0", `${wanAddress}/24`);
      this.ip(ns, ["route", "add", "default", "via", `198.18.${n}.1`]);
    }
    this.ip(ns, ["link", "add", "lan0", "type", "bridge"]);
    this.ip(ns, ["addr", "add", `${lanAddress}/24`, "dev", "lan0"]);
    this.ip(ns, ["link", "set", "lan0", "up"]);
    this.sysctlForward(ns);
    // Only a no-NAT LAN is routable from the internet; NATed LANs stay unreachable, as behind a real NAT.
    if (nat === "none" && !parent) this.ip(this.core.ns, ["route", "add", `198.19.${n}.0/24`, "via", wanAddress]);
    const publicAddress = parent && parent.nat !== "none" ? parent.publicAddress : wanAddress;
    const router: Router = { role: "router", name, ns, nat, wanAddress, lanAddress, lanNet: `198.19.${n}.0/24`, hosts: [], publicAddress, behind: parent, link: linkEmulator };
    this.nft(router, natRuleset(nat));
    return router;
  }

  /**
   * A second (third, ...) LAN bridge on a router, 198.19.M.0/24 with its own M: the router routes between its
   * LANs without NAT (masquerade applies only towards wan0), and offers no hairpin to its own public address.
   */
  async addSubnet(router: Router): Promise<Subnet> {
    if (this.destroyed) throw new Error("lab is destroyed");
    const m = this.allocNet();
    const bridge = `lan${m}`;
    const lanAddress = `198.19.${m}.1`;
    this.ip(router.ns, ["link", "add", bridge, "type", "bridge"]);
    this.ip(router.ns, ["addr", "add", `${lanAddress}/24`, "dev", bridge]);
    this.ip(router.ns, ["link", "set", bridge, "up"]);
    return { router, bridge, lanAddress, lanNet: `198.19.${m}.0/24` };
  }

  /** A host on a router's LAN (or on one of its further subnets); its default route is the router. */
  async addHost(name: string, router: Router, subnet?: Subnet): Promise<Host> {
    this.checkName(name);
    if (subnet && subnet.router !== router) throw new Error(`subnet ${subnet.lanNet} is not on router ${router.name}`);
    const gateway = subnet?.lanAddress ?? router.lanAddress;
    const ns = `${this.prefix}-h${name}`;
    this.addNamespace(ns);
    const base = gateway.slice(0, gateway.lastIndexOf("."));
    const address = `${base}.${10 + router.hosts.filter((h) => h.address.startsWith(`${base}.`)).length}`;
    const port = this.nextPort(router);
    this.link(router.ns, port, null, ns, "eth0", `${address}/24`);
    this.ip(router.ns, ["link", "set", port, "master", subnet?.bridge ?? "lan0"]);
    this.ip(ns, ["route", "add", "default", "via", gateway]);
    this.hostPorts.set(ns, port);
    const host: Host = {
      role: "host", name, ns, router, address,
      publicAddress: router.nat === "none" ? address : router.publicAddress,
    };
    router.hosts.push(host);
    return host;
  }

  /**
   * Nodes that move (test/natlab/moving.test.ts). A new address for the host on the same LAN, as a new DHCP lease
   * gives: the old one deleted, the new one and the default route added. Resolves once the new address is up.
   */
  async renumberHost(host: Host): Promise<Host> {
    const gw = host.router.lanAddress;
    const address = this.nextHostAddress(host.router);
    this.ipBatch(host.ns, [`addr del ${host.address}/24 dev eth0`, `addr add ${address}/24 dev eth0`,
      `route replace default via ${gw}`]);
    return this.rehome(host, host.router, address);
  }

  /**
   * The host leaves its router's LAN for another router's (a laptop moving to another site, behind another NAT): its
   * address goes, its veth port moves to the other router's bridge, then a new address and default route come up.
   */
  async moveHost(host: Host, to: Router): Promise<Host> {
    const port = this.hostPorts.get(host.ns);
    if (!port || host.router.ns === to.ns) throw new Error(`moveHost: ${host.name} has no LAN port, or is on ${to.name} already`);
    const moved = this.nextPort(to);
    this.ipBatch(host.ns, ["addr flush dev eth0"]);
    this.ipBatch(host.router.ns, [`link set ${port} down`, `link set ${port} name ${moved}`, `link set ${moved} netns ${to.ns}`]);
    this.ipBatch(to.ns, [`link set ${moved} master lan0`, `link set ${moved} up`]);
    this.hostPorts.set(host.ns, moved);
    const address = this.nextHostAddress(to);
    this.ipBatch(host.ns, [`addr add ${address}/24 dev eth0`, `route replace default via ${to.lanAddress}`]);
    return this.rehome(host, to, address);
  }

  /** The host's interface down (up: back, with its default route, which the kernel dropped with the link). */
  async setHostLink(host: Host, up: boolean): Promise<void> {
    const gw = host.router.lanAddress;
    this.ipBatch(host.ns, up ? ["link set eth0 up", `route replace default via ${gw}`] : ["link set eth0 down"]);
  }

  /** The next unused host address on a router's main LAN. */
  private nextHostAddress(router: Router): string {
    const base = router.lanAddress.slice(0, router.lanAddress.lastIndexOf("."));
    const used = new Set(router.hosts.map((h) => h.address));
    for (let i = 10; i < 250; i++) if (!used.has(`${base}.${i}`) && !this.retired.has(`${base}.${i}`)) return `${base}.${i}`;
    throw new Error(`router ${router.name} has no free host address`);
  }

  private rehome(host: Host, router: Router, address: string): Host {
    host.router.hosts.splice(host.router.hosts.indexOf(host), 1);
    this.retired.add(host.address);
    const next: Host = { ...host, router, address, publicAddress: router.nat === "none" ? address : router.publicAddress };
    router.hosts.push(next);
    return next;
  }

  /** Several `ip` commands in one namespace, in order, by one process (`ip -batch`). */
  private ipBatch(ns: string, lines: string[]): void {
    try {
      const input = lines.join("\n") + "\n";
      execFileSync("ip", ["-n", ns, "-batch", "-"], { input, stdio: ["pipe", "ignore", "pipe"], encoding: "utf8" });
    } catch (e) {
      throw new Error(`ip -n ${ns} -batch (${lines.join("; ")}): ${String((e as { stderr?: string }).stderr ?? e).trim()}`);
    }
  }

  /**
   * The WAN link of router `name` through its own link namespace `<p>-l<name>`: router wan0 -- veth -- bridge
   * bw + TAP tw  ==linkemu==  TAP tc + bridge bc -- veth -- core cN. Ethernet bridging keeps the emulator
   * invisible to IP (no TTL hop, no address, no conntrack), so every NAT kind and nft rule acts as without it.
   */
  private async emulatedLink(name: string, n: number, routerNs: string, wanAddress: string, profile: LinkProfile, seed: number): Promise<LinkEmulator> {
    const ns = `${this.prefix}-l${name}`;
    this.addNamespace(ns);
    execFileSync("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"], { stdio: ["ignore", "ignore", "pipe"] });
    this.link(this.core.ns, `c${n}`, `198.18.${n}.1/24`, ns, "c", null);
    this.link(ns, "w", null, routerNs, "wan0", `${wanAddress}/24`);
    for (const [bridge, port, tap] of [["bw", "w", "tw"], ["bc", "c", "tc"]]) {
      this.ip(ns, ["tuntap", "add", "dev", tap, "mode", "tap"]);
      this.ip(ns, ["link", "add", bridge, "type", "bridge", "forward_delay", "0"]);
      for (const dev of [port, tap]) this.ip(ns, ["link", "set", dev, "master", bridge]);
      for (const dev of [tap, bridge]) this.ip(ns, ["link", "set", dev, "up"]);
    }
    const child = this.spawnIn(ns, linkEmulatorArgv(profile, "tw", "tc", seed));
    const emulator = new LinkEmulator(profile, child, `link emulator ${ns}`);
    await emulator.ready();
    return emulator;
  }

  /** The next veth port name on a router's bridges. */
  private nextPort(router: Router): string {
    const i = this.ports.get(router.ns) ?? 0;
    if (i >= 200) throw new Error(`router ${router.name} has no free LAN ports`);
    this.ports.set(router.ns, i + 1);
    return `h${i}`;
  }

  /** The address of a router behind this one, on this one's lan0: 198.19.N.2, .3, ... (hosts use .10 and up). */
  private lanPortAddress(router: Router): string {
    const base = router.lanAddress.slice(0, router.lanAddress.lastIndexOf("."));
    const used = this.behindCount.get(router.ns) ?? 0;
    if (used >= 7) throw new Error(`router ${router.name} has no room for another router behind it`);
    this.behindCount.set(router.ns, used + 1);
    return `${base}.${2 + used}`;
  }

  /** Runs argv inside the node's namespace and returns stdout; throws with stderr on a non-zero exit. */
  exec(node: Node, argv: string[], opts: { timeoutMs?: number; input?: string } = {}): string {
    try {
      return execFileSync("ip", ["netns", "exec", node.ns, ...argv], {
        encoding: "utf8", timeout: opts.timeoutMs ?? 15_000, input: opts.input, stdio: ["pipe", "pipe", "pipe"],
      });
    } catch (e) {
      const err = e as { status?: number; stderr?: string; message: string };
      throw new Error(`in ${node.ns}: ${argv.join(" ")} failed (${err.status ?? err.message}): ${String(err.stderr ?? "").trim()}`);
    }
  }

  /** Like exec, but asynchronous and never throws on a non-zero exit. */
  run(node: Node, argv: string[], opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
    return new Promise((resolve) => {
      execFile("ip", ["netns", "exec", node.ns, ...argv], { encoding: "utf8", timeout: opts.timeoutMs ?? 15_000 },
        (err, stdout, stderr) => {
          const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : null) : 0;
          resolve({ code, stdout, stderr });
        });
    });
  }

  /** Starts argv inside the node's namespace; the child is tracked by PID and killed on destroy. */
  spawn(node: Node, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    return this.spawnIn(node.ns, argv, opts);
  }

  private spawnIn(ns: string, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    if (this.destroyed) throw new Error("lab is destroyed");
    // `ip netns exec` execs argv in place, so the child's PID is the program's PID.
    const child = spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["pipe", "pipe", "pipe"], ...opts });
    this.children.add(child);
    child.on("exit", () => this.children.delete(child));
    return child;
  }

  /** Applies an nft script in the node's namespace (atomic: nft -f). */
  nft(node: Node, script: string): string {
    return this.exec(node, ["nft", "-f", "-"], { input: script });
  }

  /** Drops N% of packets in each direction on the router's WAN (nft numgen). Replaces any earlier loss. */
  async setLoss(router: Router, percent: number): Promise<void> {
    if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new Error(`loss percent must be an integer 0..100, got ${percent}`);
    this.nft(router, lossRuleset(percent));
  }

  /** Sets the MTU of the router's WAN link (both ends), e.g. 1280 for a small-MTU link on the path. */
  async setWanMtu(router: Router, mtu: number): Promise<void> {
    const n = router.wanAddress.split(".")[2];
    this.ip(router.ns, ["link", "set", "wan0", "mtu", String(mtu)]);
    this.ip(this.core.ns, ["link", "set", `c${n}`, "mtu", String(mtu)]);
  }

  /** Counts IPv4 fragments forwarded by the core from now on (a datagram bigger than a link's MTU). */
  countFragments(): { read(): number } {
    this.nft(this.core, FRAGMENT_COUNTER_RULESET);
    return { read: () => Number(/packets (\d+)/.exec(this.exec(this.core, ["nft", "list", "chain", "ip", "natlab_frag", "count"]))?.[1] ?? NaN) };
  }

  async clearLoss(router: Router): Promise<void> {
    this.nft(router, "add table ip natlab_loss\ndelete table ip natlab_loss\n");
  }

  /** Packets the loss rules dropped so far, per direction. */
  lossCounters(router: Router): { in: number; out: number } {
    const out = this.exec(router, ["nft", "list", "table", "ip", "natlab_loss"]);
    const get = (chain: string) => Number(new RegExp(`chain ${chain} \\{[^}]*?packets (\\d+)`).exec(out)?.[1] ?? NaN);
    return { in: get("loss_in"), out: get("loss_out") };
  }

  /**
   * Drops UDP between two nodes' public addresses at the core (optionally only between given public ports),
   * both directions, until restore(). Nodes behind the same router share a public address: refused.
   */
  async cutUdp(a: Host | ServerHost | Router, b: Host | ServerHost | Router, ports: { aPort?: number; bPort?: number } = {}): Promise<Cut> {
    const pa = publicOf(a), pb = publicOf(b);
    if (pa === pb) throw new Error(`cutUdp: ${a.name} and ${b.name} share public address ${pa}; the core never sees their traffic`);
    const handles: number[] = [];
    for (const rule of cutRules(pa, pb, ports.aPort, ports.bPort)) {
      const echoed = this.exec(this.core, ["nft", "--echo", "--handle", "add", "rule", "ip", "natlab", "cut", ...rule.split(" ")]);
      const h = /# handle (\d+)/.exec(echoed);
      if (!h) throw new Error(`cutUdp: nft did not report a rule handle: ${echoed.trim()}`);
      handles.push(Number(h[1]));
    }
    let restored = false;
    return {
      handles,
      restore: async () => {
        if (restored || this.destroyed) return;
        restored = true;
        for (const h of handles) this.exec(this.core, ["nft", "delete", "rule", "ip", "natlab", "cut", "handle", String(h)]);
      },
    };
  }

  /** Conntrack entries for UDP in a namespace (needs the conntrack tool), one line per entry. */
  conntrackUdp(node: Node): string[] {
    const r = this.exec(node, ["conntrack", "-L", "-p", "udp"]);
    return r.split("\n").filter((l) => l.startsWith("udp"));
  }

  /** Names of this lab's namespaces that still exist. */
  existingNamespaces(): string[] {
    return listNamespaces().filter((n) => n.startsWith(`${this.prefix}-`));
  }

  /** Kills tracked children and every process left in the lab's namespaces, then deletes the namespaces. Idempotent. */
  async destroy(): Promise<void> {
    this.destroySync();
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const c of this.children) if (c.pid && c.exitCode === null && c.signalCode === null) killPid(c.pid);
    this.children.clear();
    sweepPrefix(this.prefix);
    rmSync(join(OWNER_DIR, `${this.prefix}.owner`), { force: true });
    liveLabs.delete(this);
  }

  // --- building blocks ---

  private checkName(name: string): void {
    if (this.destroyed) throw new Error("lab is destroyed");
    if (!NAME_RE.test(name)) throw new Error(`node name "${name}" must match ${NAME_RE}`);
    if (this.names.has(name)) throw new Error(`node name "${name}" is already used in this lab`);
    this.names.add(name);
  }

  private allocNet(): number {
    if (this.nextNet > 254) throw new Error("lab address plan exhausted (254 links)");
    return this.nextNet++;
  }

  private addNamespace(ns: string): void {
    execFileSync("ip", ["netns", "add", ns], { stdio: ["ignore", "ignore", "pipe"] });
    this.namespaces.push(ns);
    this.ip(ns, ["link", "set", "lo", "up"]);
  }

  /** A veth pair created directly inside both namespaces, so names only need to be unique per namespace. */
  private link(nsA: string, ifA: string, addrA: string | null, nsB: string, ifB: string, addrB: string | null): void {
    execFileSync("ip", ["link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB], { stdio: ["ignore", "ignore", "pipe"] });
    if (addrA) this.ip(nsA, ["addr", "add", addrA, "dev", ifA]);
    if (addrB) this.ip(nsB, ["addr", "add", addrB, "dev", ifB]);
    this.ip(nsA, ["link", "set", ifA, "up"]);
    this.ip(nsB, ["link", "set", ifB, "up"]);
  }

  private ip(ns: string, args: string[]): void {
    try {
      execFileSync("ip", ["-n", ns, ...args], { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
    } catch (e) {
      throw new Error(`ip -n ${ns} ${args.join(" ")}: ${String((e as { stderr?: string }).stderr ?? e).trim()}`);
    }
  }

  private sysctlForward(ns: string): void {
    execFileSync("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"], { stdio: ["ignore", "ignore", "pipe"] });
  }
}

function publicOf(n: Host | ServerHost | Router): string {
  return n.publicAddress;
}

let availability: { ok: true } | { ok: false; why: string } | undefined;

function probeAvailability(): { ok: true } | { ok: false; why: string } {
  if (process.platform !== "linux") return { ok: false, why: `needs Linux network namespaces (platform is ${process.platform})` };
  if (process.getuid?.() !== 0) return { ok: false, why: "needs root (network namespaces and nftables)" };
  try { execFileSync("ip", ["netns", "list"], { stdio: "pipe" }); } catch { return { ok: false, why: "`ip netns` is not available (install iproute2)" }; }
  try { execFileSync("nft", ["--version"], { stdio: "pipe" }); } catch { return { ok: false, why: "`nft` is not installed (Debian package nftables)" }; }
  // The kernel must allow namespaces and nf_tables NAT inside them.
  const probe = `nlprobe${process.pid.toString(36)}`;
  try {
    execFileSync("ip", ["netns", "add", probe], { stdio: "pipe" });
    execFileSync("ip", ["netns", "exec", probe, "nft", "-f", "-"], { stdio: "pipe", input: natRuleset("eim") });
    return { ok: true };
  } catch (e) {
    return { ok: false, why: `cannot create a namespace with nftables NAT: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}` };
  } finally {
    try { execFileSync("ip", ["netns", "del", probe], { stdio: "pipe" }); } catch { /* never created */ }
  }
}

function defaultPrefix(): string {
  // "n" + PID in base 36 (<= 5 chars) + per-process counter: parallel runs and labs never collide.
  return `n${process.pid.toString(36)}${(labCounter++ % 36).toString(36)}`;
}

function listNamespaces(): string[] {
  const out = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  return out.split("\n").map((l) => l.split(" ")[0]!).filter(Boolean);
}

/** Kills every process inside the prefix's namespaces (by PID) and deletes the namespaces. */
function sweepPrefix(prefix: string): string[] {
  const mine = listNamespaces().filter((n) => n.startsWith(`${prefix}-`));
  for (const ns of mine) {
    let pids: string[] = [];
    try { pids = execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).split("\n").filter(Boolean); } catch { /* gone */ }
    for (const p of pids) killPid(Number(p));
  }
  for (const ns of mine) {
    try { execFileSync("ip", ["netns", "del", ns], { stdio: "pipe" }); } catch { /* already gone */ }
    // A host's own resolver (nat64.ts), which `ip netns exec` mounts over /etc/resolv.conf.
    rmSync(join("/etc/netns", ns), { recursive: true, force: true });
  }
  return mine;
}

function killPid(pid: number): void {
  try { process.kill(pid, "SIGKILL"); } catch { /* already exited */ }
}

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === "EPERM"; }
}

function writeOwner(prefix: string): void {
  mkdirSync(OWNER_DIR, { recursive: true });
  writeFileSync(join(OWNER_DIR, `${prefix}.owner`), `${process.pid}\n`);
}

let hooksInstalled = false;
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", () => { for (const lab of [...liveLabs]) lab.destroySync(); });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = () => {
      for (const lab of [...liveLabs]) lab.destroySync();
      process.off(sig, onSignal);
      // Keep the default meaning of the signal unless someone else handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}
