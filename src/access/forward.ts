// `ember forward LOCAL_PORT NAME[:PORT][/udp]`: a local port for clients that speak neither SOCKS5 nor
// HTTP proxy. TCP: each accepted connection resolves the name, dials and is spliced to the flow; a
// refused dial resets the client (a clean close would look like an empty answer) and logs why, with
// the deciding rule the DialError carries. UDP: one local socket; each client address gets its own
// flow, and replies go back to that address; idle flows close, and the number of flows is bounded.
// The name is resolved for every new connection or flow, so a forward started before the peer map
// arrives (or before a peer joins) starts working when it does.
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { createServer, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Counters } from "./counters.js";
import { describeTarget, dialWithin, resolveAndDial } from "./dial.js";
import { bindFailure, checkListenHost, checkListenPort, DEFAULT_LISTEN_HOST } from "./listen.js";
import { DIAL_TIMEOUT_MS, MAX_CONNECTIONS, MAX_UDP_FLOWS, UDP_IDLE_MS } from "./limits.js";
import { parseName, resolveName, shown } from "./names.js";
import { splice } from "./splice.js";
import { dialFailure, DialError, type AccessLog, type AccessProtocol, type Dialer, type Directory } from "./types.js";
import type { DatagramFlow } from "./udp-flow.js";
import { UdpFlowTable } from "./udp-flow-table.js";

export class ForwardError extends Error {
  override name = "ForwardError";
}

export interface ForwardOptions {
  /** Local port (0: any free port, see Forward.port). */
  listenPort: number;
  /** The mesh name to reach (any form names.ts accepts) and its port (a service's own port wins). */
  host: string;
  port?: number;
  protocol: AccessProtocol;
  dialer: Dialer;
  directory: Directory;
  log: AccessLog;
  /** A client's connection or flow was refused (policy, unknown name, unreachable): told to `ember forward`. */
  onRefused?: (r: ForwardRefusal) => void;
  /** Loopback only unless allowNonLoopback. */
  listenHost?: string;
  allowNonLoopback?: boolean;
  /** TCP: concurrent client connections (more are closed at once and counted). */
  maxConnections?: number;
  /** UDP: concurrent client flows (datagrams from further clients are dropped and counted). */
  maxFlows?: number;
  idleMs?: number;
  dialTimeoutMs?: number;
}

const KEYS = [
  "accepted", "over_limit", "dialled", "resolve_failed",
  "denied", "unknown_name", "unreachable", "refused", "timeout", "bad_request", "failed",
  "udp_datagrams_in", "udp_datagrams_out", "udp_flows", "udp_flows_idle_closed",
  "udp_drop_flow_limit", "udp_drop_dial_failed", "udp_drop_dialling_backlog", "udp_drop_stream_backlog", "udp_drop_unframeable",
  "udp_drop_closed", "udp_framing_errors",
] as const;
export type ForwardCounter = typeof KEYS[number];

export interface ForwardStats {
  listen: string;
  to: string;
  protocol: AccessProtocol;
  /** TCP connections or UDP flows open now. */
  active: number;
  counters: Record<ForwardCounter, number>;
}

/** Why one client of a forward got nothing: the dial's code and reason (a denial names its rule). */
export interface ForwardRefusal { from: string; to: string; code: string; reason: string }

export interface Forward {
  /** The bound local port. */
  readonly port: number;
  stats(): ForwardStats;
  close(): Promise<void>;
}

/** Parses the CLI's `NAME[:PORT][/tcp|/udp]`; the name is checked for syntax, not resolved. */
export function parseForwardTarget(spec: string): { host: string; port?: number; protocol: AccessProtocol } {
  const m = /^([^:/\s]+)(?::([^/]*))?(?:\/(.*))?$/.exec(String(spec).trim());
  if (!m) throw new ForwardError(`bad forward target "${shown(spec)}": expected NAME[:PORT][/tcp|/udp], e.g. db-1:5432 or dns.db-1/udp`);
  const [, host, portText, protoText] = m;
  const name = parseName(host);
  if (!name.ok) throw new ForwardError(name.reason);
  let protocol: AccessProtocol = "tcp";
  if (protoText !== undefined) {
    const p = protoText.toLowerCase();
    if (p !== "tcp" && p !== "udp") throw new ForwardError(`bad forward target "${shown(spec)}": protocol "${shown(protoText)}" is not tcp or udp`);
    protocol = p;
  }
  if (portText === undefined) return { host, protocol };
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw new ForwardError(`bad forward target "${shown(spec)}": port "${shown(portText)}" is not 1-65535`);
  }
  return { host, port: Number(portText), protocol };
}

export async function startForward(opts: ForwardOptions): Promise<Forward> {
  const listenHost = opts.listenHost ?? DEFAULT_LISTEN_HOST;
  try {
    checkListenHost(listenHost, opts.allowNonLoopback);
    checkListenPort(opts.listenPort);
  } catch (err) {
    throw new ForwardError((err as Error).message);
  }
  const syntax = parseName(opts.host);
  if (!syntax.ok) throw new ForwardError(syntax.reason);
  // Resolve once now only to tell the operator early; each connection resolves again.
  const early = resolveName(opts.host, opts.port, opts.protocol, opts.directory);
  if (!early.ok && early.code === "bad_request") throw new ForwardError(early.reason);
  if (!early.ok) opts.log.warn({ to: opts.host, reason: early.reason }, "forward: the name does not resolve yet; each connection will try again");
  return opts.protocol === "udp" ? startUdp(opts, listenHost) : startTcp(opts, listenHost);
}

