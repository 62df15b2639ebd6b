// EmberNet in the NAT lab: a coordination server and two relays (each answering STUN) on "internet"
// server hosts, nodes on hosts behind the lab's routers. Every process is a real `ember` child in its
// namespace; control sockets are files, so the test talks to each node from the root namespace.
import type { ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { controlRequest } from "../../src/node/control-socket.js";
import { generateEd25519, initCa, issueLeaf, privateKeyToPem, toPem, withIntermediates, type CaMaterial } from "../../src/pki/index.js";
import { EMBER } from "../helpers/cli.js";
import type { Host, Lab, Node, ServerHost } from "./lab.js";

export const TENANT = "lab";
const ALLOW_ALL = "version: 1\nrules:\n  - allow: {source: \"*\", target: \"*\"}\n";

/** startedAt: when its process was spawned; upAt: when it reported up (enrolled, listening). */
export interface LabNode { name: string; host: Host; dir: string; socket: string; proc: ChildProcess; startedAt: number; upAt: number }

const LOG_TAIL_LINES = 200;

export class EmberLab {
  ca!: CaMaterial;
  coordHost!: ServerHost;
  relayHosts: ServerHost[] = [];
  coordUrl = "";
  /**
   * `ember up --listen` of every node: IPv4 only by default; ":0" opens IPv4 and IPv6 sockets on one port (the
   * product's default), for the lab's IPv6 sites (ipv6.ts).
   */
  nodeListen = "0.0.0.0:0";
  private admin!: { cert: string; key: string; ca: string };
  readonly nodes = new Map<string, LabNode>();
  /** Relay processes by name (relay-1, relay-2, ...): a test may kill one (killRelay). */
  readonly relays = new Map<string, ChildProcess>();
  /**
   * The `ember` entry point the coordination server, the relays and the admin verbs run: another checkout's
   * bin/ember.mjs makes a mixed-version mesh (test/release/mixed-version.test.ts); nodes take theirs from nodeBin.
   */
  bin = { coord: EMBER, relay: EMBER, admin: EMBER };
  /** Nodes (by name) that run another checkout's bin/ember.mjs; the others run this tree's. */
  readonly nodeBin = new Map<string, string>();
  /** The last LOG_TAIL_LINES log lines of every daemon, by label, for diagnose(). */
  private readonly logTails = new Map<string, string[]>();

  constructor(readonly lab: Lab, readonly dir: string) {}

  private async writeLeaf(prefix: string, name: string, tenant: string, roles: string[]) {
    const keys = generateEd25519();
    const der = await issueLeaf(this.ca, { name, tenant, roles, ttlMs: 3_600_000, publicKey: keys.publicKey });
    const cert = join(this.dir, `${prefix}.crt`), key = join(this.dir, `${prefix}.key`);
    writeFileSync(cert, withIntermediates(toPem(der, "CERTIFICATE"), this.ca.bundlePem));
    writeFileSync(key, privateKeyToPem(keys.privateKey), { mode: 0o600 });
    return { cert, key, ca: join(this.ca.dir, "bundle.pem") };
  }

  /** Waits for a line on the child's stdout; fails with its stderr tail when it exits first. */
  private started(label: string, child: ChildProcess, ready: RegExp, timeoutMs = 30_000): Promise<string> {
    const tail: string[] = [];
    const longTail: string[] = [];
    this.logTails.set(label, longTail);
    // NATLAB_LOGS=DIR keeps every daemon's whole log there (DIR/NAME.log), for diagnosing a lab run.
    const keep = process.env.NATLAB_LOGS ? join(process.env.NATLAB_LOGS, `${label}.log`) : undefined;
    createInterface({ input: child.stderr! }).on("line", (l) => {
      tail.push(l);
      if (tail.length > 30) tail.shift();
      longTail.push(l);
      if (longTail.length > LOG_TAIL_LINES) longTail.shift();
      if (keep) appendFileSync(keep, l + "\n");
    });
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${label} did not start:\n${tail.join("\n")}`)), timeoutMs);
      createInterface({ input: child.stdout! }).on("line", (l) => { if (ready.test(l)) { clearTimeout(t); resolve(l); } });
      child.once("exit", (code) => { clearTimeout(t); reject(new Error(`${label} exited ${code}:\n${tail.join("\n")}`)); });
    });
  }

  /**
   * Coordination server and relays (two by default, each answering STUN), then an allow-all policy. With
   * `dualStack`, each listens on both address families (no host in its flags), for hosts given IPv6 (ipv6.ts);
   * `relayHost` is the host the peer map names for a relay (an address, or a name the nodes resolve).
   */
  async startServices(opts: { relays?: number; relayArgs?: string[]; dualStack?: boolean; relayHost?: (h: ServerHost, name: string) => string } = {}): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    this.ca = await initCa(join(this.dir, "ca"), "lab.embernet");
    this.admin = await this.writeLeaf("admin", "ops-admin", "ops", ["admin"]);
    this.coordHost = await this.lab.addServerHost("co");
    this.relayHosts = [];
    for (let i = 1; i <= (opts.relays ?? 2); i++) this.relayHosts.push(await this.lab.addServerHost(`r${i}`));
    const on = (h: ServerHost, port: number) => (opts.dualStack ? `:${port}` : `${h.address}:${port}`);
    const coordArgs = [process.execPath, this.bin.coord, "coord", "--data", join(this.dir, "coord"), "--ca-dir", this.ca.dir, "--listen", opts.dualStack ? "[::]:443" : on(this.coordHost, 443)];
    this.relayHosts.forEach((h, i) => coordArgs.push("--relay", `relay-${i + 1}=${opts.relayHost?.(h, `relay-${i + 1}`) ?? h.address}:443:3478`));
    const coord = this.lab.spawn(this.coordHost, coordArgs);
    await this.started("coordination server", coord, /coordination server https:\/\//);
    this.coordUrl = `https://${this.coordHost.address}:443`;
    for (const [i, h] of this.relayHosts.entries()) {
      const name = `relay-${i + 1}`;
      const f = await this.writeLeaf(name, name, "infra", ["relay"]);
      const relay = this.lab.spawn(h, [process.execPath, this.bin.relay, "relay", "--name", name, "--listen", on(h, 443), "--stun", on(h, 3478),
        "--cert", f.cert, "--key", f.key, "--ca", f.ca, "--coord", this.coordUrl, ...(opts.relayArgs ?? [])]);
      await this.started(name, relay, /relay_listening/);
      this.relays.set(name, relay);
    }
    await this.setPolicy(ALLOW_ALL);
  }

  /** The admin connection flags, for `ember` verbs a test runs itself. */
  adminFlags(): string[] {
    return this.adminArgs();
  }

  private adminArgs(): string[] {
    return ["--coord", this.coordUrl, "--cert", this.admin.cert, "--key", this.admin.key, "--ca", this.admin.ca];
  }

  async setPolicy(text: string): Promise<void> {
    const f = join(this.dir, `policy-${Date.now()}.yaml`);
    writeFileSync(f, text);
    const r = await this.lab.run(this.coordHost, [process.execPath, this.bin.admin, "policy", "set", f, ...this.adminArgs()], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`policy set failed (${r.code}): ${r.stderr.trim()}`);
  }

  /** A one-time token from `ember token create` run in the coordination server's namespace (retried: CI machines are busy). */
  async token(groups: string[] = [], roles: string[] = []): Promise<string> {
    let last = "";
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = await this.lab.run(this.coordHost, [process.execPath, this.bin.admin, "token", "create", "--tenant", TENANT,
        ...(groups.length ? ["--groups", groups.join(",")] : []), ...(roles.length ? ["--roles", roles.join(",")] : []), "--json", ...this.adminArgs()], { timeoutMs: 60_000 });
      if (r.code === 0) return JSON.parse(r.stdout).token;
      last = `exit ${r.code}: ${r.stderr.trim()}`;
    }
    throw new Error(`token create failed three times: ${last}`);
  }

  /**
   * Starts `ember up` in the host's namespace; a token made beforehand lets several nodes start at one instant.
   * `coordUrl` replaces the lab's for this node (a name its resolver knows, an IPv6 literal). A node started again
   * under its name keeps its state directory (enrolled: the token is not used); it runs nodeBin's entry for its name.
   */
  async startNode(name: string, host: Host, env: NodeJS.ProcessEnv = {}, extraArgs: string[] = [], token?: string, coordUrl = this.coordUrl): Promise<LabNode> {
    const dir = join(this.dir, name);
    token ??= await this.token();
    const child = this.lab.spawn(host as Node, [process.execPath, this.nodeBin.get(name) ?? EMBER, "up", "--coord", coordUrl, "--token", token, "--name", name,
      "--state", dir, "--listen", this.nodeListen, "--log-level", "debug", ...extraArgs], { env: { ...process.env, ...env } });
    const startedAt = Date.now();
    await this.started(name, child, /"event":"up"/);
    const n: LabNode = { name, host, dir, socket: join(dir, "ember.sock"), proc: child, startedAt, upAt: Date.now() };
    this.nodes.set(name, n);
    return n;
  }

  request<T = any>(n: LabNode, method: string, params: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<T> {
    return controlRequest<T>(n.socket, method, params, timeoutMs);
  }

  /** Pings until the first pong: the time to the first encrypted round trip, from the later node's start. */
  async firstPong(a: LabNode, b: LabNode, timeoutMs = 30_000): Promise<number> {
    const t0 = Math.max(a.startedAt, b.startedAt);
    const end = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < end) {
      try {
        await this.request(a, "ping", { name: b.name, timeoutMs: 1_000 }, 3_000);
        return Date.now() - t0;
      } catch (err) { last = (err as Error).message; }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${a.name} never reached ${b.name}: ${last}`);
  }

  async path(a: LabNode, b: LabNode): Promise<string> {
    const peers = await this.request<any[]>(a, "peers");
    return peers.find((p) => p.name === b.name)?.path ?? "-";
  }

  /** Polls until a's path to b satisfies want, or the time runs out; returns the last path seen. */
  async waitPath(a: LabNode, b: LabNode, want: (p: string) => boolean, timeoutMs: number): Promise<{ path: string; ms: number }> {
    const t0 = Date.now();
    let p = "-";
    while (Date.now() - t0 < timeoutMs) {
      p = await this.path(a, b).catch(() => "-");
      if (want(p)) return { path: p, ms: Date.now() - t0 };
      await new Promise((r) => setTimeout(r, 200));
    }
    return { path: p, ms: Date.now() - t0 };
  }

  /**
   * Like waitPath, with a ping from a to b before each look: a cut path is noticed only when something is sent
   * over it (a pair at rest keeps its last path until data moves, docs/nat.md "At rest").
   */
  async waitPathPinging(a: LabNode, b: LabNode, want: (p: string) => boolean, timeoutMs: number): Promise<{ path: string; ms: number }> {
    const t0 = Date.now();
    let p = "-";
    while (Date.now() - t0 < timeoutMs) {
      await this.request(a, "ping", { name: b.name, timeoutMs: 500 }, 2_000).catch(() => undefined);
      p = await this.path(a, b).catch(() => "-");
      if (want(p)) return { path: p, ms: Date.now() - t0 };
      await new Promise((r) => setTimeout(r, 200));
    }
    return { path: p, ms: Date.now() - t0 };
  }

  /**
   * What the nodes know, for a failure message: each node's peers with their transport counters (`ember peers
   * --json`) and the tail of its log. A transfer that stalls says where it stalled.
   */
  async diagnose(nodes: LabNode[], logLines = 60): Promise<string> {
    const out: string[] = [];
    for (const n of nodes) {
      const peers = await this.request(n, "peers", {}, 5_000).then((p) => JSON.stringify(p, null, 1), (e) => `(peers: ${(e as Error).message})`);
      out.push(`--- ${n.name}: ember peers --json\n${peers}`);
      const st = await this.request<any>(n, "status", {}, 5_000).then((s) => JSON.stringify({ flows: s.flows, drops: s.drops, problems: s.problems }, null, 1),
        (e) => `(status: ${(e as Error).message})`);
      out.push(`--- ${n.name}: stream layer and drops (ember status --json)\n${st}`);
      out.push(`--- ${n.name}: last ${logLines} log lines\n${(this.logTails.get(n.name) ?? []).slice(-logLines).join("\n")}`);
    }
    return out.join("\n");
  }

  /** Runs fn; a failure carries diagnose(nodes) in its message. */
  async diagnosed<T>(nodes: LabNode[], fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const e = err as Error;
      e.message = `${e.message}\n${await this.diagnose(nodes)}`;
      throw e;
    }
  }

  /** Kills a relay process with SIGKILL (a crash: no shutdown frame); resolves once it has exited. */
  async killRelay(name: string): Promise<void> {
    const p = this.relays.get(name);
    if (!p) throw new Error(`no relay ${name}`);
    await new Promise<void>((res) => {
      if (p.exitCode !== null || p.signalCode !== null) return res();
      p.once("exit", () => res());
      p.kill("SIGKILL");
    });
    this.relays.delete(name);
  }

  async stopNode(n: LabNode): Promise<void> {
    await new Promise<void>((res) => {
      if (n.proc.exitCode !== null || n.proc.signalCode !== null) return res();
      n.proc.once("exit", () => res());
      n.proc.kill("SIGTERM");
    });
    this.nodes.delete(n.name);
  }
}
