// TUN mode's name responder: answers A queries for mesh names over UDP, so `ping db-1` works once the system
// resolver sends the mesh's names here. It is authoritative for what the daemon's lookup knows and nothing else:
// no recursion (RA = 0), unknown names NXDOMAIN, at most one A record per answer, so a spoofed query never
// brings back much more than it sent (no amplification). The decision is pure (answerQuery); the class only
// moves datagrams. Wire format: dns-wire.ts. Decisions: docs/access.md, "Names in TUN mode".
import { createSocket, type Socket } from "node:dgram";
import { isIPv4, isIPv6 } from "node:net";
import { encodeResponse, parseQuery, QCLASS_IN, QTYPE, RCODE } from "./dns-wire.js";

/**
 * Seconds a resolver may cache an answer: short, because a name's address is stable but its existence is not
 * (a revoked node must stop resolving soon), and a query to a local responder costs nothing.
 */
export const DNS_TTL_S = 5;
/** No datagram we send is larger: a question (at most 255 + 4 bytes), a header and one A record. */
export const DNS_MAX_RESPONSE_BYTES = 12 + 255 + 4 + 16;

/** Resolves a lowercase name without its trailing dot to an IPv4 address, or undefined. */
export type NameLookup = (name: string) => string | undefined;

/** Letters, digits, '-' and '_' (DNS-SD names): anything else cannot be a mesh name and is never looked up. */
const NAME_CHARS = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;

/** The response to one datagram, or undefined when it gets none (not a query, or too short to carry an id). */
export function answerQuery(msg: Uint8Array, lookup: NameLookup): Buffer | undefined {
  const q = parseQuery(msg);
  if (q.kind === "ignore") return undefined;
  if (q.kind === "error") return encodeResponse({ id: q.id, opcode: q.opcode, rd: q.rd, rcode: q.rcode });
  const { question } = q;
  if (question.class !== QCLASS_IN) return encodeResponse({ id: q.id, rd: q.rd, rcode: RCODE.REFUSED, question });
  const name = question.name.toLowerCase();
  let ip: string | undefined;
  try {
    ip = NAME_CHARS.test(name) ? lookup(name) : undefined;
  } catch {
    return encodeResponse({ id: q.id, rd: q.rd, rcode: RCODE.SERVFAIL, question });
  }
  if (ip === undefined || !isIPv4(ip)) return encodeResponse({ id: q.id, rd: q.rd, rcode: RCODE.NXDOMAIN, question });
  // A known name: its A record for A (and ANY, RFC 8482's one RRset); NOERROR and no data for other types.
  const wantsA = question.type === QTYPE.A || question.type === QTYPE.ANY;
  return encodeResponse({ id: q.id, rd: q.rd, rcode: RCODE.NOERROR, question, a: wantsA ? [{ ip, ttl: DNS_TTL_S }] : [] });
}

export interface DnsResponderStats { queries: number; answered: number; ignored: number; nxdomain: number; errors: number }

export class DnsResponder {
  readonly stats: DnsResponderStats = { queries: 0, answered: 0, ignored: 0, nxdomain: 0, errors: 0 };
  private socket?: Socket;

  constructor(private readonly lookup: NameLookup, private readonly log?: { warn(o: object, m?: string): void }) {}

  /** Binds the UDP socket; resolves with the bound address (port 0 picks one). */
  async start(at: { host: string; port: number }): Promise<{ host: string; port: number }> {
    if (this.socket) throw new Error("dns responder already started");
    const sock = createSocket({ type: isIPv6(at.host) ? "udp6" : "udp4" });
    this.socket = sock;
    sock.on("message", (msg, rinfo) => this.onMessage(msg, rinfo.address, rinfo.port));
    await new Promise<void>((resolve, reject) => {
      sock.once("error", reject);
      sock.bind(at.port, at.host, () => { sock.off("error", reject); resolve(); });
    }).catch((err) => { this.socket = undefined; sock.close(); throw err; });
    // After bind, a socket error (e.g. ICMP unreachable surfacing on send) is logged, never thrown.
    sock.on("error", (err) => this.log?.warn({ err: err.message }, "dns responder socket error"));
    const a = sock.address();
    return { host: a.address, port: a.port };
  }

  /** Stops answering and releases the port. Idempotent. */
  close(): Promise<void> {
    const sock = this.socket;
    this.socket = undefined;
    if (!sock) return Promise.resolve();
    return new Promise((resolve) => sock.close(() => resolve()));
  }

  private onMessage(msg: Buffer, host: string, port: number): void {
    this.stats.queries++;
    let out: Buffer | undefined;
    try {
      out = answerQuery(msg, this.lookup);
    } catch (err) {
      // answerQuery is written not to throw; if it ever does, one datagram is lost, not the daemon.
      this.stats.errors++;
      this.log?.warn({ err: (err as Error).message }, "dns query failed");
      return;
    }
    if (!out) { this.stats.ignored++; return; }
    if ((out[3] & 0xf) === RCODE.NXDOMAIN) this.stats.nxdomain++;
    this.stats.answered++;
    this.socket?.send(out, port, host);
  }
}
