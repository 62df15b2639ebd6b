// DER codec for the grants extension: EmberGrants ::= SEQUENCE OF UTF8String.
// Each entry is "kind:value" with kind tenant (exactly one), group, role, or device (at most one: only a user
// certificate carries it, naming the node the person's certificate is bound to; src/pki/user-cert.ts). The decoder is strict
// (definite minimal lengths, only UTF8String members, nothing trailing) because grants decide access.
import { MAX_GRANTS, MAX_GRANT_BYTES, NAME_PATTERN } from "./constants.js";

export interface Grants {
  tenant: string;
  groups: string[];
  roles: string[];
  /** Only in a user certificate: the identity name of the device (node) it is bound to. */
  device?: string;
}

const TAG_SEQUENCE = 0x30;
const TAG_UTF8 = 0x0c;

function encodeLength(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

export function validateGrantValue(kind: string, value: string): void {
  if (!NAME_PATTERN.test(value)) {
    throw new Error(`invalid ${kind} "${value}": use lowercase letters, digits and '-', 1-63 characters`);
  }
}

export function encodeGrants(g: Grants): Uint8Array {
  validateGrantValue("tenant", g.tenant);
  const entries = [`tenant:${g.tenant}`];
  for (const group of g.groups) { validateGrantValue("group", group); entries.push(`group:${group}`); }
  for (const role of g.roles) { validateGrantValue("role", role); entries.push(`role:${role}`); }
  if (g.device !== undefined) { validateGrantValue("device", g.device); entries.push(`device:${g.device}`); }
  if (entries.length > MAX_GRANTS) throw new Error(`too many grants (${entries.length} > ${MAX_GRANTS})`);
  const body: number[] = [];
  for (const e of entries) {
    const bytes = Buffer.from(e, "utf8");
    body.push(TAG_UTF8, ...encodeLength(bytes.length), ...bytes);
  }
  return Uint8Array.from([TAG_SEQUENCE, ...encodeLength(body.length), ...body]);
}

/** Reads one DER TLV header at `off`; returns [tag, contentStart, contentEnd] or throws on non-canonical form. */
function readTlv(der: Uint8Array, off: number): [number, number, number] {
  if (off + 2 > der.length) throw new Error("truncated");
  const tag = der[off];
  let len = der[off + 1];
  let p = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3) throw new Error("unsupported length form");
    if (p + n > der.length) throw new Error("truncated length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[p + i];
    if (der[p] === 0 || len < 0x80) throw new Error("non-minimal length");
    p += n;
  }
  if (p + len > der.length) throw new Error("content runs past end");
  return [tag, p, p + len];
}

export function decodeGrants(der: Uint8Array): Grants {
  const [tag, start, end] = readTlv(der, 0);
  if (tag !== TAG_SEQUENCE) throw new Error("grants: expected SEQUENCE");
  if (end !== der.length) throw new Error("grants: trailing bytes");
  let tenant: string | undefined;
  let device: string | undefined;
  const groups: string[] = [];
  const roles: string[] = [];
  let count = 0;
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for (let p = start; p < end; ) {
    const [t, s, e] = readTlv(der, p);
    if (t !== TAG_UTF8) throw new Error("grants: member is not UTF8String");
    if (e - s > MAX_GRANT_BYTES) throw new Error("grants: member too long");
    if (++count > MAX_GRANTS) throw new Error("grants: too many members");
    const entry = decoder.decode(der.subarray(s, e));
    const colon = entry.indexOf(":");
    if (colon < 0) throw new Error(`grants: entry "${entry}" has no kind`);
    const kind = entry.slice(0, colon);
    const value = entry.slice(colon + 1);
    validateGrantValue(kind, value);
    if (kind === "tenant") {
      if (tenant !== undefined) throw new Error("grants: more than one tenant");
      tenant = value;
    } else if (kind === "group") groups.push(value);
    else if (kind === "role") roles.push(value);
    else if (kind === "device") {
      if (device !== undefined) throw new Error("grants: more than one device");
      device = value;
    }
    else throw new Error(`grants: unknown kind "${kind}"`);
    p = e;
  }
  if (tenant === undefined) throw new Error("grants: no tenant");
  return device === undefined ? { tenant, groups, roles } : { tenant, groups, roles, device };
}
