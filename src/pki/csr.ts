// Certificate signing requests: the node makes its key and sends only a CSR, which proves possession
// of the key (self-signature) and names the identity it asks for. Nothing else in it is trusted.
// Both directions are plain DER and one node:crypto call (src/pki/der.ts says why; test/pki/der.test.ts holds
// them to @peculiar/x509's bytes and parser).
import { sign, verify, type KeyObject } from "node:crypto";
import { publicKeyFromSpki, spkiDer, type Ed25519KeyPair } from "./keys.js";
import { bits, children, cnName, contentOf, DerError, expectTag, oid, readCommonName, readTlv, sameBytes, seq, tlv, TAG } from "./der.js";
import { pemBlocks, PkiInputError, toPem } from "./pem.js";

const ED25519_ALG = seq(oid("1.3.101.112"));
const VERSION_1 = tlv(TAG.INTEGER, Buffer.from([0]));
const NO_ATTRIBUTES = tlv(0xa0);

export async function createCsr(keys: Ed25519KeyPair, name: string): Promise<string> {
  const info = seq(VERSION_1, cnName(name), spkiDer(keys.publicKey), NO_ATTRIBUTES);
  return toPem(seq(info, ED25519_ALG, bits(sign(null, info, keys.privateKey))), "CERTIFICATE REQUEST");
}

export interface VerifiedCsr {
  commonName: string | undefined;
  publicKey: KeyObject;
}

interface CsrParts { info: Uint8Array; subject: string | undefined; spki: Uint8Array; signature: Uint8Array }

/** CertificationRequest ::= SEQUENCE { info SEQUENCE { version 0, subject, spki, [0] attributes }, alg, BIT STRING }, strictly. */
function readCsr(der: Uint8Array): CsrParts {
  const top = expectTag(readTlv(der, 0), TAG.SEQUENCE, "request");
  if (top.end !== der.length) throw new DerError("trailing bytes after the request");
  const [infoT, algT, sigT, extra] = children(der, top);
  if (extra) throw new DerError("request has more than three fields");
  const [version, subject, spki, attributes, more] = children(der, expectTag(infoT, TAG.SEQUENCE, "request info"));
  if (!sameBytes(der.subarray(expectTag(version, TAG.INTEGER, "version").start, version.end), VERSION_1)) throw new DerError("version is not 1 (0)");
  const name = readCommonName(der, expectTag(subject, TAG.SEQUENCE, "subject"));
  expectTag(spki, TAG.SEQUENCE, "subject public key info");
  if (attributes && attributes.tag !== 0xa0) throw new DerError("attributes: expected [0]");
  if (more) throw new DerError("request info has extra fields");
  if (!sameBytes(der.subarray(expectTag(algT, TAG.SEQUENCE, "signature algorithm").start, algT.end), ED25519_ALG)) {
    throw new DerError("signature algorithm is not Ed25519");
  }
  const sig = contentOf(der, expectTag(sigT, TAG.BIT_STRING, "signature"));
  if (sig.length !== 65 || sig[0] !== 0) throw new DerError("an Ed25519 signature is 64 whole bytes");
  return { info: der.subarray(infoT.start, infoT.end), subject: name, spki: der.subarray(spki.start, spki.end), signature: sig.subarray(1) };
}

/** Parses and checks a CSR's self-signature; throws PkiInputError naming the fault. */
export async function verifyCsr(pem: string): Promise<VerifiedCsr> {
  const [der] = pemBlocks(pem, "CERTIFICATE REQUEST", "CSR");
  let csr: CsrParts;
  try {
    csr = readCsr(der);
  } catch (err) {
    throw new PkiInputError(`CSR: not a PKCS#10 request (${(err as Error).message})`);
  }
  let publicKey: KeyObject;
  try {
    publicKey = publicKeyFromSpki(csr.spki);
  } catch (err) {
    throw new PkiInputError(`CSR: unreadable public key (${(err as Error).message})`);
  }
  if (publicKey.asymmetricKeyType !== "ed25519") throw new PkiInputError(`CSR: key must be Ed25519, got ${publicKey.asymmetricKeyType}`);
  let ok = false;
  try { ok = verify(null, csr.info, publicKey, csr.signature); } catch { ok = false; }
  if (!ok) throw new PkiInputError("CSR: signature does not verify (the request was altered or the key does not match)");
  return { commonName: csr.subject, publicKey };
}
