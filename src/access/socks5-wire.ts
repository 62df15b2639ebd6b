// SOCKS5 on the wire (RFC 1928): the method greeting, the request, the reply and the UDP request
// header, as pure parsers over a buffer. Each parser answers "need more bytes", a value with the
// number of bytes it used, or what is wrong (with the reply code to send, where one applies).
import { isIPv4, isIPv6 } from "node:net";
import type { DialErrorCode } from "./types.js";

export const SOCKS_VERSION = 0x05;
export const METHOD_NO_AUTH = 0x00;
export const METHOD_NONE_ACCEPTABLE = 0xff;

export const CMD_CONNECT = 0x01;
export const CMD_BIND = 0x02;
export const CMD_UDP_ASSOCIATE = 0x03;

export const ATYP_IPV4 = 0x01;
export const ATYP_DOMAIN = 0x03;
export const ATYP_IPV6 = 0x04;

/** Reply codes (RFC 1928 section 6). */
export const REP = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;

const REP_TEXT: Record<number, string> = {
  0x00: "succeeded", 0x01: "general SOCKS server failure", 0x02: "connection not allowed by ruleset",
  0x03: "network unreachable", 0x04: "host unreachable", 0x05: "connection refused", 0x06: "TTL expired",
  0x07: "command not supported", 0x08: "address type not supported",
};

export function describeReply(rep: number): string {
  return `0x${rep.toString(16).padStart(2, "0")} ${REP_TEXT[rep] ?? "unassigned"}`;
}

/** The reply that tells a SOCKS client why its dial failed. */
export function replyForDialError(code: DialErrorCode | "failed"): number {
  switch (code) {
    case "denied": return REP.NOT_ALLOWED;
    case "unknown_name":
    case "unreachable": return REP.HOST_UNREACHABLE;
    case "refused": return REP.CONNECTION_REFUSED;
    case "timeout": return REP.TTL_EXPIRED;
    default: return REP.GENERAL_FAILURE;
  }
}

export type Parsed<T> =
  | { kind: "more" }
  | ({ kind: "ok"; size: number } & T)
  | { kind: "bad"; reason: string; reply?: number };

/** VER NMETHODS METHODS[NMETHODS] */
export function parseGreeting(buf: Buffer): Parsed<{ methods: number[] }> {
  if (buf.length < 2) return { kind: "more" };
  if (buf[0] !== SOCKS_VERSION) return { kind: "bad", reason: `greeting version ${buf[0]}, not 5` };
  const n = buf[1];
  if (n === 0) return { kind: "bad", reason: "greeting offers no authentication methods", reply: METHOD_NONE_ACCEPTABLE };
  if (buf.length < 2 + n) return { kind: "more" };
  return { kind: "ok", size: 2 + n, methods: [...buf.subarray(2, 2 + n)] };
}

export interface SocksAddress {
  atyp: number;
  /** Dotted IPv4, IPv6 text, or the domain name as sent (bytes as latin1: validated later). */
  host: string;
  port: number;
}

/** VER CMD RSV ATYP DST.ADDR DST.PORT. RSV is not checked: RFC 1928 only reserves it. */
export function parseRequest(buf: Buffer): Parsed<{ cmd: number } & SocksAddress> {
  if (buf.length < 4) return { kind: "more" };
  if (buf[0] !== SOCKS_VERSION) return { kind: "bad", reason: `request version ${buf[0]}, not 5`, reply: REP.GENERAL_FAILURE };
  const addr = parseAddress(buf, 3);
  if (addr.kind !== "ok") return addr;
  return { kind: "ok", size: addr.size, cmd: buf[1], atyp: addr.atyp, host: addr.host, port: addr.port };
}

