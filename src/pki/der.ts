// A small DER encoder and a strict reader, for the two hot structures of enrollment: the leaf certificate the
// coordination server issues and the PKCS#10 request a node sends. Building these with @peculiar/x509's object
// model cost ~11 ms per leaf and ~3 ms per CSR (WebCrypto key import, ASN.1 schema reflection); the DER here is
// assembled from bytes and signed with node:crypto (docs/performance.md, "Coordination server").
// @peculiar/x509 stays the reference: test/pki/der.test.ts holds both outputs byte for byte equal (Ed25519
// signatures are deterministic), and it still builds the CA certificates and the tests' crafted ones.

export const TAG = {
  BOOLEAN: 0x01, INTEGER: 0x02, BIT_STRING: 0x03, OCTET_STRING: 0x04, OID: 0x06, UTF8: 0x0c,
  PRINTABLE: 0x13, IA5: 0x16, UTC_TIME: 0x17, GENERALIZED_TIME: 0x18, SEQUENCE: 0x30, SET: 0x31,
} as const;

// ---- encoding ----------------------------------------------------------------------------------------

function lengthBytes(n: number): number[] {
  if (n < 0x80) return [n];
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return [0x80 | out.length, ...out];
}

/** One TLV: tag, minimal definite length, the concatenated contents. */
export function tlv(tag: number, ...content: Uint8Array[]): Buffer {
  let len = 0;
  for (const c of content) len += c.length;
  return Buffer.concat([Buffer.from([tag, ...lengthBytes(len)]), ...content], 1 + lengthBytes(len).length + len);
}

export const seq = (...c: Uint8Array[]): Buffer => tlv(TAG.SEQUENCE, ...c);

/** OBJECT IDENTIFIER from its dotted form. */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split(".").map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) throw new Error(`bad OID "${dotted}"`);
  const out: number[] = [];
  const base128 = (v: number) => {
    const b = [v & 0x7f];
    for (v = Math.floor(v / 128); v > 0; v = Math.floor(v / 128)) b.unshift(0x80 | (v & 0x7f));
    out.push(...b);
  };
  base128(arcs[0] * 40 + arcs[1]);
  for (const a of arcs.slice(2)) base128(a);
  return tlv(TAG.OID, Buffer.from(out));
}

/** A non-negative INTEGER from big-endian magnitude bytes (hex), minimal, with a 00 pad when the top bit is set. */
export function uintFromHex(hex: string): Buffer {
  if (!/^[0-9a-f]+$/i.test(hex) || hex.length % 2) throw new Error(`bad integer hex "${hex}"`);
  let b = Buffer.from(hex, "hex");
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && !(b[i + 1] & 0x80)) i++;
  b = b.subarray(i);
  return tlv(TAG.INTEGER, b[0] & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}

/** X.509 Time: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5); whole seconds. */
export function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, "");
  const year = d.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new Error(`date ${iso} is outside X.509 Time`);
  return year < 2050 ? tlv(TAG.UTC_TIME, Buffer.from(digits.slice(2) + "Z", "latin1")) : tlv(TAG.GENERALIZED_TIME, Buffer.from(digits + "Z", "latin1"));
}

export const bool = (v: boolean): Buffer => tlv(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0x00]));
export const octets = (b: Uint8Array): Buffer => tlv(TAG.OCTET_STRING, b);
/** BIT STRING of whole bytes (0 unused bits). */
export const bits = (b: Uint8Array): Buffer => tlv(TAG.BIT_STRING, Buffer.from([0]), b);

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;
const OID_CN = oid("2.5.4.3");

/** Name with one CN attribute: PrintableString when the value allows it, else UTF8String (as @peculiar/x509 does). */
export function cnName(cn: string): Buffer {
  const value = PRINTABLE.test(cn) ? tlv(TAG.PRINTABLE, Buffer.from(cn, "latin1")) : tlv(TAG.UTF8, Buffer.from(cn, "utf8"));
  return seq(tlv(TAG.SET, seq(OID_CN, value)));
}

// ---- strict reading ----------------------------------------------------------------------------------

export class DerError extends Error {}

export interface Tlv {
  tag: number;
  /** Offsets into the input: the whole element [start, end), its contents [contentStart, end). */
  start: number;
  contentStart: number;
  end: number;
}

/** Reads the TLV at `off` inside [off, limit): single-byte tags, definite minimal lengths only. */
export function readTlv(der: Uint8Array, off: number, limit = der.length): Tlv {
  if (off + 2 > limit) throw new DerError("truncated element");
  const tag = der[off];
  if ((tag & 0x1f) === 0x1f) throw new DerError("multi-byte tags are not used here");
  let len = der[off + 1];
  let p = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError("indefinite length (BER, not DER)");
    if (n > 3) throw new DerError("length too large");
    if (p + n > limit) throw new DerError("truncated length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[p + i];
    if (der[p] === 0 || len < 0x80) throw new DerError("non-minimal length");
    p += n;
  }
  if (p + len > limit) throw new DerError("content runs past its container");
  return { tag, start: off, contentStart: p, end: p + len };
}

/** The elements directly inside a constructed element, each checked to lie within it. */
export function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let p = parent.contentStart; p < parent.end; ) {
    const t = readTlv(der, p, parent.end);
    out.push(t);
    p = t.end;
  }
  return out;
}

