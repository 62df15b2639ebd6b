// Path probe and its reply (inner kinds PATH_PROBE and PATH_PROBE_REPLY, src/nat/paths.ts), one layout for both:
//   0..7  probe id   8  sender's no-NAT byte (1: the sender's STUN-observed address is its own)   9..  reserved
// Release 0.1.0 (protocol 1) sends and accepts exactly 9 bytes. From protocol 2 a probe or reply longer than 9
// bytes is read as its first 9, so a newer release may append fields; it must send them only to peers whose
// protocol reads them (src/wire/protocol.ts), since 0.1.0 ignores a probe of any other length.
export const PROBE_ID_BYTES = 8;
export const PROBE_PAYLOAD_BYTES = PROBE_ID_BYTES + 1;

export interface Probe { id: Uint8Array; noNat: boolean }

export function encodeProbe(id: Uint8Array, noNat: boolean): Buffer {
  const p = Buffer.allocUnsafe(PROBE_PAYLOAD_BYTES);
  p.set(id.subarray(0, PROBE_ID_BYTES), 0);
  p[PROBE_ID_BYTES] = noNat ? 1 : 0;
  return p;
}

/** The probe in a payload, or undefined when it is too short to be one (the id is a view into the payload). */
export function decodeProbe(payload: Uint8Array): Probe | undefined {
  if (payload.length < PROBE_PAYLOAD_BYTES) return undefined;
  return { id: payload.subarray(0, PROBE_ID_BYTES), noNat: payload[PROBE_ID_BYTES] === 1 };
}
