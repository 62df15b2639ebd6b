// The node's application access: the peer directory names resolve against, the SOCKS5/HTTP proxy (opt-in:
// `proxy:` / --proxy, loopback only), forwards started by `ember forward`, and `ember resolve`. Flows go
// out through Flows.dial. Each piece lives in src/access; this file only wires it to the running node.
import {
  describeResolution, resolveAndDial, startForward, startProxy,
  type AccessProtocol, type Dialer, type Directory, type DirectoryPeer, type Forward, type ForwardRefusal, type ProxyServer, type Target,
} from "../access/index.js";
import type { ControlMethods } from "./control.js";
import type { Flows } from "./flows.js";
import type { NodeRuntime } from "./runtime.js";

/** The peer map (or the static peers) as the access layer sees it. */
export function runtimeDirectory(rt: NodeRuntime): Directory {
  const toEntry = (p: { name: string; tenant: string; services: DirectoryPeer["services"] }): DirectoryPeer => ({ name: p.name, tenant: p.tenant, services: p.services });
  return {
    get selfName() { return rt.identity().name; },
    get selfTenant() { return rt.identity().tenant; },
    *peers() { for (const p of rt.knownPeers()) yield toEntry(p); },
    peer(name) { const p = rt.knownPeer(name); return p && toEntry(p); },
  };
}

export class NodeAccess {
  readonly directory: Directory;
  readonly dialer: Dialer;
  private proxy?: ProxyServer;
  private readonly forwards = new Map<number, Forward>();

  constructor(private readonly rt: NodeRuntime, flows: Flows) {
    this.directory = runtimeDirectory(rt);
    this.dialer = { dial: (t: Target) => flows.dial(t) };
  }

  async startProxy(host: string, port: number): Promise<ProxyServer> {
    this.proxy = await startProxy({ host, port, dialer: this.dialer, directory: this.directory, log: this.rt.log.child({ layer: "proxy" }) });
    this.rt.log.info({ listen: `${this.proxy.host}:${this.proxy.port}` }, "proxy listening (SOCKS5 and HTTP CONNECT)");
    return this.proxy;
  }

  /** Dials a name as a client typed it (NAME, NAME.TENANT, SERVICE.NAME): the SDK's dial(). */
  dialName(host: string, port: number | undefined, protocol: AccessProtocol) {
    return resolveAndDial(host, port, protocol, this.directory, this.dialer);
  }

  async addForward(listenPort: number, host: string, port: number | undefined, protocol: AccessProtocol, onRefused?: (r: ForwardRefusal) => void): Promise<Forward> {
    const forward = await startForward({ listenPort, host, port, protocol, dialer: this.dialer, directory: this.directory, log: this.rt.log.child({ layer: "forward" }), onRefused });
    this.forwards.set(forward.port, forward);
    this.rt.log.info({ listen: forward.port, to: host, port, protocol }, "forward started");
    return forward;
  }

  /** Stops the forward on a port; with `only`, just that one (a later forward on the same port is not its to end). */
  async removeForward(localPort: number, why = "ember forward --remove", only?: Forward): Promise<boolean> {
    const f = this.forwards.get(localPort);
    if (!f || (only && f !== only)) return false;
    this.forwards.delete(localPort);
    await f.close();
    this.rt.log.info({ listen: localPort, why }, "forward stopped");
    return true;
  }

  report() {
    return {
      proxy: this.proxy?.stats(),
      forwards: [...this.forwards.values()].map((f) => f.stats()),
    };
  }

  registerMethods(methods: ControlMethods): void {
    methods.register("resolve", (p) => {
      const port = p.port === undefined ? undefined : Number(p.port);
      return describeResolution(String(p.name ?? ""), this.directory, { port, protocol: p.protocol === "udp" ? "udp" : "tcp" });
    });
    methods.register("forward", async (p, conn) => {
      const protocol: AccessProtocol = p.protocol === "udp" ? "udp" : "tcp";
      // Held (`ember forward` in the foreground): refusals go to the CLI, and the forward ends with its connection.
      const tell = p.hold ? (r: ForwardRefusal) => conn.notify({ event: "refused", ...r }) : undefined;
      const f = await this.addForward(Number(p.listenPort ?? 0), String(p.host ?? ""), p.port === undefined ? undefined : Number(p.port), protocol, tell);
      if (p.hold) conn.onClose(() => void this.removeForward(f.port, "its ember forward ended", f));
      return f.stats();
    });
    methods.register("unforward", async (p) => {
      const port = Number(p.listenPort);
      if (!(await this.removeForward(port))) throw new Error(`no forward on local port ${port} (forwards: ${[...this.forwards.keys()].join(", ") || "none"})`);
      return { stopped: port };
    });
    methods.register("access", () => this.report());
  }

  async close(): Promise<void> {
    await this.proxy?.close();
    await Promise.all([...this.forwards.values()].map((f) => f.close()));
    this.forwards.clear();
  }
}
