// Certificate signing requests: the node makes its key and sends only a CSR, which proves possession
// of the key (self-signature) and names the identity it asks for. Nothing else in it is trusted.
import { createPublicKey, type KeyObject } from "node:crypto";
import { x509, ED25519 } from "./x509-provider.js";
import { toWebCryptoPair, type Ed25519KeyPair } from "./keys.js";
import { escapeDnValue } from "./build.js";
import { ab, pemBlocks, PkiInputError } from "./pem.js";

export async function createCsr(keys: Ed25519KeyPair, name: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${escapeDnValue(name)}`, keys: await toWebCryptoPair(keys), signingAlgorithm: ED25519,
  });
  return csr.toString("pem");
}

export interface VerifiedCsr {
  commonName: string | undefined;
  publicKey: KeyObject;
}

/** Parses and checks a CSR's self-signature; throws PkiInputError naming the fault. */
export async function verifyCsr(pem: string): Promise<VerifiedCsr> {
  const [der] = pemBlocks(pem, "CERTIFICATE REQUEST", "CSR");
  let csr: InstanceType<typeof x509.Pkcs10CertificateRequest>;
  try {
    csr = new x509.Pkcs10CertificateRequest(ab(der));
  } catch (err) {
    throw new PkiInputError(`CSR: not a PKCS#10 request (${(err as Error).message})`);
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: "der", type: "spki" });
  } catch (err) {
    throw new PkiInputError(`CSR: unreadable public key (${(err as Error).message})`);
  }
  if (publicKey.asymmetricKeyType !== "ed25519") throw new PkiInputError(`CSR: key must be Ed25519, got ${publicKey.asymmetricKeyType}`);
  let ok = false;
  try { ok = await csr.verify(); } catch { ok = false; }
  if (!ok) throw new PkiInputError("CSR: signature does not verify (the request was altered or the key does not match)");
  return { commonName: csr.subjectName.getField("CN")[0], publicKey };
}
