// DNS messages (RFC 1035 section 4) as far as the TUN mode's name responder needs them: the header, one
// question, and A answers. Parsing never throws and never reads past the buffer. A compression pointer must
// jump to before the start of the stretch of name it ends, so every jump makes progress towards the header and
// no chain of pointers can loop (their count is bounded too). In a query's question there is nothing earlier to
// point to, so a pointer there is refused: real resolvers never compress the question.
//
// Header (12 bytes, big-endian):
//   0..1 id | 2 QR(1) OPCODE(4) AA(1) TC(1) RD(1) | 3 RA(1) Z(3) RCODE(4) | 4..5 QDCOUNT | 6..7 ANCOUNT
//   8..9 NSCOUNT | 10..11 ARCOUNT
// Question: QNAME (labels: length byte 1-63 then the bytes; 0 ends; 0b11 top bits = 14-bit pointer) QTYPE QCLASS
// Answer:   NAME (here always a pointer to the question, 0xC00C) TYPE CLASS TTL(u32) RDLENGTH RDATA

export const DNS_HEADER_BYTES = 12;
export const DNS_MAX_NAME_BYTES = 255;
export const DNS_MAX_LABEL_BYTES = 63;
/** Pointers followed in one name: a query has no reason for more than a few. */
export const DNS_MAX_POINTERS = 8;

export const QTYPE = { A: 1, AAAA: 28, ANY: 255 } as const;
export const QCLASS_IN = 1;
export const OPCODE_QUERY = 0;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_RD = 0x0100;
const POINTER_TO_QUESTION = 0xc000 | DNS_HEADER_BYTES;

export interface DnsQuestion {
  /** The labels as sent (case kept for the echo, as RFC 1035 asks), joined by "."; "" is the root. */
  name: string;
  /** The name's wire form, uncompressed, to echo in the answer. */
  wire: Buffer;
  type: number;
  class: number;
}

/**
 * What a datagram says, or why it cannot be answered:
 * - `ignore`: shorter than a header, or a response (answering responses lets two servers loop).
 * - `error`: a query we answer with `rcode` and no question (FORMERR, NOTIMP).
 * - `query`: one question.
 */
export type ParsedQuery =
  | { kind: "ignore" }
  | { kind: "error"; id: number; opcode: number; rd: boolean; rcode: number }
  | { kind: "query"; id: number; rd: boolean; question: DnsQuestion };

export function parseQuery(msg: Uint8Array): ParsedQuery {
  if (msg.length < DNS_HEADER_BYTES) return { kind: "ignore" };
  const b = Buffer.from(msg.buffer, msg.byteOffset, msg.length);
  const id = b.readUInt16BE(0);
  const flags = b.readUInt16BE(2);
  if (flags & FLAG_QR) return { kind: "ignore" };
  const opcode = (flags >> 11) & 0xf;
  const rd = (flags & FLAG_RD) !== 0;
  if (opcode !== OPCODE_QUERY) return { kind: "error", id, opcode, rd, rcode: RCODE.NOTIMP };
  const formerr = { kind: "error", id, opcode, rd, rcode: RCODE.FORMERR } as const;
  // One question, and nothing in the answer or authority sections of a query (additional may hold EDNS OPT).
  if (b.readUInt16BE(4) !== 1 || b.readUInt16BE(6) !== 0 || b.readUInt16BE(8) !== 0) return formerr;
  const name = readName(b, DNS_HEADER_BYTES);
  if (!name || name.end + 4 > b.length) return formerr;
  return { kind: "query", id, rd, question: { name: name.labels.join("."), wire: encodeName(name.labels), type: b.readUInt16BE(name.end), class: b.readUInt16BE(name.end + 2) } };
}

/** The labels of the name at `offset` and where the message continues after it; undefined when malformed. */
export function readName(b: Buffer, offset: number): { labels: string[]; end: number } | undefined {
  const labels: string[] = [];
  let pos = offset;
  let end = -1; // after the first pointer, the message continues there
  let segmentStart = offset; // where the stretch of labels being read began (the name, or the last jump's target)
  let bytes = 1; // the root's zero byte
  let pointers = 0;
  for (;;) {
    if (pos >= b.length) return undefined;
    const len = b[pos];
    const top = len & 0xc0;
    if (top === 0xc0) {
      if (pos + 1 >= b.length || ++pointers > DNS_MAX_POINTERS) return undefined;
      const target = ((len & 0x3f) << 8) | b[pos + 1];
      // Before this stretch began: a jump into it (or after it) would read this pointer again, forever.
      if (target >= segmentStart || target < DNS_HEADER_BYTES) return undefined;
      if (end < 0) end = pos + 2;
      pos = segmentStart = target;
      continue;
    }
    if (top !== 0) return undefined; // 0b01 and 0b10 label types are not in use (RFC 6891 retired them)
    if (len === 0) return { labels, end: end < 0 ? pos + 1 : end };
    if (pos + 1 + len > b.length) return undefined;
    bytes += len + 1;
    if (bytes > DNS_MAX_NAME_BYTES) return undefined;
    labels.push(b.toString("latin1", pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
}

function encodeName(labels: string[]): Buffer {
  const parts: Buffer[] = [];
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l, "latin1"));
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

export interface DnsResponse {
  id: number;
  opcode?: number;
  rd: boolean;
  rcode: number;
  /** Echoed when the query had a well-formed one. */
  question?: DnsQuestion;
  /** IPv4 addresses for the question's name (A records). */
  a?: { ip: string; ttl: number }[];
}

/** An authoritative (AA), non-recursive (RA = 0) response; A answers name the question by pointer. */
export function encodeResponse(r: DnsResponse): Buffer {
  const answers = r.question ? r.a ?? [] : [];
  const qlen = r.question ? r.question.wire.length + 4 : 0;
  const out = Buffer.alloc(DNS_HEADER_BYTES + qlen + answers.length * 16);
  out.writeUInt16BE(r.id, 0);
  out.writeUInt16BE(FLAG_QR | ((r.opcode ?? OPCODE_QUERY) << 11) | (r.question ? FLAG_AA : 0) | (r.rd ? FLAG_RD : 0) | (r.rcode & 0xf), 2);
  out.writeUInt16BE(r.question ? 1 : 0, 4);
  out.writeUInt16BE(answers.length, 6);
  let pos = DNS_HEADER_BYTES;
  if (r.question) {
    r.question.wire.copy(out, pos);
    pos += r.question.wire.length;
    out.writeUInt16BE(r.question.type, pos);
    out.writeUInt16BE(r.question.class, pos + 2);
    pos += 4;
  }
  for (const a of answers) {
    out.writeUInt16BE(POINTER_TO_QUESTION, pos);
    out.writeUInt16BE(QTYPE.A, pos + 2);
    out.writeUInt16BE(QCLASS_IN, pos + 4);
    out.writeUInt32BE(a.ttl, pos + 6);
    out.writeUInt16BE(4, pos + 10);
    const octets = a.ip.split(".").map(Number);
    for (let i = 0; i < 4; i++) out[pos + 12 + i] = octets[i];
    pos += 16;
  }
  return out;
}
