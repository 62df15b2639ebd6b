// STUN (RFC 8489 Binding) on an existing UDP socket. The daemon has ONE socket for STUN, disco and data,
// so the mapping STUN learns here is the mapping peers see. Its message handler calls handle() first:
// STUN starts with 0x00/0x01 and carries the magic cookie at offset 4, EmberNet packets start 0x10..0x1f.
// Encoding and decoding are stun-codec.ts (the relay's STUN server shares it).
import { randomBytes } from "node:crypto";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { RemoteInfo, Socket } from "node:dgram";
import { isStunPacket, STUN_HEADER_SIZE } from "../wire/constants.js";
import {
  decodeStun, encodeBindingIndication as encodeIndication, encodeBindingRequest, encodeBindingResponse, STUN_BINDING_INDICATION,
  STUN_BINDING_REQUEST, STUN_BINDING_RESPONSE, STUN_SOFTWARE, STUN_TRANSACTION_ID_BYTES,
} from "./stun-codec.js";

export {
  decodeStun, encodeBindingRequest, encodeBindingResponse, STUN_BINDING_INDICATION, STUN_BINDING_REQUEST, STUN_BINDING_RESPONSE,
  STUN_SOFTWARE, STUN_TRANSACTION_ID_BYTES,
};

/** First retransmission after this, doubling (RFC 8489 RTO, shortened: STUN servers here are relays we run). */
export const STUN_INITIAL_RTO_MS = 250;
/** The socket's normal IP TTL, restored after a TTL-limited send. */
export const DEFAULT_IP_TTL = 64;
export const STUN_DEFAULT_TIMEOUT_MS = 3_000;

export interface MappedAddress { address: string; port: number }
export interface StunServerAddress { host: string; port: number }
export interface StunResult { mapped: MappedAddress; rttMs: number; server: MappedAddress }

export class StunError extends Error {
  constructor(readonly code: "timeout" | "closed" | "send_failed" | "dns" | "bad_response", message: string) { super(message); }
}

/**
 * A Binding Indication: 20 bytes, no attributes, never answered (RFC 8489 section 6.3, RFC 8445 section 11:
 * ICE's keepalive). EmberNet's holds at rest use it to refresh a NAT mapping without session keys.
 */
export function encodeBindingIndication(): Buffer {
  return encodeIndication(randomBytes(STUN_TRANSACTION_ID_BYTES));
}

interface Pending {
  key: string;
  server: MappedAddress;
  sentAt: number;
  timers: NodeJS.Timeout[];
  resolve: (r: StunResult) => void;
  reject: (e: Error) => void;
}

/** The IPv4-mapped form ::ffff:a.b.c.d that a dual-stack socket reports, as plain a.b.c.d. */
function plainAddress(a: string): string {
  return a.startsWith("::ffff:") && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}

export class StunClient {
  /** Requests sent (retransmissions included), for the node's traffic counters. */
  readonly sent = { packets: 0, bytes: 0 };
  private readonly pending = new Map<string, Pending>();
  private closed = false;

  /** family: names resolve in this family only (an IPv6-only socket cannot send to an IPv4 answer). */
  constructor(private readonly socket: Socket, private readonly family?: 4 | 6) {}

  /**
   * Call first in the socket's message handler. Returns true when the datagram is STUN (consumed: a
   * response to one of our requests resolves it; any other STUN message is dropped here), false otherwise.
   */
  handle(msg: Buffer, rinfo: RemoteInfo): boolean {
    if (!isStunPacket(msg)) return false;
    if (msg.readUInt16BE(0) !== STUN_BINDING_RESPONSE) return true;
    const key = msg.toString("hex", 8, STUN_HEADER_SIZE);
    const p = this.pending.get(key);
    // The 96-bit random transaction ID is the proof; the source must also be the server we asked.
    if (!p || plainAddress(rinfo.address) !== p.server.address || rinfo.port !== p.server.port) return true;
    const decoded = decodeStun(msg);
    const addr = decoded?.getXorAddress() ?? decoded?.getAddress();
    if (!addr || typeof addr.address !== "string" || !Number.isInteger(addr.port)) return true; // keep waiting for a good answer
    this.finish(p);
    p.resolve({ mapped: { address: plainAddress(addr.address), port: addr.port }, rttMs: performance.now() - p.sentAt, server: p.server });
    return true;
  }

  /** One Binding request with retransmissions until timeoutMs; rejects with StunError. */
  /**
   * With `ttl`, one transmission only, sent with that IP TTL (the socket's TTL is restored right after the send:
   * libuv sends at once when its queue is empty, as for punches); used to count hops to the server (hops.ts).
   */
  async request(server: StunServerAddress, timeoutMs = STUN_DEFAULT_TIMEOUT_MS, opts: { ttl?: number } = {}): Promise<StunResult> {
    if (this.closed) throw new StunError("closed", "STUN client is closed");
    if (!Number.isInteger(server.port) || server.port < 1 || server.port > 65535) throw new StunError("send_failed", `STUN server port ${server.port} is out of range`);
    let address = server.host;
    if (!isIP(address)) {
      try {
        address = (await lookup(server.host, { family: this.family ?? (this.socket.address().family === "IPv6" ? 0 : 4) })).address;
      } catch (err) {
        throw new StunError("dns", `cannot resolve STUN server ${server.host}: ${(err as Error).message}`);
      }
    }
    const target = { address, port: server.port };
    const tid = randomBytes(STUN_TRANSACTION_ID_BYTES);
    const key = tid.toString("hex");
    const packet = encodeBindingRequest(tid);
    return new Promise<StunResult>((resolve, reject) => {
      const p: Pending = { key, server: target, sentAt: 0, timers: [], resolve, reject };
      this.pending.set(key, p);
      const send = () => {
        // RTT is measured from the latest transmission (an answer to an earlier one reads short, never long).
        p.sentAt = performance.now();
        const failed = (err: Error | null) => {
          if (err && this.pending.has(key)) {
            this.finish(p);
            reject(new StunError("send_failed", `STUN request to ${target.address}:${target.port}: ${err.message}`));
          }
        };
        this.sent.packets++;
        this.sent.bytes += packet.length;
        try {
          if (opts.ttl !== undefined) this.socket.setTTL(opts.ttl);
          this.socket.send(packet, target.port, target.address, failed);
        } catch (err) { failed(err as Error); } finally {
          if (opts.ttl !== undefined) try { this.socket.setTTL(DEFAULT_IP_TTL); } catch { /* closed */ }
        }
      };
      send();
      if (opts.ttl === undefined) for (let rto = STUN_INITIAL_RTO_MS, at = rto; at < timeoutMs; rto *= 2, at += rto) p.timers.push(setTimeout(send, at));
      p.timers.push(setTimeout(() => {
        this.finish(p);
        reject(new StunError("timeout", `no STUN answer from ${server.host}:${server.port} within ${timeoutMs} ms`));
      }, timeoutMs));
    });
  }

  /** Rejects every outstanding request (the socket is going away). */
  close(): void {
    this.closed = true;
    for (const p of [...this.pending.values()]) {
      this.finish(p);
      p.reject(new StunError("closed", "STUN client closed"));
    }
  }

  private finish(p: Pending): void {
    for (const t of p.timers) clearTimeout(t);
    this.pending.delete(p.key);
  }
}
