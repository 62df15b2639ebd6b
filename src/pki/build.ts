// The one place certificates are assembled. The CA and leaf profiles (ca.ts, issue.ts) and the tests'
// deliberately faulty certificates all go through buildCertificate, so a profile is just its parameters.
import { createHash, randomBytes, sign, type KeyObject } from "node:crypto";
import { x509 as loadX509, ED25519, type X509 } from "./x509-provider.js";
import { OID_EMBER_GRANTS } from "./constants.js";
import { encodeGrants, type Grants } from "./grants.js";
import { spkiDer, toWebCryptoPair, toWebCryptoPublic, type Ed25519KeyPair } from "./keys.js";
import { ab } from "./pem.js";
import { bits, bool, children, cnName, DerError, expectTag, octets, oid, readTlv, seq, tlv, time, uintFromHex, TAG } from "./der.js";
import { OID_AUTHORITY_KEY_ID, OID_BASIC_CONSTRAINTS, OID_EXT_KEY_USAGE, OID_KEY_USAGE, OID_SUBJECT_ALT_NAME, OID_SUBJECT_KEY_ID } from "./constants.js";

export interface CertificateSpec {
  commonName: string;
  publicKey: KeyObject;
  /** Issuer certificate DER; omitted for a self-signed certificate (then signer must hold publicKey's pair). */
  issuerDer?: Uint8Array;
  signer: Ed25519KeyPair;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  pathLength?: number;
  keyUsage: number;
  extKeyUsage?: string[];
  uris?: string[];
  grants?: Grants;
  /** Raw grants extension value, bypassing the encoder: only tests crafting malformed grants use it. */
  grantsDer?: Uint8Array;
  serial?: string;
}

/** 16 random bytes, top bit clear so the DER INTEGER stays positive without padding surprises. */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f;
  if (b[0] === 0) b[0] = 1;
  return b.toString("hex");
}

export function escapeDnValue(v: string): string {
  return v.replace(/([,+"\\<>;=])/g, "\\$1");
}

export async function buildCertificate(spec: CertificateSpec): Promise<Uint8Array> {
  const x509 = loadX509();
  const signer = await toWebCryptoPair(spec.signer);
  const publicKey = await toWebCryptoPublic(spec.publicKey);
  const extensions: InstanceType<X509["Extension"]>[] = [
    new x509.BasicConstraintsExtension(spec.isCa, spec.isCa ? spec.pathLength : undefined, true),
    new x509.KeyUsagesExtension(spec.keyUsage, true),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
  ];
  if (spec.extKeyUsage) extensions.push(new x509.ExtendedKeyUsageExtension(spec.extKeyUsage, false));
  if (spec.uris?.length) {
    extensions.push(new x509.SubjectAlternativeNameExtension(spec.uris.map((value) => ({ type: "url" as const, value })), false));
  }
  const grantsDer = spec.grantsDer ?? (spec.grants ? encodeGrants(spec.grants) : undefined);
  if (grantsDer) extensions.push(new x509.Extension(OID_EMBER_GRANTS, false, ab(grantsDer)));
  const subject = `CN=${escapeDnValue(spec.commonName)}`;
  if (spec.issuerDer) {
    const issuer = new x509.X509Certificate(ab(spec.issuerDer));
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(signer.publicKey));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: spec.serial ?? randomSerial(),
      subject, issuer: issuer.subject,
      notBefore: spec.notBefore, notAfter: spec.notAfter,
      publicKey, signingKey: signer.privateKey, signingAlgorithm: ED25519, extensions,
    });
    return new Uint8Array(cert.rawData);
  }
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: spec.serial ?? randomSerial(),
    name: subject, notBefore: spec.notBefore, notAfter: spec.notAfter,
    keys: signer, signingAlgorithm: ED25519, extensions,
  });
  return new Uint8Array(cert.rawData);
}

// ---- the fast path: the same certificate as DER bytes and one node:crypto signature -------------------

const ED25519_ALG = seq(oid("1.3.101.112"));
const V3 = tlv(0xa0, tlv(TAG.INTEGER, Buffer.from([2])));
const EXT_OIDS = {
  bc: oid(OID_BASIC_CONSTRAINTS), ku: oid(OID_KEY_USAGE), ski: oid(OID_SUBJECT_KEY_ID), eku: oid(OID_EXT_KEY_USAGE),
  san: oid(OID_SUBJECT_ALT_NAME), aki: oid(OID_AUTHORITY_KEY_ID), grants: oid(OID_EMBER_GRANTS),
};

