// A fake mesh for the access tests: a Directory of a few peers in three tenants, a Dialer that carries
// flows to real local servers (through an in-memory stream pair and connectService) or refuses them
// with a DialError, and the servers themselves.
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer as createHttpServer } from "node:http";
import { createServer, type AddressInfo } from "node:net";
import { Duplex } from "node:stream";
import { connectService, type ServiceConnection } from "../../src/access/service-connector.js";
import { DialError, type AccessLog, type AccessProtocol, type Dialer, type Directory, type DirectoryPeer, type Target } from "../../src/access/types.js";

export function directory(selfName: string, selfTenant: string, peers: DirectoryPeer[]): Directory {
  return {
    selfName, selfTenant,
    peers: () => peers,
    peer: (name) => peers.find((p) => p.name === name),
  };
}

/** laptop-1 in tenant acme sees these peers. */
export const PEERS: DirectoryPeer[] = [
  { name: "node-a", tenant: "acme", services: [
    { name: "web", port: 8080, protocol: "tcp" }, { name: "echo", port: 7, protocol: "udp" }, { name: "api", port: 443, protocol: "https" },
  ] },
  { name: "node-a", tenant: "globex", services: [{ name: "web", port: 9090, protocol: "tcp" }] },
  { name: "db-1", tenant: "acme", services: [{ name: "postgres", port: 5432, protocol: "tcp" }] },
  { name: "vault", tenant: "acme", services: [{ name: "kv", port: 8200, protocol: "tcp" }] },
  { name: "lonely", tenant: "acme", services: [] },
  { name: "only-g", tenant: "globex", services: [{ name: "ssh", port: 22, protocol: "tcp" }] },
  { name: "shared-1", tenant: "globex", services: [] },
  { name: "shared-1", tenant: "initech", services: [] },
  // "web.node-a" also reads as peer web in tenant node-a: the NAME.TENANT reading wins.
  { name: "web", tenant: "node-b", services: [] },
  { name: "node-b", tenant: "acme", services: [{ name: "web", port: 80, protocol: "tcp" }] },
];

export const DIR = directory("laptop-1", "acme", PEERS);

// ---- The dialer: flows to real local servers through an in-memory stream pair and connectService. ----


/** One end of an in-memory byte pipe with back-pressure and half-close, standing in for a mesh stream. */
class PairEnd extends Duplex {
  peer!: PairEnd;
  private unblock: ((err?: Error | null) => void) | null = null;
  constructor() { super({ allowHalfOpen: true, highWaterMark: 64 * 1024 }); }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.peer.push(chunk)) cb();
    else this.peer.unblock = cb;
  }
  override _read(): void {
    const cb = this.unblock;
    this.unblock = null;
    cb?.();
  }
  override _final(cb: (err?: Error | null) => void): void {
    this.peer.push(null);
    cb();
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // A reset: the far end learns of it, with the reason when there is one.
    if (!this.peer.destroyed) this.peer.destroy(err ?? undefined);
    const pending = this.peer.unblock;
    this.peer.unblock = null;
    pending?.(new Error("peer destroyed"));
    cb(err);
  }
}

