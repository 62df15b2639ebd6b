// The node's UDP port (the "conn" of wireguard-go): STUN, path probes and session traffic share it, so the
// mapping STUN learns is the mapping peers use. One socket per address family on the same port number, as
// wireguard-go and magicsock keep them: an IPv4 socket and an IPv6-only one (a dual-stack socket would send
// IPv4 as v4-mapped IPv6, where the hop limit Node can set does not apply, and low-TTL punching needs the IPv4
// TTL). It binds, sends on the family of the destination, says when its send queue is over its bound (dgram
// has no "drain" event, so a waiter is told by polling), sends low-TTL punch packets, and splits incoming STUN
// from EmberNet datagrams before any session code runs.
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { lookup as dnsLookup } from "node:dns";
import { isIP } from "node:net";
import { encodeBindingIndication, StunClient } from "../nat/stun.js";
import { isStunPacket } from "../wire/constants.js";
import { familyOf, isV4Mapped } from "../addr/endpoint.js";
import { sendLowTtl } from "./low-ttl-send.js";

/** Bytes queued in libuv for the socket (the kernel buffer was full) before senders are told to wait. */
const SEND_QUEUE_LIMIT = 512 * 1024;
const DEFAULT_TTL = 64;
/** A punch packet carries nothing: one byte of a type no peer accepts (it should die in transit anyway). */
const PUNCH_PAYLOAD = Buffer.from([0x1f]);

export interface UdpConnOptions {
  /**
   * "::" (or "", the default): both families, IPv6 where the host has it. "0.0.0.0" or an IPv4 address: IPv4
   * only. An IPv6 address: IPv6 only.
   */
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

export type Family = 4 | 6;
export { familyOf };

/** Which sockets a listen host asks for (see UdpConnOptions.host). */
export function familiesFor(host: string): { v4?: string; v6?: string } {
  if (host === "" || host === "::") return { v4: "0.0.0.0", v6: "::" };
  return isIP(host) === 6 ? { v6: host } : { v4: host };
}

/** Tries of a shared port for both families when the port is chosen by the kernel (another program may hold the IPv6 one). */
const SHARED_PORT_TRIES = 8;

/** libuv's UDP handle behind a dgram socket (its fd, recvStop), read through dgram's own state, not the deprecated _handle. */
function socketHandle(socket: Socket): { fd?: number; recvStop?: () => number } | undefined {
  const key = Object.getOwnPropertySymbols(socket).find((k) => k.description === "state symbol");
  const state = key && (socket as unknown as Record<symbol, { handle?: { fd?: number; recvStop?: () => number } }>)[key];
  return state?.handle;
}

/** One family's socket and the STUN client on it. */
export interface UdpLeg {
  readonly family: Family;
  readonly socket: Socket;
  readonly stun: StunClient;
}

export class UdpConn {
  readonly counters: UdpCounters = { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 };
  private readonly legs: UdpLeg[] = [];
  private drainTimer?: NodeJS.Timeout;
  /** After close(): sends are dropped and there is never room (layers above may still try while shutting down). */
  private closed = false;

  private constructor(private readonly opts: UdpConnOptions) {}

  private open(family: Family): UdpLeg {
    const socket = createSocket({ type: family === 6 ? "udp6" : "udp4", ipv6Only: family === 6, lookup: literalLookup });
    const leg: UdpLeg = { family, socket, stun: new StunClient(socket, family) };
    socket.on("message", (msg, rinfo) => {
      this.counters.rxPackets++;
      this.counters.rxBytes += msg.length;
      if (isStunPacket(msg)) { leg.stun.handle(msg, rinfo); return; }
      this.opts.onDatagram(msg, rinfo);
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      // Sends towards unroutable candidates fail all the time during path discovery: not worth a warning.
      if (err.syscall === "send") this.opts.log.debug({ err: err.message }, "udp send failed");
      else this.opts.log.warn({ err: err.message }, "udp socket error");
    });
    return leg;
  }

  /**
   * Binds the sockets the listen host asks for, on one port number. With both families and a kernel-chosen port,
   * a port whose IPv6 twin is taken is tried again; a host without IPv6 runs on IPv4 alone (said in the log).
   */
  static async bind(opts: UdpConnOptions): Promise<UdpConn> {
    const want = familiesFor(opts.host);
    for (let attempt = 1; ; attempt++) {
      const conn = new UdpConn(opts);
      let port = opts.port;
      if (want.v4 !== undefined) port = await conn.bindLeg(4, want.v4, port);
      if (want.v6 === undefined) return conn;
      try {
        await conn.bindLeg(6, want.v6, port);
        return conn;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (want.v4 === undefined) throw err;
        if (code === "EADDRINUSE" && opts.port === 0 && attempt < SHARED_PORT_TRIES) { await conn.close(); continue; }
        if (code === "EADDRINUSE") { await conn.close(); throw err; }
        opts.log.warn({ err: (err as Error).message }, "no IPv6 socket (this host has no IPv6?): running on IPv4 alone");
        return conn;
      }
    }
  }

