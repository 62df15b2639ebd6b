// The one place certificates are assembled. The CA and leaf profiles (ca.ts, issue.ts) and the tests'
// deliberately faulty certificates all go through buildCertificate, so a profile is just its parameters.
import { randomBytes, type KeyObject } from "node:crypto";
import { x509, ED25519 } from "./x509-provider.js";
import { OID_EMBER_GRANTS } from "./constants.js";
import { encodeGrants, type Grants } from "./grants.js";
import { toWebCryptoPair, toWebCryptoPublic, type Ed25519KeyPair } from "./keys.js";
import { ab } from "./pem.js";

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
  const signer = await toWebCryptoPair(spec.signer);
  const publicKey = await toWebCryptoPublic(spec.publicKey);
  const extensions: InstanceType<typeof x509.Extension>[] = [
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
