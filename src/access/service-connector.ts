// The receiving side of a flow: a stream the mesh accepted (policy already allowed it) is joined to
// the local service it names. TCP: a connection to the service, spliced both ways with
// back-pressure; if the service cannot be reached the stream is destroyed with an error naming the
// service and why, which the stream layer passes back to the dialer. UDP: a socket connected to the
// service; framed datagrams from the stream go out, replies come back framed; idle flows close.
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, isIPv6 } from "node:net";
import type { Duplex } from "node:stream";
import { LOCAL_CONNECT_TIMEOUT_MS, UDP_IDLE_MS } from "./limits.js";
import { splice } from "./splice.js";
import { DatagramFlow } from "./udp-flow.js";
import type { AccessLog, AccessProtocol } from "./types.js";

export interface ServiceResult {
  /** Bytes (tcp) or datagrams (udp) delivered to the local service, and back onto the stream. */
  toService: number;
  fromService: number;
  /** Why the connection ended abnormally, if it did (local connect failure, reset, framing error). */
  error?: string;
}

export interface ServiceConnection {
  /** Settles (never rejects) when both sides are closed. */
  done: Promise<ServiceResult>;
  close(): void;
}

export interface ServiceOptions {
  idleMs?: number;
  connectTimeoutMs?: number;
  /**
   * The local side is ready (TCP connected, UDP socket bound): the mesh may accept the flow now. With this
   * set, a local failure before that calls onFail instead of destroying the stream, so the caller can refuse
   * the open with the reason (the client then hears "refused", not a reset after success).
   */
  onReady?: () => void;
  onFail?: (reason: string) => void;
}

export function connectService(stream: Duplex, local: { host: string; port: number }, protocol: AccessProtocol, log: AccessLog,
  opts: ServiceOptions = {}): ServiceConnection {
  return protocol === "udp" ? connectUdp(stream, local, log, opts) : connectTcp(stream, local, log, opts);
}

function connectTcp(stream: Duplex, local: { host: string; port: number }, log: AccessLog, opts: ServiceOptions): ServiceConnection {
  const where = `${local.host}:${local.port}`;
  const sock = connect({ host: local.host, port: local.port, allowHalfOpen: true });
  let resolve!: (r: ServiceResult) => void;
  const done = new Promise<ServiceResult>((r) => { resolve = r; });
  let connected = false;
  const timer = setTimeout(() => fail(`local service ${where} did not answer within ${opts.connectTimeoutMs ?? LOCAL_CONNECT_TIMEOUT_MS} ms`),
    opts.connectTimeoutMs ?? LOCAL_CONNECT_TIMEOUT_MS);

  function fail(reason: string): void {
    if (connected) return;
    connected = true; // settled
    clearTimeout(timer);
    sock.destroy();
    log.warn({ service: where, reason }, "service: local connect failed");
    if (opts.onFail) opts.onFail(reason); else stream.destroy(new Error(reason));
    resolve({ toService: 0, fromService: 0, error: reason });
  }
  const earlyClose = () => {
    if (connected) return;
    connected = true;
    clearTimeout(timer);
    sock.destroy();
    resolve({ toService: 0, fromService: 0, error: "the flow closed before the local service answered" });
  };
  stream.once("close", earlyClose);
  stream.on("error", () => { /* reported through splice or earlyClose */ });
  sock.once("error", (err: NodeJS.ErrnoException) => fail(`local service ${where} unreachable: ${err.code ?? err.message}`));
  sock.once("connect", () => {
    if (connected) return;
    connected = true;
    clearTimeout(timer);
    stream.off("close", earlyClose);
    opts.onReady?.();
    splice(stream, sock, (r) => {
      if (r.error) log.debug({ service: where, err: r.error.message }, "service: flow ended with an error");
      resolve({ toService: r.aToB, fromService: r.bToA, ...(r.error ? { error: r.error.message } : {}) });
    });
  });
  return { done, close: () => { sock.destroy(); stream.destroy(); } };
}

function connectUdp(stream: Duplex, local: { host: string; port: number }, log: AccessLog, opts: ServiceOptions): ServiceConnection {
  const where = `${local.host}:${local.port}`;
  const sock: UdpSocket = createSocket(isIPv6(local.host) ? "udp6" : "udp4");
  const result: ServiceResult = { toService: 0, fromService: 0 };
  let resolve!: (r: ServiceResult) => void;
  const done = new Promise<ServiceResult>((r) => { resolve = r; });
  let flow: DatagramFlow | null = null;
  let closed = false;
  const finish = (error?: string) => {
    if (closed) return;
    closed = true;
    if (error) result.error = error;
    try { sock.close(); } catch { /* already closed */ }
    flow?.close();
    stream.destroy();
    resolve(result);
  };
  // Before connect an error means no socket (a bad host); after it, ICMP port unreachable from a
  // service that is not listening, and UDP carries on regardless.
  sock.on("error", (err: NodeJS.ErrnoException) => {
    const code = err.code ?? err.message;
    if (flow) return log.debug({ service: where, err: code }, "service: udp error");
    const reason = `local service ${where} unreachable: ${code}`;
    log.warn({ service: where, reason }, "service: local udp socket failed");
    if (opts.onFail) opts.onFail(reason); else stream.destroy(new Error(reason));
    finish(reason);
  });
  stream.on("error", () => { /* the flow reports it */ });
  stream.once("close", () => { if (!flow) finish("the flow closed before the local socket was ready"); });
  sock.connect(local.port, local.host, () => {
    if (closed) return;
    opts.onReady?.();
    flow = new DatagramFlow({
      stream,
      idleMs: opts.idleMs ?? UDP_IDLE_MS,
      deliver: (payload, sent) => {
        result.toService++;
        sock.send(payload, (err) => {
          if (err) log.debug({ service: where, err: (err as NodeJS.ErrnoException).code ?? err.message }, "service: udp send failed");
          sent();
        });
      },
      onClose: (why) => {
        if (why.framingError) log.warn({ service: where, reason: why.reason }, "service: closing udp flow");
        finish(why.framingError ? why.reason : undefined);
      },
      onDrop: (why) => log.debug({ service: where, why }, "service: udp reply dropped"),
    });
    sock.on("message", (msg) => {
      if (flow?.send(msg)) result.fromService++;
    });
  });
  return { done, close: () => finish() };
}
