// The part of STUN (RFC 8489) EmberNet speaks, encoded and decoded here: Binding request, success response
// (XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, SOFTWARE, FINGERPRINT) and indication. About a hundred lines instead
// of the `stun` package, whose dependency tree cost every daemon 3.4 MB of resident memory at start
// (docs/performance.md "Memory"); interoperability is tested against coturn's turnutils_stunclient.
import { STUN_HEADER_SIZE, STUN_MAGIC_COOKIE, isStunPacket } from "../wire/constants.js";

export const STUN_BINDING_REQUEST = 0x0001;
export const STUN_BINDING_RESPONSE = 0x0101;
export const STUN_BINDING_INDICATION = 0x0011;
export const STUN_TRANSACTION_ID_BYTES = 12;
export const STUN_SOFTWARE = "embernet";

const ATTR_MAPPED_ADDRESS = 0x0001;
const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
const ATTR_SOFTWARE = 0x8022;
const ATTR_FINGERPRINT = 0x8028;
const FINGERPRINT_XOR = 0x5354554e;
const FAMILY_IPV4 = 0x01;
const FAMILY_IPV6 = 0x02;

export interface StunAddress { address: string; port: number; family: "IPv4" | "IPv6" }

/** A decoded STUN message: its type, transaction ID and the address attributes EmberNet reads. */
export interface StunMessage {
  readonly type: number;
  readonly transactionId: Buffer;
  getXorAddress(): StunAddress | undefined;
  getAddress(): StunAddress | undefined;
}

function header(type: number, bodyLength: number, transactionId: Buffer): Buffer {
  const b = Buffer.alloc(STUN_HEADER_SIZE + bodyLength);
  b.writeUInt16BE(type, 0);
  b.writeUInt16BE(bodyLength, 2);
  b.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  transactionId.copy(b, 8, 0, STUN_TRANSACTION_ID_BYTES);
  return b;
}

export function encodeBindingRequest(transactionId: Buffer): Buffer {
  return header(STUN_BINDING_REQUEST, 0, transactionId);
}

export function encodeBindingIndication(transactionId: Buffer): Buffer {
  return header(STUN_BINDING_INDICATION, 0, transactionId);
}

function addressBytes(address: string): Buffer | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) return Buffer.from(address.split(".").map(Number));
  if (!address.includes(":")) return undefined;
  const [head, tail = ""] = address.split("::");
  const parts = (s: string) => (s ? s.split(":") : []);
  const h = parts(head), t = parts(tail);
  const groups = address.includes("::") ? [...h, ...Array(8 - h.length - t.length).fill("0"), ...t] : h;
  if (groups.length !== 8) return undefined;
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16) & 0xffff, i * 2));
  return b;
}

function addressAttr(type: number, mapped: { address: string; port: number }, transactionId: Buffer, xor: boolean): Buffer {
  const ip = addressBytes(mapped.address);
  if (!ip) throw new Error(`not an IP address: ${mapped.address}`);
  const a = Buffer.alloc(4 + 4 + ip.length);
  a.writeUInt16BE(type, 0);
  a.writeUInt16BE(4 + ip.length, 2);
  a.writeUInt8(ip.length === 4 ? FAMILY_IPV4 : FAMILY_IPV6, 5);
  const mask = Buffer.alloc(16);
  mask.writeUInt32BE(STUN_MAGIC_COOKIE, 0);
  transactionId.copy(mask, 4, 0, STUN_TRANSACTION_ID_BYTES);
  a.writeUInt16BE(xor ? mapped.port ^ (STUN_MAGIC_COOKIE >>> 16) : mapped.port, 6);
  for (let i = 0; i < ip.length; i++) a[8 + i] = xor ? ip[i] ^ mask[i] : ip[i];
  return a;
}

function softwareAttr(): Buffer {
  const v = Buffer.from(STUN_SOFTWARE, "utf8");
  const a = Buffer.alloc(4 + Math.ceil(v.length / 4) * 4);
  a.writeUInt16BE(ATTR_SOFTWARE, 0);
  a.writeUInt16BE(v.length, 2);
  v.copy(a, 4);
  return a;
}

/** A Binding success response carrying XOR-MAPPED-ADDRESS and, for RFC 3489-era clients, MAPPED-ADDRESS. */
export function encodeBindingResponse(transactionId: Buffer, mapped: { address: string; port: number }): Buffer {
  const attrs = Buffer.concat([addressAttr(ATTR_XOR_MAPPED_ADDRESS, mapped, transactionId, true), addressAttr(ATTR_MAPPED_ADDRESS, mapped, transactionId, false), softwareAttr()]);
  const m = header(STUN_BINDING_RESPONSE, attrs.length + 8, transactionId);
  attrs.copy(m, STUN_HEADER_SIZE);
  const at = STUN_HEADER_SIZE + attrs.length;
  m.writeUInt16BE(ATTR_FINGERPRINT, at);
  m.writeUInt16BE(4, at + 2);
  m.writeUInt32BE((crc32(m.subarray(0, at)) ^ FINGERPRINT_XOR) >>> 0, at + 4);
  return m;
}

function readAddress(v: Buffer, xor: boolean, transactionId: Buffer): StunAddress | undefined {
  if (v.length < 8) return undefined;
  const family = v[1];
  const len = family === FAMILY_IPV4 ? 4 : family === FAMILY_IPV6 ? 16 : 0;
  if (!len || v.length < 4 + len) return undefined;
  const mask = Buffer.alloc(16);
  mask.writeUInt32BE(STUN_MAGIC_COOKIE, 0);
  transactionId.copy(mask, 4);
  const port = xor ? v.readUInt16BE(2) ^ (STUN_MAGIC_COOKIE >>> 16) : v.readUInt16BE(2);
  const ip = Buffer.alloc(len);
  for (let i = 0; i < len; i++) ip[i] = xor ? v[4 + i] ^ mask[i] : v[4 + i];
  if (len === 4) return { address: [...ip].join("."), port, family: "IPv4" };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(ip.readUInt16BE(i).toString(16));
  return { address: groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::"), port, family: "IPv6" };
}

/** Decodes a STUN message; undefined for anything that is not a well-formed STUN message. */
export function decodeStun(msg: Buffer): StunMessage | undefined {
  if (!isStunPacket(msg)) return undefined;
  const bodyLen = msg.readUInt16BE(2);
  if (bodyLen % 4 !== 0 || STUN_HEADER_SIZE + bodyLen !== msg.length) return undefined;
  const transactionId = Buffer.from(msg.subarray(8, STUN_HEADER_SIZE));
  const attrs = new Map<number, Buffer>();
  for (let at = STUN_HEADER_SIZE; at < msg.length;) {
    if (at + 4 > msg.length) return undefined;
    const type = msg.readUInt16BE(at), len = msg.readUInt16BE(at + 2);
    if (at + 4 + len > msg.length) return undefined;
    if (!attrs.has(type)) attrs.set(type, msg.subarray(at + 4, at + 4 + len));
    at += 4 + Math.ceil(len / 4) * 4;
  }
  const x = attrs.get(ATTR_XOR_MAPPED_ADDRESS), m = attrs.get(ATTR_MAPPED_ADDRESS);
  return {
    type: msg.readUInt16BE(0),
    transactionId,
    getXorAddress: () => (x ? readAddress(x, true, transactionId) : undefined),
    getAddress: () => (m ? readAddress(m, false, transactionId) : undefined),
  };
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE 802.3), for FINGERPRINT. */
export function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
