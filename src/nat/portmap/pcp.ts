// PCP (RFC 6887): MAP requests for one UDP port, and ANNOUNCE to see whether a PCP server is there.
// Pure encoders and decoders first, then the exchanges. A mapping is renewed and deleted with the nonce
// it was created with (RFC 6887 11.1), so the caller keeps the nonce beside the mapping.
import { randomBytes } from "node:crypto";
import { isIPv4 } from "node:net";
import {
  IPPROTO_UDP, PCP_HEADER_SIZE, PCP_MAP_BODY_SIZE, PCP_MAP_NONCE_SIZE, PCP_MAX_MESSAGE, PCP_OP_ANNOUNCE, PCP_OP_MAP,
  PCP_RESPONSE_BIT, PCP_RESULTS, PCP_VERSION,
} from "./constants.js";
import { PortmapError } from "./errors.js";
import { exchangeOn, gatewaySocket } from "./udp-request.js";

export interface PcpMapRequest {
  clientAddress: string;
  nonce: Buffer;
  internalPort: number;
  suggestedExternalPort: number;
  suggestedExternalAddress?: string;
  lifetimeS: number;
}
export interface PcpResponseHeader { opcode: number; result: number; lifetimeS: number; epoch: number }
export interface PcpMapResponse extends PcpResponseHeader {
  nonce: Buffer;
  protocol: number;
  internalPort: number;
  externalPort: number;
  externalAddress: string;
}

/** IPv4 as the IPv4-mapped IPv6 address PCP carries everywhere (RFC 6887 5: ::ffff:a.b.c.d); :: for "any". */
export function encodeAddress(ip: string | undefined, into: Buffer, at: number): void {
  into.fill(0, at, at + 16);
  if (!ip) return;
  if (!isIPv4(ip)) throw new Error(`PCP client here speaks IPv4 only, got "${ip}"`);
  into[at + 10] = 0xff;
  into[at + 11] = 0xff;
  ip.split(".").forEach((o, i) => { into[at + 12 + i] = Number(o); });
}

export function decodeAddress(b: Buffer, at: number): string {
  const mapped = b.subarray(at, at + 10).every((x) => x === 0) && b[at + 10] === 0xff && b[at + 11] === 0xff;
  if (mapped) return [...b.subarray(at + 12, at + 16)].join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(at + i).toString(16));
  return groups.join(":");
}

function header(opcode: number, lifetimeS: number, clientAddress: string, bodySize: number): Buffer {
  const b = Buffer.alloc(PCP_HEADER_SIZE + bodySize);
  b[0] = PCP_VERSION;
  b[1] = opcode;
  b.writeUInt32BE(lifetimeS, 4);
  encodeAddress(clientAddress, b, 8);
  return b;
}

/** RFC 6887 14.1 ANNOUNCE: a bare header with lifetime 0. */
export function encodeAnnounceRequest(clientAddress: string): Buffer {
  return header(PCP_OP_ANNOUNCE, 0, clientAddress, 0);
}

/** RFC 6887 11.1 MAP for UDP; lifetime 0 deletes the mapping the nonce created (15). */
export function encodeMapRequest(r: PcpMapRequest): Buffer {
  if (r.nonce.length !== PCP_MAP_NONCE_SIZE) throw new Error(`PCP nonce must be ${PCP_MAP_NONCE_SIZE} bytes`);
  const b = header(PCP_OP_MAP, r.lifetimeS, r.clientAddress, PCP_MAP_BODY_SIZE);
  const at = PCP_HEADER_SIZE;
  r.nonce.copy(b, at);
  b[at + 12] = IPPROTO_UDP;
  b.writeUInt16BE(r.internalPort, at + 16);
  b.writeUInt16BE(r.suggestedExternalPort, at + 18);
  encodeAddress(r.suggestedExternalAddress, b, at + 20);
  return b;
}