function extension(id: Buffer, critical: boolean, value: Uint8Array): Buffer {
  return critical ? seq(id, bool(true), octets(value)) : seq(id, octets(value));
}

/** KeyUsage as a named-bit BIT STRING: bit i is flag 1 << i, trailing zero bits dropped (X.690 11.2.2). */
function keyUsageBits(flags: number): Buffer {
  const bytes = [0, 0];
  for (let i = 0; i < 9; i++) if (flags & (1 << i)) bytes[i >> 3] |= 0x80 >> (i & 7);
  while (bytes.length && bytes[bytes.length - 1] === 0) bytes.pop();
  if (!bytes.length) return tlv(TAG.BIT_STRING, Buffer.from([0]));
  const last = bytes[bytes.length - 1];
  let unused = 0;
  while (!(last & (1 << unused))) unused++;
  return tlv(TAG.BIT_STRING, Buffer.from([unused, ...bytes]));
}

/** SHA-1 of the raw public key (RFC 5280 4.2.1.2 method 1), as @peculiar/x509 computes key identifiers. */
const keyIds = new WeakMap<KeyObject, { spki: Buffer; keyId: Buffer }>();
function keyFacts(key: KeyObject): { spki: Buffer; keyId: Buffer } {
  let f = keyIds.get(key);
  if (!f) {
    const spki = spkiDer(key);
    f = { spki, keyId: createHash("sha1").update(spki.subarray(spki.length - 32)).digest() };
    keyIds.set(key, f);
  }
  return f;
}

/** The subject Name of a certificate, as its DER bytes (the issuer field of what it signs). */
const subjects = new WeakMap<Uint8Array, Buffer>();
function subjectOf(certDer: Uint8Array): Buffer {
  let s = subjects.get(certDer);
  if (!s) {
    try {
      const tbs = children(certDer, expectTag(children(certDer, readTlv(certDer, 0))[0], TAG.SEQUENCE, "tbsCertificate"));
      const subject = expectTag(tbs[tbs[0]?.tag === 0xa0 ? 5 : 4], TAG.SEQUENCE, "subject");
      s = Buffer.from(certDer.subarray(subject.start, subject.end));
    } catch (err) {
      throw new DerError(`issuer certificate: ${(err as Error).message}`);
    }
    subjects.set(certDer, s);
  }
  return s;
}

/**
 * buildCertificate without the object model: the same bytes (test/pki/der.test.ts), about 50x faster. Used for
 * leaves (issueLeaf), where the coordination server spends it once per enrollment and renewal. Ed25519 only.
 */
export function buildCertificateDer(spec: CertificateSpec): Uint8Array {
  if (spec.publicKey.asymmetricKeyType !== "ed25519" || spec.signer.privateKey.asymmetricKeyType !== "ed25519") {
    throw new Error("buildCertificateDer signs and certifies Ed25519 keys only");
  }
  const subjectKey = keyFacts(spec.publicKey);
  const signerKey = keyFacts(spec.signer.publicKey);
  const exts: Buffer[] = [
    extension(EXT_OIDS.bc, true, seq(...(spec.isCa ? [bool(true), ...(spec.pathLength !== undefined ? [uintFromHex(spec.pathLength.toString(16).padStart(2, "0"))] : [])] : []))),
    extension(EXT_OIDS.ku, true, keyUsageBits(spec.keyUsage)),
    extension(EXT_OIDS.ski, false, octets(subjectKey.keyId)),
  ];
  if (spec.extKeyUsage) exts.push(extension(EXT_OIDS.eku, false, seq(...spec.extKeyUsage.map(oid))));
  if (spec.uris?.length) exts.push(extension(EXT_OIDS.san, false, seq(...spec.uris.map((u) => tlv(0x86, Buffer.from(u, "latin1"))))));
  const grantsDer = spec.grantsDer ?? (spec.grants ? encodeGrants(spec.grants) : undefined);
  if (grantsDer) exts.push(extension(EXT_OIDS.grants, false, grantsDer));
  const subject = cnName(spec.commonName);
  let issuer = subject;
  if (spec.issuerDer) {
    issuer = subjectOf(spec.issuerDer);
    exts.push(extension(EXT_OIDS.aki, false, seq(tlv(0x80, signerKey.keyId))));
  }
  const tbs = seq(
    V3, uintFromHex(spec.serial ?? randomSerial()), ED25519_ALG, issuer, seq(time(spec.notBefore), time(spec.notAfter)), subject,
    subjectKey.spki, tlv(0xa3, seq(...exts)),
  );
  return new Uint8Array(seq(tbs, ED25519_ALG, bits(sign(null, tbs, spec.signer.privateKey))));
}
