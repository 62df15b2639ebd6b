// Parsing of one certificate into the facts the verifier and the CLI need. Parsing is not trust:
// nothing here says a certificate is valid, only what it claims.
import { createHash, X509Certificate as NodeX509, type KeyObject } from "node:crypto";
import { x509 } from "./x509-provider.js";
import { publicKeyFromSpki } from "./keys.js";
import {
  OID_BASIC_CONSTRAINTS, OID_EKU_CLIENT_AUTH, OID_EKU_SERVER_AUTH, OID_EMBER_GRANTS, OID_EXT_KEY_USAGE,
  OID_KEY_USAGE, OID_SUBJECT_ALT_NAME, OID_SUBJECT_KEY_ID, OID_AUTHORITY_KEY_ID, UNDERSTOOD_CRITICAL,
} from "./constants.js";
import { decodeGrants, type Grants } from "./grants.js";
import { ab, PkiInputError } from "./pem.js";
import { children, contentOf, DerError, expectTag, nameText, readCommonName, readOid, readTime, readTlv, sameBytes, TAG, type Tlv } from "./der.js";

export interface ParsedCertificate {
  der: Uint8Array;
  /** Hex SHA-256 of the DER: the certificate's fingerprint and cache key. */
  fingerprint: string;
  /** node's own parse of the DER, made on first use (signatures of other algorithms than Ed25519, tools). */
  readonly native: NodeX509;
  /** The SubjectPublicKeyInfo, DER. */
  spki: Uint8Array;
  /** The subject's public key (from the SPKI), made on first use. */
  readonly publicKey: KeyObject;
  /** Signed bytes and signature, when the certificate is signed with Ed25519 (both algorithm fields say so). */
  ed25519?: { tbs: Uint8Array; signature: Uint8Array };
  subject: string;
  issuer: string;
  commonName: string | undefined;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  pathLength: number | undefined;
  /** KeyUsageFlags bitmask, undefined when the extension is absent. */
  keyUsage: number | undefined;
  extKeyUsage: string[] | undefined;
  uris: string[];
  /** Decoded grants, or the decoding error; undefined when the extension is absent. */
  grants: Grants | Error | undefined;
  unknownCritical: string[];
  selfIssued: boolean;
  /** Hex key identifiers (SKI of this key, AKI naming the issuer's key) when present. */
  subjectKeyId: string | undefined;
  authorityKeyId: string | undefined;
}

/** X.509 key usage flags, bit i of the named-bit BIT STRING as 1 << i (the values of @peculiar/x509's KeyUsageFlags). */
export const KeyUsage = {
  digitalSignature: 1, nonRepudiation: 2, keyEncipherment: 4, dataEncipherment: 8, keyAgreement: 16,
  keyCertSign: 32, cRLSign: 64, encipherOnly: 128, decipherOnly: 256,
} as const;
export const EKU_SERVER_AUTH = OID_EKU_SERVER_AUTH;
export const EKU_CLIENT_AUTH = OID_EKU_CLIENT_AUTH;