/** ATYP DST.ADDR DST.PORT starting at `at`; `size` is the offset just past the port. */
function parseAddress(buf: Buffer, at: number): Parsed<SocksAddress> {
  if (buf.length < at + 1) return { kind: "more" };
  const atyp = buf[at];
  let host: string;
  let end: number;
  if (atyp === ATYP_IPV4) {
    end = at + 1 + 4;
    if (buf.length < end + 2) return { kind: "more" };
    host = [...buf.subarray(at + 1, end)].join(".");
  } else if (atyp === ATYP_IPV6) {
    end = at + 1 + 16;
    if (buf.length < end + 2) return { kind: "more" };
    const words: string[] = [];
    for (let i = at + 1; i < end; i += 2) words.push(buf.readUInt16BE(i).toString(16));
    host = words.join(":");
  } else if (atyp === ATYP_DOMAIN) {
    if (buf.length < at + 2) return { kind: "more" };
    const len = buf[at + 1];
    if (len === 0) return { kind: "bad", reason: "empty domain name", reply: REP.GENERAL_FAILURE };
    end = at + 2 + len;
    if (buf.length < end + 2) return { kind: "more" };
    host = buf.toString("latin1", at + 2, end);
  } else {
    return { kind: "bad", reason: `address type ${atyp} is not one RFC 1928 defines`, reply: REP.ADDRESS_TYPE_NOT_SUPPORTED };
  }
  return { kind: "ok", size: end + 2, atyp, host, port: buf.readUInt16BE(end) };
}

/** VER REP RSV ATYP BND.ADDR BND.PORT; the bound address is 0.0.0.0:0 where it means nothing (CONNECT). */
export function encodeReply(rep: number, bound: { host: string; port: number } = { host: "0.0.0.0", port: 0 }): Buffer {
  const v6 = isIPv6(bound.host);
  const out = Buffer.alloc(v6 ? 22 : 10);
  out[0] = SOCKS_VERSION;
  out[1] = rep;
  out[3] = v6 ? ATYP_IPV6 : ATYP_IPV4;
  if (v6) out.set(ipv6Bytes(bound.host), 4);
  else if (isIPv4(bound.host)) out.set(bound.host.split(".").map(Number), 4);
  out.writeUInt16BE(bound.port, out.length - 2);
  return out;
}

/** The 16 bytes of an IPv6 address in text form (with "::" and no embedded IPv4, as a bound address is). */
function ipv6Bytes(addr: string): Buffer {
  const out = Buffer.alloc(16);
  const [head, tail] = addr.includes("::") ? addr.split("::") : [addr, ""];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16) || 0, i * 2));
  return out;
}

export interface UdpRequest extends SocksAddress {
  frag: number;
  /** RSV RSV FRAG ATYP DST.ADDR DST.PORT exactly as the client sent it: replies carry it back. */
  header: Buffer;
  data: Buffer;
}

/** RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA (RFC 1928 section 7); at least 10 bytes. */
export function parseUdpRequest(buf: Buffer): { ok: true; value: UdpRequest } | { ok: false; reason: string } {
  if (buf.length < 10) return { ok: false, reason: `${buf.length}-byte datagram, shorter than a SOCKS5 UDP header` };
  if (buf[0] !== 0 || buf[1] !== 0) return { ok: false, reason: "reserved bytes are not zero" };
  const addr = parseAddress(buf, 3);
  if (addr.kind === "more") return { ok: false, reason: "header truncated" };
  if (addr.kind === "bad") return { ok: false, reason: addr.reason };
  return {
    ok: true,
    value: { frag: buf[2], atyp: addr.atyp, host: addr.host, port: addr.port, header: buf.subarray(0, addr.size), data: buf.subarray(addr.size) },
  };
}

/** A UDP reply to the client: `header` (its own request header, FRAG 0) and the payload. */
export function encodeUdpReply(header: Buffer, data: Buffer): Buffer {
  const out = Buffer.allocUnsafe(header.length + data.length);
  header.copy(out, 0);
  out[2] = 0;
  data.copy(out, header.length);
  return out;
}