export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t) throw new DerError(`${what}: missing`);
  if (t.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, found 0x${t.tag.toString(16)}`);
  return t;
}

export function contentOf(der: Uint8Array, t: Tlv): Uint8Array {
  return der.subarray(t.contentStart, t.end);
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** The first CN of a Name (PrintableString, UTF8String or IA5String), or undefined. */
export function readCommonName(der: Uint8Array, name: Tlv): string | undefined {
  for (const rdn of children(der, expectTag(name, TAG.SEQUENCE, "name"))) {
    for (const atv of children(der, expectTag(rdn, TAG.SET, "relative distinguished name"))) {
      const [type, value] = children(der, expectTag(atv, TAG.SEQUENCE, "attribute"));
      expectTag(type, TAG.OID, "attribute type");
      if (!value) throw new DerError("attribute without a value");
      if (!sameBytes(der.subarray(type.start, type.end), OID_CN)) continue;
      const bytes = contentOf(der, value);
      if (value.tag === TAG.UTF8) return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      if (value.tag === TAG.PRINTABLE || value.tag === TAG.IA5) {
        const s = Buffer.from(bytes).toString("latin1");
        if (!/^[\x20-\x7e]*$/.test(s)) throw new DerError("common name holds non-printable characters");
        return s;
      }
      throw new DerError(`common name in an unsupported string type (tag 0x${value.tag.toString(16)})`);
    }
  }
  return undefined;
}

/** Dotted form of an OBJECT IDENTIFIER's contents; throws on a non-minimal or truncated arc. */
export function readOid(content: Uint8Array): string {
  if (content.length === 0) throw new DerError("empty OID");
  const arcs: number[] = [];
  let v = 0;
  for (let i = 0; i < content.length; i++) {
    const b = content[i];
    if (v === 0 && b === 0x80) throw new DerError("non-minimal OID arc");
    v = v * 128 + (b & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) throw new DerError("OID arc too large");
    if (!(b & 0x80)) {
      if (arcs.length === 0) arcs.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else arcs.push(v);
      v = 0;
    } else if (i === content.length - 1) throw new DerError("truncated OID");
  }
  return arcs.join(".");
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), the only forms RFC 5280 allows. */
export function readTime(der: Uint8Array, t: Tlv): Date {
  const s = Buffer.from(contentOf(der, t)).toString("latin1");
  let m: RegExpExecArray | null;
  let year: number;
  if (t.tag === TAG.UTC_TIME && (m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s))) {
    year = Number(m[1]) + (Number(m[1]) < 50 ? 2000 : 1900);
  } else if (t.tag === TAG.GENERALIZED_TIME && (m = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s))) {
    year = Number(m[1]);
  } else throw new DerError(`time "${s.slice(0, 20)}" is not UTCTime or GeneralizedTime in DER form`);
  const [mo, d, h, mi, se] = [2, 3, 4, 5, 6].map((i) => Number(m![i]));
  const ms = Date.UTC(year, mo - 1, d, h, mi, se);
  const back = new Date(ms);
  if (back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || se > 59) throw new DerError(`time "${s}" is not a valid date`);
  return back;
}

const NAME_TYPES: Record<string, string> = {
  "2.5.4.3": "CN", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.6": "C",
  "0.9.2342.19200300.100.1.25": "DC", "1.2.840.113549.1.9.1": "E", "2.5.4.42": "G", "2.5.4.43": "I", "2.5.4.4": "SN", "2.5.4.12": "T",
};

function escapeDn(v: string): string {
  // As @peculiar/x509's Name.toString() (the format certificates' subjects were always shown in).
  return v.replace(/([,+"\\<>;])/g, "\\$1").replace(/^([ #])/, "\\$1").replace(/([ ]$)/, "\\$1")
    .replace(/([\r\n\t])/, (c) => `\\${Buffer.from(c, "utf8").toString("hex").toUpperCase()}`);
}

/**
 * A Name as text ("CN=web-1, O=acme"), in @peculiar/x509's format, for the string types certificates use;
 * undefined for anything else (the caller then asks @peculiar/x509).
 */
export function nameText(der: Uint8Array, name: Tlv): string | undefined {
  const rdns: string[] = [];
  for (const rdn of children(der, expectTag(name, TAG.SEQUENCE, "name"))) {
    const parts: string[] = [];
    for (const atv of children(der, expectTag(rdn, TAG.SET, "relative distinguished name"))) {
      const [type, value, extra] = children(der, expectTag(atv, TAG.SEQUENCE, "attribute"));
      if (!value || extra) throw new DerError("attribute is not a type and a value");
      const label = NAME_TYPES[readOid(contentOf(der, expectTag(type, TAG.OID, "attribute type")))];
      if (!label) return undefined;
      const bytes = contentOf(der, value);
      let text: string;
      if (value.tag === TAG.UTF8) text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      else if (value.tag === TAG.PRINTABLE || value.tag === TAG.IA5) {
        text = Buffer.from(bytes).toString("latin1");
        if (!/^[\x20-\x7e]*$/.test(text)) return undefined;
      } else return undefined;
      parts.push(`${label}=${escapeDn(text)}`);
    }
    rdns.push(parts.join("+"));
  }
  return rdns.join(", ");
}