export function parseCertificate(der: Uint8Array): ParsedCertificate {
  let tbs: TbsFields;
  try {
    tbs = readTbs(der);
  } catch (err) {
    throw new PkiInputError(`not a DER X.509 certificate (${(err as Error).message})`);
  }
  let isCa = false, pathLength: number | undefined, keyUsage: number | undefined, extKeyUsage: string[] | undefined;
  let grants: Grants | Error | undefined;
  let subjectKeyId: string | undefined, authorityKeyId: string | undefined;
  const uris: string[] = [];
  const unknownCritical: string[] = [];
  for (const ext of tbs.extensions) {
    try {
      const whole = (): Tlv => {
        const t = readTlv(ext.value, 0);
        if (t.end !== ext.value.length) throw new DerError("trailing bytes");
        return t;
      };
      switch (ext.type) {
        case OID_BASIC_CONSTRAINTS: {
          const [a, b, extra] = children(ext.value, expectTag(whole(), TAG.SEQUENCE, "basicConstraints"));
          if (extra) throw new DerError("too many fields");
          let len = a;
          isCa = false; pathLength = undefined;
          if (a?.tag === TAG.BOOLEAN) {
            const c = contentOf(ext.value, a);
            if (c.length !== 1 || (c[0] !== 0 && c[0] !== 0xff)) throw new DerError("bad BOOLEAN");
            isCa = c[0] === 0xff;
            len = b;
          } else if (b) throw new DerError("too many fields");
          if (len) pathLength = readSmallUint(ext.value, expectTag(len, TAG.INTEGER, "pathLenConstraint"));
          break;
        }
        case OID_KEY_USAGE: {
          const c = contentOf(ext.value, expectTag(whole(), TAG.BIT_STRING, "keyUsage"));
          if (c.length < 1 || c[0] > 7 || (c.length === 1 && c[0] !== 0) || c.length > 3) throw new DerError("bad BIT STRING");
          let flags = 0;
          for (let i = 0; i < (c.length - 1) * 8 - c[0]; i++) if (c[1 + (i >> 3)] & (0x80 >> (i & 7))) flags |= 1 << i;
          keyUsage = flags;
          break;
        }
        case OID_EXT_KEY_USAGE:
          extKeyUsage = children(ext.value, expectTag(whole(), TAG.SEQUENCE, "extKeyUsage")).map((o) => readOid(contentOf(ext.value, expectTag(o, TAG.OID, "key purpose"))));
          break;
        case OID_SUBJECT_ALT_NAME:
          for (const n of children(ext.value, expectTag(whole(), TAG.SEQUENCE, "subjectAltName"))) {
            if (n.tag === 0x86) uris.push(Buffer.from(contentOf(ext.value, n)).toString("latin1"));
          }
          break;
        case OID_SUBJECT_KEY_ID: subjectKeyId = Buffer.from(contentOf(ext.value, expectTag(whole(), TAG.OCTET_STRING, "subjectKeyIdentifier"))).toString("hex"); break;
        case OID_AUTHORITY_KEY_ID: {
          const id = children(ext.value, expectTag(whole(), TAG.SEQUENCE, "authorityKeyIdentifier")).find((f) => f.tag === 0x80);
          authorityKeyId = id ? Buffer.from(contentOf(ext.value, id)).toString("hex") : undefined;
          break;
        }
        case OID_EMBER_GRANTS:
          try { grants = decodeGrants(ext.value); } catch (err) { grants = err as Error; }
          break;
        default:
          if (ext.critical && !UNDERSTOOD_CRITICAL.has(ext.type)) unknownCritical.push(ext.type);
      }
    } catch (err) {
      throw new PkiInputError(`extension ${ext.type} is malformed (${(err as Error).message})`);
    }
  }
  return new Certificate(der, tbs, {
    isCa, pathLength, keyUsage, extKeyUsage, uris, grants, unknownCritical, subjectKeyId, authorityKeyId,
  });
}

type ExtensionFacts = Pick<ParsedCertificate,
  "isCa" | "pathLength" | "keyUsage" | "extKeyUsage" | "uris" | "grants" | "unknownCritical" | "subjectKeyId" | "authorityKeyId">;

/**
 * A parsed certificate with one fixed shape: every field set in the constructor, the lazy ones behind prototype
 * getters. An object literal with getters was a dictionary-mode object (1.6 KB of property table) whose getters'
 * closure kept the whole TBS parse alive: the verifier caches one per connected node.
 */
class Certificate implements ParsedCertificate {
  readonly fingerprint: string;
  readonly spki: Uint8Array;
  readonly ed25519: { tbs: Uint8Array; signature: Uint8Array } | undefined;
  readonly subject: string;
  readonly issuer: string;
  readonly commonName: string | undefined;
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly isCa: boolean;
  readonly pathLength: number | undefined;
  readonly keyUsage: number | undefined;
  readonly extKeyUsage: string[] | undefined;
  readonly uris: string[];
  readonly grants: Grants | Error | undefined;
  readonly unknownCritical: string[];
  readonly selfIssued: boolean;
  readonly subjectKeyId: string | undefined;
  readonly authorityKeyId: string | undefined;
  #native: NodeX509 | undefined = undefined;
  #publicKey: KeyObject | undefined = undefined;

  constructor(readonly der: Uint8Array, tbs: TbsFields, ext: ExtensionFacts) {
    this.fingerprint = createHash("sha256").update(der).digest("hex");
    this.spki = tbs.spki;
    this.ed25519 = tbs.ed25519;
    this.subject = tbs.subject;
    this.issuer = tbs.issuer;
    this.commonName = tbs.commonName;
    this.serial = tbs.serial;
    this.notBefore = tbs.notBefore;
    this.notAfter = tbs.notAfter;
    this.isCa = ext.isCa;
    this.pathLength = ext.pathLength;
    this.keyUsage = ext.keyUsage;
    this.extKeyUsage = ext.extKeyUsage;
    this.uris = ext.uris;
    this.grants = ext.grants;
    this.unknownCritical = ext.unknownCritical;
    this.selfIssued = tbs.subject === tbs.issuer;
    this.subjectKeyId = ext.subjectKeyId;
    this.authorityKeyId = ext.authorityKeyId;
  }