  private async bindLeg(family: Family, host: string, port: number): Promise<number> {
    const leg = this.open(family);
    await new Promise<void>((res, rej) => {
      leg.socket.once("error", rej);
      leg.socket.bind(port, host, () => { leg.socket.off("error", rej); res(); });
    }).catch(async (err) => {
      await new Promise<void>((r) => leg.socket.close(() => r()));
      throw err;
    });
    this.legs.push(leg);
    return leg.socket.address().port;
  }

  /** The socket of each family that is open: IPv4 first. */
  get sockets(): readonly UdpLeg[] {
    return this.legs;
  }

  /** The socket for a destination's family, if this node has one. */
  leg(family: Family): UdpLeg | undefined {
    return this.legs.find((l) => l.family === family);
  }

  /** Every datagram through the sockets, STUN requests included. */
  totals(): UdpCounters {
    const c = this.counters;
    let stunPackets = 0, stunBytes = 0;
    for (const l of this.legs) { stunPackets += l.stun.sent.packets; stunBytes += l.stun.sent.bytes; }
    return { txPackets: c.txPackets + stunPackets, txBytes: c.txBytes + stunBytes, rxPackets: c.rxPackets, rxBytes: c.rxBytes };
  }

  /** The first socket's address (IPv4 when there is one): the port is the same for both. */
  address(): { host: string; port: number } {
    const a = this.legs[0].socket.address();
    return { host: a.address, port: a.port };
  }

  /** Every bound address, "[v6]:port" for IPv6. */
  addresses(): string[] {
    return this.legs.map((l) => {
      const a = l.socket.address();
      return l.family === 6 ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    });
  }

  /** The file descriptor of each family's socket, for the native data plane; undefined when not open. */
  fdOf(family: Family): number | undefined {
    const leg = this.leg(family);
    const fd = leg && socketHandle(leg.socket)?.fd;
    return typeof fd === "number" && fd >= 0 ? fd : undefined;
  }

  /**
   * Hands receiving to the native data plane: libuv stops reading the sockets (two readers would split the
   * datagrams between them), and the data plane gives every datagram that is not its own back through
   * deliver(), in batches. Sending stays here. False when this Node has no such handle method.
   */
  yieldReceiving(): boolean {
    for (const l of this.legs) {
      const handle = socketHandle(l.socket);
      if (typeof handle?.recvStop !== "function" || handle.recvStop() !== 0) return false;
    }
    return true;
  }

  /** Datagrams the native data plane read from the sockets, as if libuv had (STUN, handshakes, sessions). */
  deliver(packets: Buffer[], hosts: string[], ports: number[]): void {
    for (let i = 0; i < packets.length; i++) {
      const host = hosts[i];
      const family = familyOf(host);
      const rinfo: RemoteInfo = { address: host, port: ports[i], family: family === 6 ? "IPv6" : "IPv4", size: packets[i].length };
      (this.leg(family) ?? this.legs[0]).socket.emit("message", packets[i], rinfo);
    }
  }

  /** No per-datagram callback (it costs an allocation per packet): a failed send surfaces as the socket's "error". */
  send(data: Uint8Array, port: number, host: string): void {
    if (this.closed) return;
    const leg = this.leg(familyOf(host));
    if (!leg) return; // no socket of that family: the path layer learns it from the silence
    this.counters.txPackets++;
    this.counters.txBytes += data.length;
    leg.socket.send(data, port, isV4Mapped(host) ? host.slice(7) : host);
  }

  /** Room for another datagram; when not, onDrain fires once the queues are back under their bound. */
  hasRoom(): boolean {
    if (this.closed) return false;
    if (this.queued() < SEND_QUEUE_LIMIT) return true;
    this.drainTimer ??= setInterval(() => {
      if (this.closed || this.queued() >= SEND_QUEUE_LIMIT) return;
      clearInterval(this.drainTimer);
      this.drainTimer = undefined;
      this.opts.onDrain();
    }, 1);
    return false;
  }

  private queued(): number {
    let n = 0;
    for (const l of this.legs) n += l.socket.getSendQueueSize();
    return n;
  }

  /** A NAT keepalive with no session keys: a STUN Binding Indication (the peer's socket drops it silently). */
  hold(port: number, host: string): void {
    this.send(encodeBindingIndication(), port, host);
  }

  /**
   * Low-TTL punch (docs/nat.md): a packet that leaves our own NAT, creating the mapping towards the peer,
   * but expires before the peer's NAT, so it cannot leave a conntrack entry there that would clash with
   * the peer's own outgoing mapping. Full-TTL probes follow. On IPv6 the hop limit does the same for a
   * stateful firewall's state.
   */
  punch(port: number, host: string, ttl: number): void {
    const leg = this.leg(familyOf(host));
    if (!leg || this.closed) return;
    sendLowTtl({
      socket: leg.socket, data: PUNCH_PAYLOAD, port, host, ttl, restoreTtl: DEFAULT_TTL, open: () => !this.closed,
      done: (sent, why) => {
        if (!sent) { this.opts.log.debug({ host, port, why }, "punch not sent"); return; }
        this.counters.txPackets++;
        this.counters.txBytes += PUNCH_PAYLOAD.length;
      },
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.drainTimer);
    for (const l of this.legs) l.stun.close();
    await Promise.all(this.legs.map((l) => new Promise<void>((res) => l.socket.close(() => res()))));
  }
}
