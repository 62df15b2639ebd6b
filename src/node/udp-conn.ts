// The node's one UDP socket (the "conn" of wireguard-go): STUN, path probes and session traffic share it, so
// the mapping STUN learns is the mapping peers use. It binds, sends, says when its send queue is over its
// bound (dgram has no "drain" event, so a waiter is told by polling), sends low-TTL punch packets, and splits
// incoming STUN from EmberNet datagrams before any session code runs.
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { lookup as dnsLookup } from "node:dns";
import { isIP } from "node:net";
import { encodeBindingIndication, StunClient } from "../nat/stun.js";
import { isStunPacket } from "../wire/constants.js";

/** Bytes queued in libuv for the socket (the kernel buffer was full) before senders are told to wait. */
const SEND_QUEUE_LIMIT = 512 * 1024;
const DEFAULT_TTL = 64;
/** A punch packet carries nothing: one byte of a type no peer accepts (it should die in transit anyway). */
const PUNCH_PAYLOAD = Buffer.from([0x1f]);

export interface UdpConnOptions {
  host: string;
  port: number;
  /** Every non-STUN datagram. */
  onDatagram: (msg: Buffer, from: RemoteInfo) => void;
  /** The send queue fell back under its bound after hasRoom() said no. */
  onDrain: () => void;
  log: { debug(o: object, m?: string): void; warn(o: object, m?: string): void };
}

/** Datagrams and bytes (UDP payload) through the socket, every kind: sessions, STUN, probes, punches, holds. */
export interface UdpCounters { txPackets: number; txBytes: number; rxPackets: number; rxBytes: number }

/**
 * dgram's address lookup, synchronous for IP literals. Node's default resolves even a literal through
 * dns.lookup on the next tick, so a datagram left the socket after whatever came next in the same turn: a
 * TTL-limited send (punch, hop measurement) restored the TTL before its datagram went out, and went out at
 * full TTL (every node measured 1 hop in the lab, and punches reached the peer's NAT). With this, send()
 * hands the datagram to the kernel at once when the socket's queue is empty.
 */
export function literalLookup(host: string, family: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  const v = isIP(host);
  if (v) return cb(null, host, v);
  dnsLookup(host, { family: family === 6 || family === "IPv6" ? 6 : 4 }, (err, address, fam) => cb(err, address, fam));
}

/** libuv's UDP handle behind a dgram socket (its fd, recvStop), read through dgram's own state, not the deprecated _handle. */
function socketHandle(socket: Socket): { fd?: number; recvStop?: () => number } | undefined {
  const key = Object.getOwnPropertySymbols(socket).find((k) => k.description === "state symbol");
  const state = key && (socket as unknown as Record<symbol, { handle?: { fd?: number; recvStop?: () => number } }>)[key];
  return state?.handle;
}

export class UdpConn {
  readonly stun: StunClient;
  readonly counters: UdpCounters = { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 };
  private readonly socket: Socket;
  private drainTimer?: NodeJS.Timeout;
  /** After close(): sends are dropped and there is never room (layers above may still try while shutting down). */
  private closed = false;

  private constructor(private readonly opts: UdpConnOptions) {
    this.socket = createSocket({ type: opts.host.includes(":") ? "udp6" : "udp4", lookup: literalLookup });
    this.stun = new StunClient(this.socket);
    this.socket.on("message", (msg, rinfo) => {
      this.counters.rxPackets++;
      this.counters.rxBytes += msg.length;
      if (isStunPacket(msg)) { this.stun.handle(msg, rinfo); return; }
      opts.onDatagram(msg, rinfo);
    });
    this.socket.on("error", (err: NodeJS.ErrnoException) => {
      // Sends towards unroutable candidates fail all the time during path discovery: not worth a warning.
      if (err.syscall === "send") opts.log.debug({ err: err.message }, "udp send failed");
      else opts.log.warn({ err: err.message }, "udp socket error");
    });
  }