export function streamPair(): [Duplex, Duplex] {
  const a = new PairEnd();
  const b = new PairEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

export type Route =
  | { kind: "local"; port: number }
  | { kind: "reject"; error: DialError }
  | { kind: "hang" }
  /** Answers like `local`, but only after `ms`: a client can give up while the dial is in flight. */
  | { kind: "delay"; ms: number; port: number }
  /** A flow the far side resets as soon as it is open. */
  | { kind: "reset" };

/** A Dialer over a pretend mesh: each route reaches a real server on 127.0.0.1 through connectService. */
export class FakeMesh implements Dialer {
  readonly dials: Target[] = [];
  readonly services: ServiceConnection[] = [];
  private readonly routes = new Map<string, Route>();

  constructor(readonly log: AccessLog = memoryLog()) {}

  route(peer: string, tenant: string, port: number, protocol: AccessProtocol, route: Route): this {
    this.routes.set(`${peer}.${tenant}:${port}/${protocol}`, route);
    return this;
  }

  async dial(t: Target): Promise<Duplex> {
    this.dials.push({ ...t });
    const r = this.routes.get(`${t.peer}.${t.tenant}:${t.port}/${t.protocol}`);
    if (!r) throw new DialError("refused", `${t.peer} refused ${t.port}/${t.protocol}: no service there`);
    if (r.kind === "reject") throw r.error;
    if (r.kind === "hang") return new Promise<Duplex>(() => undefined);
    if (r.kind === "delay") await new Promise((res) => setTimeout(res, r.ms));
    if (r.kind === "reset") {
      const [near, far] = streamPair();
      far.on("error", () => undefined);
      // A reset arrives as a packet does: on a later turn of the event loop than the dial's answer.
      setImmediate(() => far.destroy(new Error("flow reset by peer")));
      return near;
    }
    const [near, far] = streamPair();
    this.services.push(connectService(far, { host: "127.0.0.1", port: r.port }, t.protocol, this.log));
    return near;
  }
}

export interface LogEntry { level: "info" | "warn" | "debug"; obj: Record<string, unknown>; msg?: string }
export type MemoryLog = AccessLog & { entries: LogEntry[]; text(): string };

export function memoryLog(): MemoryLog {
  const entries: LogEntry[] = [];
  const at = (level: LogEntry["level"]) => (obj: object, msg?: string) => { entries.push({ level, obj: obj as Record<string, unknown>, msg }); };
  return { entries, info: at("info"), warn: at("warn"), debug: at("debug"), text: () => entries.map((e) => `${e.level} ${e.msg ?? ""} ${JSON.stringify(e.obj)}`).join("\n") };
}

// ---- Real servers on 127.0.0.1 ----

export interface Running { port: number; close(): Promise<void> }

export async function tcpEcho(): Promise<Running> {
  const open = new Set<import("node:net").Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    open.add(s);
    s.on("close", () => open.delete(s));
    s.on("error", () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((r) => { server.close(() => r()); for (const s of open) s.destroy(); }),
  };
}

/** Echoes each datagram back, prefixed "echo:". */
export async function udpEcho(): Promise<Running> {
  const sock = createSocket("udp4");
  sock.on("message", (msg, from) => sock.send(Buffer.concat([Buffer.from("echo:"), msg]), from.port, from.address));
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
  return { port: sock.address().port, close: () => new Promise((r) => sock.close(() => r())) };
}

/** Answers every request with "hello from NAME: METHOD PATH" and reports the request head it saw. */
export async function httpServer(name: string): Promise<Running & { heads: { method: string; url: string; headers: Record<string, unknown> }[] }> {
  const heads: { method: string; url: string; headers: Record<string, unknown> }[] = [];
  const server = createHttpServer((req, res) => {
    heads.push({ method: req.method ?? "", url: req.url ?? "", headers: { ...req.headers } });
    let body = 0;
    req.on("data", (c: Buffer) => { body += c.length; });
    req.on("end", () => res.end(`hello from ${name}: ${req.method} ${req.url}${body ? ` (${body} bytes)` : ""}\n`));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    heads,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((r) => { server.close(() => r()); server.closeAllConnections(); }),
  };
}

export type UdpClient = UdpSocket & { ask(port: number, msg: string | Buffer, timeoutMs?: number): Promise<string | null> };

/** A UDP socket on 127.0.0.1 that sends one datagram and waits for one answer (null on timeout). */
export async function udpClient(): Promise<UdpClient> {
  const sock = createSocket("udp4") as UdpClient;
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
  sock.ask = (port, msg, timeoutMs = 2000) => new Promise((resolve) => {
    const t = setTimeout(() => { sock.off("message", on); resolve(null); }, timeoutMs);
    const on = (m: Buffer) => { clearTimeout(t); sock.off("message", on); resolve(m.toString()); };
    sock.on("message", on);
    sock.send(msg, port, "127.0.0.1");
  });
  return sock;
}