/** RFC 6887 7.2 response header; a non-success result is an error naming the result. */
export function decodeResponseHeader(msg: Buffer): PcpResponseHeader {
  // A NAT-PMP-only gateway answers a PCP request with its own 8-byte "unsupported version" (RFC 6887 9).
  if (msg.length >= 4 && msg[0] === 0) throw new PortmapError("pcp", "refused", "gateway speaks NAT-PMP (version 0) only", msg.readUInt16BE(2));
  if (msg.length < PCP_HEADER_SIZE) throw new PortmapError("pcp", "malformed", `answer of ${msg.length} bytes is shorter than a header`);
  if (msg.length > PCP_MAX_MESSAGE || msg.length % 4 !== 0) throw new PortmapError("pcp", "malformed", `answer of ${msg.length} bytes is not a PCP message`);
  if (!(msg[1] & PCP_RESPONSE_BIT)) throw new PortmapError("pcp", "malformed", "answer has no response bit");
  const h = { opcode: msg[1] & ~PCP_RESPONSE_BIT, result: msg[3], lifetimeS: msg.readUInt32BE(4), epoch: msg.readUInt32BE(8) };
  // A version we do not speak comes back as UNSUPP_VERSION with the server's version in byte 0 (RFC 6887 9).
  if (h.result !== 0) throw new PortmapError("pcp", "refused", `gateway answered result ${h.result} (${PCP_RESULTS[h.result] ?? "unknown"})`, h.result);
  if (msg[0] !== PCP_VERSION) throw new PortmapError("pcp", "malformed", `answer has version ${msg[0]}, expected ${PCP_VERSION}`);
  return h;
}

export function decodeMapResponse(msg: Buffer): PcpMapResponse {
  const h = decodeResponseHeader(msg);
  if (h.opcode !== PCP_OP_MAP) throw new PortmapError("pcp", "malformed", `answer has opcode ${h.opcode}, expected MAP`);
  if (msg.length < PCP_HEADER_SIZE + PCP_MAP_BODY_SIZE) throw new PortmapError("pcp", "malformed", `MAP answer of ${msg.length} bytes is too short`);
  const at = PCP_HEADER_SIZE;
  return {
    ...h,
    nonce: Buffer.from(msg.subarray(at, at + 12)),
    protocol: msg[at + 12],
    internalPort: msg.readUInt16BE(at + 16),
    externalPort: msg.readUInt16BE(at + 18),
    externalAddress: decodeAddress(msg, at + 20),
  };
}

export function newNonce(): Buffer {
  return randomBytes(PCP_MAP_NONCE_SIZE);
}

function isAnswerTo(opcode: number, msg: Buffer): boolean {
  return msg.length >= 2 && msg[1] === (opcode | PCP_RESPONSE_BIT);
}

/** Is a PCP server there? Resolves with the header of its ANNOUNCE answer. */
export async function pcpAnnounce(gateway: string): Promise<PcpResponseHeader> {
  const sock = await gatewaySocket(gateway);
  try {
    const request = encodeAnnounceRequest(sock.address().address);
    return await exchangeOn(sock, { protocol: "pcp", gateway, request, accept: (m) => (isAnswerTo(PCP_OP_ANNOUNCE, m) ? decodeResponseHeader(m) : undefined) });
  } finally { sock.close(); }
}

/**
 * MAP (or, with lifetime 0, delete) our UDP internalPort. The client address in the request must be the
 * source address the server sees (else ADDRESS_MISMATCH): the local address of a socket connected to it.
 */
export async function pcpMap(gateway: string, req: Omit<PcpMapRequest, "clientAddress">): Promise<PcpMapResponse> {
  const sock = await gatewaySocket(gateway);
  try {
    const request = encodeMapRequest({ ...req, clientAddress: sock.address().address });
    const r = await exchangeOn<PcpMapResponse>(sock, {
      protocol: "pcp", gateway, request,
      // Another mapping's answer (other nonce) is not ours: keep waiting.
      accept: (m) => {
        if (!isAnswerTo(PCP_OP_MAP, m)) return undefined;
        if (m.length < PCP_HEADER_SIZE + PCP_MAP_BODY_SIZE) return decodeMapResponse(m); // throws the reason
        return m.subarray(PCP_HEADER_SIZE, PCP_HEADER_SIZE + 12).equals(req.nonce) ? decodeMapResponse(m) : undefined;
      },
    });
    if (r.internalPort !== req.internalPort) throw new PortmapError("pcp", "malformed", `answer is for internal port ${r.internalPort}, asked ${req.internalPort}`);
    return r;
  } finally { sock.close(); }
}
