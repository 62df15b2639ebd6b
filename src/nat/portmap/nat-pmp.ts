// NAT-PMP (RFC 6886): the gateway's external address and UDP mappings. Pure encoders and decoders first
// (tested with the RFC's layouts), then the two exchanges the port mapper runs over udp-request.ts.
import {
  NATPMP_EXTERNAL_ADDRESS_RESPONSE_SIZE, NATPMP_MAP_REQUEST_SIZE, NATPMP_MAP_RESPONSE_SIZE, NATPMP_OP_EXTERNAL_ADDRESS,
  NATPMP_OP_MAP_UDP, NATPMP_RESPONSE_BIT, NATPMP_RESULTS, NATPMP_VERSION,
} from "./constants.js";
import { PortmapError } from "./errors.js";
import { exchange } from "./udp-request.js";

export interface NatPmpAddressResponse { epoch: number; address: string }
export interface NatPmpMapResponse { epoch: number; internalPort: number; externalPort: number; lifetimeS: number }

/** RFC 6886 3.2: version 0, opcode 0, nothing else. */
export function encodeExternalAddressRequest(): Buffer {
  return Buffer.from([NATPMP_VERSION, NATPMP_OP_EXTERNAL_ADDRESS]);
}

/** RFC 6886 3.3 (and 3.4: lifetime 0 with external port 0 deletes the mapping of internalPort). */
export function encodeMapRequest(internalPort: number, suggestedExternalPort: number, lifetimeS: number): Buffer {
  const b = Buffer.alloc(NATPMP_MAP_REQUEST_SIZE);
  b[0] = NATPMP_VERSION;
  b[1] = NATPMP_OP_MAP_UDP;
  b.writeUInt16BE(internalPort, 4);
  b.writeUInt16BE(suggestedExternalPort, 6);
  b.writeUInt32BE(lifetimeS, 8);
  return b;
}

/** Version, opcode and result: a non-success result is an error whatever the rest of the packet holds. */
function checkHeader(msg: Buffer, op: number, size: number): void {
  if (msg.length < 4) throw new PortmapError("nat-pmp", "malformed", `answer of ${msg.length} bytes is shorter than a header`);
  if (msg[0] !== NATPMP_VERSION) throw new PortmapError("nat-pmp", "malformed", `answer has version ${msg[0]}, expected ${NATPMP_VERSION}`);
  if (msg[1] !== op + NATPMP_RESPONSE_BIT) throw new PortmapError("nat-pmp", "malformed", `answer has opcode ${msg[1]}, expected ${op + NATPMP_RESPONSE_BIT}`);
  const result = msg.readUInt16BE(2);
  if (result !== 0) throw new PortmapError("nat-pmp", "refused", `gateway answered result ${result} (${NATPMP_RESULTS[result] ?? "unknown"})`, result);
  if (msg.length < size) throw new PortmapError("nat-pmp", "malformed", `answer of ${msg.length} bytes, expected ${size}`);
}

export function decodeExternalAddressResponse(msg: Buffer): NatPmpAddressResponse {
  checkHeader(msg, NATPMP_OP_EXTERNAL_ADDRESS, NATPMP_EXTERNAL_ADDRESS_RESPONSE_SIZE);
  return { epoch: msg.readUInt32BE(4), address: [...msg.subarray(8, 12)].join(".") };
}

export function decodeMapResponse(msg: Buffer): NatPmpMapResponse {
  checkHeader(msg, NATPMP_OP_MAP_UDP, NATPMP_MAP_RESPONSE_SIZE);
  return { epoch: msg.readUInt32BE(4), internalPort: msg.readUInt16BE(8), externalPort: msg.readUInt16BE(10), lifetimeS: msg.readUInt32BE(12) };
}

/** The answer to our opcode, or undefined for a stray datagram (e.g. an unsolicited address announcement). */
function answerTo(op: number, msg: Buffer): boolean {
  return msg.length >= 2 && msg[1] === op + NATPMP_RESPONSE_BIT;
}

export function natPmpExternalAddress(gateway: string): Promise<NatPmpAddressResponse> {
  return exchange({
    protocol: "nat-pmp", gateway, request: encodeExternalAddressRequest(),
    accept: (m) => (answerTo(NATPMP_OP_EXTERNAL_ADDRESS, m) ? decodeExternalAddressResponse(m) : undefined),
  });
}

export async function natPmpMap(gateway: string, internalPort: number, suggestedExternalPort: number, lifetimeS: number): Promise<NatPmpMapResponse> {
  const r = await exchange<NatPmpMapResponse>({
    protocol: "nat-pmp", gateway, request: encodeMapRequest(internalPort, suggestedExternalPort, lifetimeS),
    accept: (m) => (answerTo(NATPMP_OP_MAP_UDP, m) ? decodeMapResponse(m) : undefined),
  });
  if (r.internalPort !== internalPort) throw new PortmapError("nat-pmp", "malformed", `answer is for internal port ${r.internalPort}, asked ${internalPort}`);
  return r;
}

/** RFC 6886 3.4: a request with lifetime 0 and external port 0 removes our mapping of internalPort. */
export async function natPmpUnmap(gateway: string, internalPort: number): Promise<void> {
  await natPmpMap(gateway, internalPort, 0, 0);
}
