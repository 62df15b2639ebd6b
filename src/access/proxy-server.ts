// The proxy: ONE loopback listener for SOCKS5 and HTTP. The first byte decides: 0x05 is SOCKS5,
// 0x04 is SOCKS4 (refused with its own "rejected" reply, so the client says why), anything else is
// HTTP. Every connection must finish its handshake within handshakeTimeoutMs (total, not per read, so
// a client trickling bytes is cut off all the same), and at most maxConnections are open at once:
// one more is closed at once and counted. One source (address, IPv6 /64) holds at most half of them, and
// at most MAX_HANDSHAKES_PER_SOURCE still in their handshake (source-slots.ts), so one program cannot lock
// the others out. stats() shows every refusal and drop reason.
import { createServer, type Server, type Socket } from "node:net";
import { closeWith } from "./client-io.js";
import { Counters } from "./counters.js";
import { handleHttp } from "./http-proxy.js";
import { bindFailure, checkListenHost, checkListenPort, DEFAULT_LISTEN_HOST } from "./listen.js";
import {
  DIAL_TIMEOUT_MS, HANDSHAKE_TIMEOUT_MS, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_SOURCE, MAX_HANDSHAKES_PER_SOURCE, MAX_UDP_FLOWS, UDP_IDLE_MS,
} from "./limits.js";
import { SourceSlots } from "./source-slots.js";
import { PROXY_COUNTERS, type ClientConn, type ProxyContext, type ProxyCounter } from "./proxy-context.js";
import { handleSocks5 } from "./socks5.js";
import type { AccessLog, Dialer, Directory } from "./types.js";

export interface ProxyOptions {
  /** Local port (0: any free port, see ProxyServer.port). */
  port: number;
  dialer: Dialer;
  directory: Directory;
  log: AccessLog;
  /** Loopback only unless allowNonLoopback. */
  host?: string;
  allowNonLoopback?: boolean;
  maxConnections?: number;
  /** Per source (address, IPv6 /64): open connections, and those still in their handshake. */
  maxConnectionsPerSource?: number;
  maxHandshakesPerSource?: number;
  handshakeTimeoutMs?: number;
  dialTimeoutMs?: number;
  /** SOCKS5 UDP: idle time before a flow closes, and flows per association. */
  udpIdleMs?: number;
  maxUdpFlows?: number;
}

export interface ProxyStats {
  listen: string;
  /** Client connections open now, and the most at once. */
  active: number;
  peakActive: number;
  counters: Record<ProxyCounter, number>;
}

export interface ProxyServer {
  readonly host: string;
  readonly port: number;
  stats(): ProxyStats;
  close(): Promise<void>;
}

/** SOCKS4's reply "request rejected or failed" (VN 0, CD 91). */
const SOCKS4_REJECTED = Buffer.from([0x00, 0x5b, 0, 0, 0, 0, 0, 0]);

export async function startProxy(opts: ProxyOptions): Promise<ProxyServer> {
  const host = opts.host ?? DEFAULT_LISTEN_HOST;
  checkListenHost(host, opts.allowNonLoopback);
  checkListenPort(opts.port);
  const maxConnections = opts.maxConnections ?? MAX_CONNECTIONS;
  const slots = new SourceSlots(
    opts.maxConnectionsPerSource ?? Math.min(MAX_CONNECTIONS_PER_SOURCE, Math.max(1, Math.floor(maxConnections / 2))),
    opts.maxHandshakesPerSource ?? MAX_HANDSHAKES_PER_SOURCE,
  );
  const handshakeMs = opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const counters = new Counters(PROXY_COUNTERS);
  const ctx: ProxyContext = {
    dialer: opts.dialer, directory: opts.directory, log: opts.log, counters,
    dialTimeoutMs: opts.dialTimeoutMs ?? DIAL_TIMEOUT_MS,
    udpIdleMs: opts.udpIdleMs ?? UDP_IDLE_MS,
    maxUdpFlows: opts.maxUdpFlows ?? MAX_UDP_FLOWS,
  };
  const clients = new Set<Socket>();
  let peak = 0;
  let nextId = 1;

  // Half-open: a client that ends its side of a tunnel still gets the rest of the answer.
  const server: Server = createServer({ allowHalfOpen: true });
  server.on("connection", (socket: Socket) => {
    socket.on("error", () => { /* a reset client: its handler sees the close */ });
    if (clients.size >= maxConnections) {
      counters.inc("over_limit");
      socket.destroy();
      return;
    }
    const slot = slots.admit(socket.remoteAddress);
    if (!slot.ok) {
      counters.inc(slot.reason);
      socket.destroy();
      return;
    }
    counters.inc("accepted");
    clients.add(socket);
    peak = Math.max(peak, clients.size);
    let handshaking = true;
    socket.once("close", () => { clients.delete(socket); slots.release(slot.source, handshaking); });
    accept(socket, nextId++, () => {
      if (!handshaking) return;
      handshaking = false;
      slots.handshakeDone(slot.source);
    });
  });

  function accept(socket: Socket, id: number, leftHandshake: () => void): void {
    let onDeadline: (() => void) | null = null;
    const timer = setTimeout(() => {
      counters.inc("handshake_timeout");
      opts.log.warn({ conn: id, from: conn.from, after_ms: handshakeMs }, "proxy: handshake deadline passed, closing");
      if (onDeadline) onDeadline();
      else socket.destroy();
    }, handshakeMs);
    socket.once("close", () => clearTimeout(timer));
    // A client that closes its side mid-handshake has left (half-open is for tunnels): free its slot.
    let inHandshake = true;
    socket.once("end", () => { if (inHandshake) socket.destroy(); });
    const conn: ClientConn = {
      socket, id,
      from: `${socket.remoteAddress}:${socket.remotePort}`,
      handshakeDone: () => {
        inHandshake = false;
        clearTimeout(timer);
        leftHandshake();
      },
      onDeadline: (send) => { onDeadline = send; },
    };
    socket.once("data", (first: Buffer) => {
      if (first[0] === 0x05) {
        counters.inc("socks5");
        handleSocks5(conn, first, ctx);
      } else if (first[0] === 0x04) {
        clearTimeout(timer);
        counters.inc("socks4_refused");
        opts.log.warn({ conn: id, from: conn.from }, "proxy: SOCKS4 is not served; use SOCKS5 (socks5h://)");
        closeWith(socket, SOCKS4_REJECTED);
      } else {
        counters.inc("http");
        handleHttp(conn, first, ctx);
      }
    });
  }

  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => reject(bindFailure(err, host, opts.port)));
    server.listen({ port: opts.port, host, backlog: 511 }, () => {
      const addr = server.address();
      resolve(typeof addr === "object" && addr ? addr.port : opts.port);
    });
  });
  server.on("error", (err) => opts.log.warn({ err: err.message }, "proxy: listener error"));
  opts.log.info({ listen: `${host}:${port}` }, "proxy: SOCKS5 and HTTP listening");

  return {
    host, port,
    stats: () => ({ listen: `${host}:${port}`, active: clients.size, peakActive: peak, counters: counters.snapshot() }),
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const c of clients) c.destroy();
    }),
  };
}

