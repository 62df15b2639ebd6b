// The local mesh of `ember demo`: real processes on loopback (coordination server with SQLite, a relay,
// three nodes that enroll with one-time tokens), driven through the same CLI and APIs an operator uses.
import { spawn, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { createWriteStream, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { EMBER_BIN } from "../package-root.js";
import { AdminClient } from "../coord/admin-client.js";
import { controlRequest } from "../node/control-socket.js";
import { generateEd25519, initCa, issueLeaf, privateKeyToPem, toPem, withIntermediates, type CaMaterial } from "../pki/index.js";

const EMBER = EMBER_BIN;

export interface DemoNode { name: string; groups: string[]; dir: string; socket: string; proc?: ChildProcess }

export class LocalMesh {
  readonly procs: ChildProcess[] = [];
  ca!: CaMaterial;
  coordUrl = "";
  adminFlags!: { cert: string; key: string; ca: string };

  /** host: the loopback address every process listens on ("127.0.0.1", or "::1" for a mesh on IPv6 alone). */
  constructor(readonly dir: string, readonly log: (line: string) => void, readonly host = "127.0.0.1") {}

  /** HOST:PORT on this mesh's loopback address ([::1]:PORT on IPv6). */
  at(port: number): string {
    return this.host.includes(":") ? `[${this.host}]:${port}` : `${this.host}:${port}`;
  }

  async init(trustDomain: string): Promise<void> {
    this.ca = await initCa(join(this.dir, "ca"), trustDomain);
    this.adminFlags = this.writeLeaf("admin", await this.leaf("ops-admin", "ops", [], ["admin"]));
  }

  private async leaf(name: string, tenant: string, groups: string[], roles: string[]) {
    const keys = generateEd25519();
    const der = await issueLeaf(this.ca, { name, tenant, groups, roles, ttlMs: 3_600_000, publicKey: keys.publicKey });
    return { cert: withIntermediates(toPem(der, "CERTIFICATE"), this.ca.bundlePem), key: privateKeyToPem(keys.privateKey) };
  }

  private writeLeaf(prefix: string, l: { cert: string; key: string }) {
    const cert = join(this.dir, `${prefix}.crt`), key = join(this.dir, `${prefix}.key`);
    writeFileSync(cert, l.cert);
    writeFileSync(key, l.key, { mode: 0o600 });
    return { cert, key, ca: join(this.ca.dir, "bundle.pem") };
  }

  /** Starts a child `ember ...` and resolves with the first stdout line matching `ready`; its log goes to DIR/LABEL.log. */
  start(label: string, args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<{ proc: ChildProcess; line: string }> {
    const proc = spawn(process.execPath, [EMBER, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    this.procs.push(proc);
    proc.stderr!.pipe(createWriteStream(join(this.dir, `${label.replace(/[^a-z0-9-]/gi, "_")}.log`), { flags: "a" }));
    const tail: string[] = [];
    createInterface({ input: proc.stderr! }).on("line", (l) => { tail.push(l); if (tail.length > 40) tail.shift(); });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${label} did not start within 30 s:\n${tail.join("\n")}`)), 30_000);
      createInterface({ input: proc.stdout! }).on("line", (l) => {
        if (ready.test(l)) { clearTimeout(timer); resolve({ proc, line: l }); }
      });
      proc.once("exit", (code) => { clearTimeout(timer); reject(new Error(`${label} exited with ${code}:\n${tail.join("\n")}`)); });
    });
  }

  async startRelay(name: string): Promise<{ port: number; stunPort: number; certFlags: { cert: string; key: string; ca: string } }> {
    const [port, stunPort] = [await freeTcpPort(), await freeUdpPort()];
    const certFlags = this.writeLeaf(name, await this.leaf(name, "infra", [], ["relay"]));
    return { port, stunPort, certFlags };
  }

  private coordArgs: string[] = [];

  async startCoord(relays: { name: string; port: number; stunPort: number }[]): Promise<void> {
    const port = await freeTcpPort();
    this.coordArgs = ["coord", "--data", join(this.dir, "coord-data"), "--ca-dir", this.ca.dir, "--listen", this.at(port)];
    for (const r of relays) this.coordArgs.push("--relay", `${r.name}=${this.at(r.port)}:${r.stunPort}`);
    const { line } = await this.start("coordination server", this.coordArgs, /coordination server https:\/\//);
    this.coordUrl = /(https:\/\/\S+)/.exec(line)![1];
  }

  /** The same server again, on the same data directory and port (after a crash). */
  async startCoordAgain(): Promise<void> {
    await this.start("coordination server", this.coordArgs, /coordination server https:\/\//);
  }

  admin(): AdminClient {
    return new AdminClient({ ...this.adminFlags, coord: this.coordUrl }, {});
  }

  /** A one-time token for a node of this tenant and these groups. */
  async token(tenant: string, groups: string[]): Promise<string> {
    return (await this.admin().createToken({ tenant, groups, roles: [], ttlMs: 600_000, uses: 1 })).token;
  }

  async startNode(n: DemoNode, tenant: string, extraArgs: string[] = []): Promise<void> {
    const token = await this.token(tenant, n.groups);
    const { proc } = await this.start(n.name, ["up", "--coord", this.coordUrl, "--token", token, "--name", n.name, "--state", n.dir, "--listen", this.at(0), ...extraArgs], /"event":"up"/);
    n.proc = proc;
  }

  request<T = any>(n: DemoNode, method: string, params: Record<string, unknown> = {}): Promise<T> {
    return controlRequest<T>(n.socket, method, params);
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => new Promise<void>((res) => {
      if (p.exitCode !== null || p.signalCode !== null) return res();
      const t = setTimeout(() => p.kill("SIGKILL"), 5_000);
      p.once("exit", () => { clearTimeout(t); res(); });
      p.kill("SIGTERM");
    })));
  }
}

export function freeTcpPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

export function freeUdpPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createSocket("udp4");
    s.bind(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}