  static async bind(opts: UdpConnOptions): Promise<UdpConn> {
    const conn = new UdpConn(opts);
    await new Promise<void>((res, rej) => {
      conn.socket.once("error", rej);
      conn.socket.bind(opts.port, opts.host, () => { conn.socket.off("error", rej); res(); });
    });
    return conn;
  }

  /** Every datagram through the socket, STUN requests included. */
  totals(): UdpCounters {
    const c = this.counters;
    return { txPackets: c.txPackets + this.stun.sent.packets, txBytes: c.txBytes + this.stun.sent.bytes, rxPackets: c.rxPackets, rxBytes: c.rxBytes };
  }

  address(): { host: string; port: number } {
    const a = this.socket.address();
    return { host: a.address, port: a.port };
  }

  /** For netcheck, which runs STUN on this very socket. */
  get raw(): Socket {
    return this.socket;
  }

  /** The socket's file descriptor, for the native data plane (src/native/types.ts); undefined when not open. */
  get fd(): number | undefined {
    const fd = socketHandle(this.socket)?.fd;
    return typeof fd === "number" && fd >= 0 ? fd : undefined;
  }

  /**
   * Hands receiving to the native data plane: libuv stops reading the socket (two readers would split the
   * datagrams between them), and the data plane gives every datagram that is not its own back through
   * deliver(), in batches. Sending stays here. False when this Node has no such handle method.
   */
  yieldReceiving(): boolean {
    const handle = socketHandle(this.socket);
    if (typeof handle?.recvStop !== "function") return false;
    return handle.recvStop() === 0;
  }

  /** Datagrams the native data plane read from the socket, as if libuv had (STUN, handshakes, sessions). */
  deliver(packets: Buffer[], hosts: string[], ports: number[]): void {
    for (let i = 0; i < packets.length; i++) {
      const host = hosts[i];
      const rinfo: RemoteInfo = { address: host, port: ports[i], family: host.includes(":") ? "IPv6" : "IPv4", size: packets[i].length };
      this.socket.emit("message", packets[i], rinfo);
    }
  }

  /** No per-datagram callback (it costs an allocation per packet): a failed send surfaces as the socket's "error". */
  send(data: Uint8Array, port: number, host: string): void {
    if (this.closed) return;
    this.counters.txPackets++;
    this.counters.txBytes += data.length;
    this.socket.send(data, port, host);
  }

  /** Room for another datagram; when not, onDrain fires once the queue is back under its bound. */
  hasRoom(): boolean {
    if (this.closed) return false;
    if (this.socket.getSendQueueSize() < SEND_QUEUE_LIMIT) return true;
    this.drainTimer ??= setInterval(() => {
      if (this.closed || this.socket.getSendQueueSize() >= SEND_QUEUE_LIMIT) return;
      clearInterval(this.drainTimer);
      this.drainTimer = undefined;
      this.opts.onDrain();
    }, 1);
    return false;
  }

  /** A NAT keepalive with no session keys: a STUN Binding Indication (the peer's socket drops it silently). */
  hold(port: number, host: string): void {
    this.send(encodeBindingIndication(), port, host);
  }

  /**
   * Low-TTL punch (docs/nat.md): a packet that leaves our own NAT, creating the mapping towards the peer,
   * but expires before the peer's NAT, so it cannot leave a conntrack entry there that would clash with
   * the peer's own outgoing mapping. Full-TTL probes follow.
   */
  punch(port: number, host: string, ttl: number): void {
    const s = this.socket;
    try {
      s.setTTL(ttl);
      this.counters.txPackets++;
      this.counters.txBytes += PUNCH_PAYLOAD.length;
      // Sent synchronously (literalLookup): the TTL is back before any other datagram of ours is sent.
      s.send(PUNCH_PAYLOAD, port, host);
    } catch (err) {
      this.opts.log.debug({ err: (err as Error).message }, "punch failed");
    } finally {
      try { s.setTTL(DEFAULT_TTL); } catch { /* closed */ }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.drainTimer);
    this.stun.close();
    await new Promise<void>((res) => this.socket.close(() => res()));
  }
}