  get native(): NodeX509 {
    return (this.#native ??= new NodeX509(this.der));
  }

  get publicKey(): KeyObject {
    return (this.#publicKey ??= publicKeyFromSpki(this.spki));
  }
}

interface TbsFields {
  serial: string;
  issuer: string;
  subject: string;
  commonName: string | undefined;
  notBefore: Date;
  notAfter: Date;
  extensions: { type: string; critical: boolean; value: Uint8Array }[];
  spki: Uint8Array;
  ed25519?: { tbs: Uint8Array; signature: Uint8Array };
}

const ED25519_ALGORITHM = Buffer.from("300506032b6570", "hex");

/**
 * The TBSCertificate fields parseCertificate reports, read with the strict DER reader (src/pki/der.ts): about
 * 20x faster than @peculiar/x509's schema parser, which the verifier paid for every certificate it had not
 * seen (test/pki/der.test.ts compares the two on every profile).
 */
function readTbs(der: Uint8Array): TbsFields {
  const top = expectTag(readTlv(der, 0), TAG.SEQUENCE, "certificate");
  if (top.end !== der.length) throw new DerError("trailing bytes after the certificate");
  const [tbsT, algT, sigT, extra] = children(der, top);
  if (extra || !algT || !sigT) throw new DerError("a certificate has three fields");
  const f = children(der, expectTag(tbsT, TAG.SEQUENCE, "tbsCertificate"));
  let i = 0;
  if (f[0]?.tag === 0xa0) i++;
  const serialT = expectTag(f[i++], TAG.INTEGER, "serialNumber");
  const innerAlgT = expectTag(f[i++], TAG.SEQUENCE, "signature");
  const issuerT = expectTag(f[i++], TAG.SEQUENCE, "issuer");
  const [nb, na, vx] = children(der, expectTag(f[i++], TAG.SEQUENCE, "validity"));
  if (!nb || !na || vx) throw new DerError("validity has two times");
  const subjectT = expectTag(f[i++], TAG.SEQUENCE, "subject");
  const spkiT = expectTag(f[i++], TAG.SEQUENCE, "subjectPublicKeyInfo");
  const extensions: TbsFields["extensions"] = [];
  for (; i < f.length; i++) {
    if (f[i].tag === 0x81 || f[i].tag === 0x82) continue; // unique identifiers
    const [list, more] = children(der, expectTag(f[i], 0xa3, "extensions"));
    if (more) throw new DerError("extensions hold one SEQUENCE");
    for (const e of children(der, expectTag(list, TAG.SEQUENCE, "extensions"))) {
      const [idT, b, c, d] = children(der, expectTag(e, TAG.SEQUENCE, "extension"));
      const type = readOid(contentOf(der, expectTag(idT, TAG.OID, "extnID")));
      let critical = false;
      let valueT = b;
      if (b?.tag === TAG.BOOLEAN) {
        const v = contentOf(der, b);
        if (v.length !== 1 || (v[0] !== 0 && v[0] !== 0xff)) throw new DerError("bad BOOLEAN");
        critical = v[0] === 0xff;
        valueT = c;
        if (d) throw new DerError("extension has extra fields");
      } else if (c) throw new DerError("extension has extra fields");
      extensions.push({ type, critical, value: contentOf(der, expectTag(valueT, TAG.OCTET_STRING, "extnValue")) });
    }
  }
  const text = (t: Tlv) => nameText(der, t) ?? new (x509().Name)(ab(der.slice(t.start, t.end))).toString();
  return {
    serial: serialHex(contentOf(der, serialT)),
    issuer: text(issuerT),
    subject: text(subjectT),
    commonName: readCommonName(der, subjectT),
    notBefore: readTime(der, nb),
    notAfter: readTime(der, na),
    extensions,
    spki: der.subarray(spkiT.start, spkiT.end),
    ed25519: ed25519Signature(der, tbsT, innerAlgT, algT, sigT),
  };
}

/** Ed25519 signed: both algorithm fields name it without parameters, the signature is 64 whole bytes. */
function ed25519Signature(der: Uint8Array, tbsT: Tlv, innerAlg: Tlv, outerAlg: Tlv, sigT: Tlv): { tbs: Uint8Array; signature: Uint8Array } | undefined {
  const alg = (t: Tlv) => der.subarray(t.start, t.end);
  if (!sameBytes(alg(innerAlg), ED25519_ALGORITHM) || !sameBytes(alg(outerAlg), ED25519_ALGORITHM) || sigT.tag !== TAG.BIT_STRING) return undefined;
  const sig = contentOf(der, sigT);
  if (sig.length !== 65 || sig[0] !== 0) return undefined;
  return { tbs: der.subarray(tbsT.start, tbsT.end), signature: sig.subarray(1) };
}

/** The serial as lowercase hex, without the 00 that keeps a high first byte positive (as @peculiar/x509 reported it). */
function serialHex(c: Uint8Array): string {
  return Buffer.from(c.length > 1 && c[0] === 0 && c[1] > 0x7f ? c.subarray(1) : c).toString("hex");
}

function readSmallUint(der: Uint8Array, t: Tlv): number {
  const c = contentOf(der, t);
  if (c.length === 0 || c.length > 4 || c[0] & 0x80 || (c.length > 1 && c[0] === 0 && !(c[1] & 0x80))) throw new DerError("bad small INTEGER");
  let v = 0;
  for (const b of c) v = v * 256 + b;
  return v;
}