function describeTo(opts: ForwardOptions): string {
  return `${opts.host}${opts.port ? `:${opts.port}` : ""}/${opts.protocol}`;
}

async function startTcp(opts: ForwardOptions, listenHost: string): Promise<Forward> {
  const counters = new Counters(KEYS);
  const max = opts.maxConnections ?? MAX_CONNECTIONS;
  const clients = new Set<Socket>();
  const to = describeTo(opts);
  const server: Server = createServer({ pauseOnConnect: true, allowHalfOpen: true });
  server.on("connection", (client: Socket) => {
    client.on("error", () => { /* reported by splice, or the client is simply gone */ });
    if (clients.size >= max) {
      counters.inc("over_limit");
      client.destroy();
      return;
    }
    counters.inc("accepted");
    clients.add(client);
    client.once("close", () => clients.delete(client));
    const from = `${client.remoteAddress}:${client.remotePort}`;
    resolveAndDial(opts.host, opts.port, "tcp", opts.directory, opts.dialer, opts.dialTimeoutMs ?? DIAL_TIMEOUT_MS).then(({ target, stream }) => {
      counters.inc("dialled");
      if (client.destroyed) return void stream.destroy();
      opts.log.debug({ from, to: describeTarget(target) }, "forward: connected");
      splice(client, stream, (r) => {
        if (r.error) opts.log.debug({ from, to: describeTarget(target), err: r.error.message }, "forward: connection ended with an error");
      });
    }, (err: unknown) => {
      const f = dialFailure(err);
      counters.inc(f.code);
      opts.log.warn({ from, to, code: f.code, reason: f.reason }, "forward: dial refused, closing the client");
      opts.onRefused?.({ from, to, code: f.code, reason: f.reason });
      client.resetAndDestroy();
    });
  });
  const port = await listen(server, listenHost, opts.listenPort);
  opts.log.info({ listen: `${listenHost}:${port}`, to }, "forward: listening");
  return {
    port,
    stats: () => ({ listen: `${listenHost}:${port}`, to, protocol: "tcp", active: clients.size, counters: counters.snapshot() }),
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const c of clients) c.destroy();
    }),
  };
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => reject(new ForwardError(bindFailure(err, host, port).message)));
    server.listen(port, host, () => {
      const addr = server.address();
      resolve(typeof addr === "object" && addr ? addr.port : port);
    });
  });
}

async function startUdp(opts: ForwardOptions, listenHost: string): Promise<Forward> {
  const counters = new Counters(KEYS);
  const to = describeTo(opts);
  const sock: UdpSocket = createSocket({ type: listenHost.includes(":") ? "udp6" : "udp4" });
  sock.on("error", (err) => opts.log.debug({ err: err.message }, "forward: udp socket error"));
  // One destination for every client: a refused dial holds them all for a while.
  const table = new UdpFlowTable({
    max: opts.maxFlows ?? MAX_UDP_FLOWS, idleMs: opts.idleMs ?? UDP_IDLE_MS, counters, log: opts.log, prefix: "forward", holdAll: true,
    fields: (key) => ({ from: key, to }),
    onRefused: (key, _to, code, reason) => opts.onRefused?.({ from: key, to, code, reason }),
  });

  const openFlow = (key: string, from: RemoteInfo): DatagramFlow | null => table.open(key, () => {
    const r = resolveName(opts.host, opts.port, "udp", opts.directory);
    let stream: Promise<Duplex>;
    if (!r.ok) {
      counters.inc("resolve_failed");
      stream = Promise.reject(new DialError(r.code, r.reason));
    } else {
      stream = dialWithin(opts.dialer, r.target, opts.dialTimeoutMs ?? DIAL_TIMEOUT_MS);
      stream.then(() => counters.inc("dialled"), () => undefined);
    }
    return { stream, to };
  }, (payload, done) => sock.send(payload, from.port, from.address, () => done()));

  sock.on("message", (msg, from) => {
    counters.inc("udp_datagrams_in");
    const key = `${from.address}:${from.port}`;
    const flow = table.get(key) ?? openFlow(key, from);
    flow?.send(msg);
  });

  const port = await new Promise<number>((resolve, reject) => {
    sock.once("error", (err: NodeJS.ErrnoException) => reject(new ForwardError(bindFailure(err, listenHost, opts.listenPort).message)));
    sock.bind(opts.listenPort, listenHost, () => resolve(sock.address().port));
  });
  opts.log.info({ listen: `${listenHost}:${port}/udp`, to }, "forward: listening");
  return {
    port,
    stats: () => ({ listen: `${listenHost}:${port}`, to, protocol: "udp", active: table.size, counters: counters.snapshot() }),
    close: () => new Promise<void>((resolve) => {
      table.closeAll();
      sock.close(() => resolve());
    }),
  };
}
