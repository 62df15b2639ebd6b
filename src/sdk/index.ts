// The EmberNet SDK: embed a node in a Node.js application (as OpenZiti's SDKs and Tailscale's tsnet do) and
// reach services by identity name with no proxy, no root and no open port. `dial` returns a net.Socket-like
// Duplex; `listen` returns a net.Server-like object whose connections carry the peer's verified identity.
//
//   import { EmberNode } from "embernet";
//   const node = await EmberNode.start({ stateDir: "./state" });        // enrolled before (ember up --enroll-only)
//   const sock = await node.dial("echo.node-b");                         // SERVICE.NAME, NAME:PORT, NAME.TENANT
//   node.listen("echo", { port: 7 }).on("connection", (s) => s.pipe(s)); // s.peer = { name, tenant, groups }
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import type { Duplex } from "node:stream";
import { enroll } from "../coord-client/client.js";
import { loadNodeConfig } from "../node/config.js";
import { Daemon } from "../node/daemon.js";
import { openStateDir } from "../node/state-version.js";
import type { AcceptedFlow, FlowPeer } from "../node/flows.js";
import type { KnownPeer } from "../node/runtime.js";
import { parseService } from "../node/services.js";

export type { FlowPeer, KnownPeer };
export { DialError } from "../access/index.js";

export interface EmberNodeOptions {
  /** Holds cert.pem, key.pem and bundle.pem (and the control socket, so `ember status --state` works). */
  stateDir: string;
  /** Coordination server URL; with `token` (and `name`) the node enrolls on its first start. */
  coord?: string;
  token?: string;
  name?: string;
  /** UDP listen address (default: any address, a free port). */
  listen?: string;
  /** Static peers, NAME=HOST:PORT (meshes without a coordination server). */
  peers?: string[];
  /** pino level for the node's own log (default "warn"), and where it goes (a file; default stderr). */
  logLevel?: string;
  logFile?: string;
  /** Path MTU of direct paths (default 1280). */
  mtu?: number;
  /** A policy file (the coordination server's format) for a mesh without a coordination server. */
  policyFile?: string;
}

/** A stream to or from a peer: a Duplex with the peer's verified identity. */
export type EmberSocket = Duplex & { peer: FlowPeer; service?: string; remotePort: number };

export interface ListenOptions {
  /** The port peers reach the service on (default 80); dialling SERVICE.NODE needs no port at all. */
  port?: number;
  protocol?: "tcp" | "https";
}

/** What listen() returns: "connection" events with an EmberSocket; close() withdraws the service. */
export class EmberServer extends EventEmitter {
  constructor(readonly service: string, readonly port: number, private readonly stop: () => void) {
    super();
  }

  address(): { service: string; port: number } {
    return { service: this.service, port: this.port };
  }

  close(cb?: () => void): this {
    this.stop();
    this.emit("close");
    cb?.();
    return this;
  }
}

export class EmberNode {
  private constructor(private readonly daemon: Daemon) {}

  static async start(opts: EmberNodeOptions): Promise<EmberNode> {
    const config = await loadNodeConfig({
      state: opts.stateDir, coord: opts.coord, listen: opts.listen ?? "0", peer: opts.peers ?? [],
      logLevel: opts.logLevel ?? "warn", mtu: opts.mtu === undefined ? undefined : String(opts.mtu), policy: opts.policyFile,
    });
    if (!existsSync(config.certPath)) {
      if (!opts.token || !opts.coord || !opts.name) {
        throw new Error(`${config.certPath} does not exist: enroll first (ember up --enroll-only) or give coord, token and name`);
      }
      await enroll({ coordUrl: opts.coord, token: opts.token, name: opts.name, stateDir: opts.stateDir });
    }
    // A state directory of the previous release is migrated in place, one of a newer release refused (a downgrade).
    openStateDir(config.stateDir);
    const daemon = new Daemon({ config, logDestination: opts.logFile });
    await daemon.start();
    return new EmberNode(daemon);
  }

  /** This node's identity name. */
  get name(): string {
    return this.daemon.name;
  }

  /** This node's identity (from its certificate). */
  identity(): FlowPeer & { spiffeId: string } {
    const id = this.daemon.identity();
    return { name: id.name, tenant: id.tenant, groups: id.groups, spiffeId: id.spiffeId };
  }

  /** Peers this node may reach or be reached by (from the peer map), with their services. */
  peers(): KnownPeer[] {
    return [...this.daemon.knownPeers()];
  }

  /**
   * Opens a stream by name: "NAME" with a port, "SERVICE.NAME" (the service's port), "NAME.TENANT".
   * Rejects with DialError (code: denied, unknown_name, refused, unreachable, timeout) naming the reason.
   */
  async dial(name: string, port?: number): Promise<EmberSocket> {
    const { target, stream } = await this.daemon.access.dialName(name, port, "tcp");
    const peer = this.daemon.knownPeer(target.peer)!;
    return Object.assign(stream, { peer: { name: peer.name, tenant: peer.tenant, groups: peer.groups }, service: target.service, remotePort: target.port });
  }

  /** Exposes a service on the mesh, served by this application: peers see it as SERVICE.NODE. */
  listen(service: string, opts: ListenOptions = {}): EmberServer {
    const port = opts.port ?? 80;
    const def = parseService({ name: service, to: `127.0.0.1:${port}`, protocol: opts.protocol ?? "tcp", port });
    let server!: EmberServer;
    const unlisten = this.daemon.flows.listen(service, (f: AcceptedFlow) => {
      server.emit("connection", Object.assign(f.stream, { peer: f.peer, service: f.service, remotePort: f.port }));
    });
    try {
      this.daemon.services.add({ ...def, to: undefined });
    } catch (err) {
      unlisten();
      throw err;
    }
    server = new EmberServer(service, def.port, () => { unlisten(); this.daemon.services.remove(service); });
    return server;
  }

  /** Waits until the named peer is in this node's map (or the timeout passes). */
  async waitForPeer(name: string, timeoutMs = 10_000): Promise<KnownPeer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = this.daemon.knownPeer(name);
      if (p) return p;
      if (Date.now() > deadline) throw new Error(`${name} did not appear in ${this.name}'s peer map within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async close(): Promise<void> {
    await this.daemon.stop();
  }
}
