// The two-level CA: an offline root that signs one cluster intermediate; the intermediate (held by the
// coordination server) issues every leaf. `ember ca init` calls initCa; everything that issues calls loadCa.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  INTERMEDIATE_PATH_LEN, INTERMEDIATE_TTL_MS, ROOT_PATH_LEN, ROOT_TTL_MS, TRUST_DOMAIN_PATTERN,
} from "./constants.js";
import { buildCertificate } from "./build.js";
import { KeyUsage } from "./certificate.js";
import { generateEd25519, keyPairFromPrivatePem, privateKeyToPem, writePrivateFile, type Ed25519KeyPair } from "./keys.js";
import { pemBlocks, readBoundedFile, toPem } from "./pem.js";

export const CA_FILES = {
  rootKey: "root.key",
  rootCert: "root.pem",
  intermediateKey: "intermediate.key",
  intermediateCert: "intermediate.pem",
  bundle: "bundle.pem",
  meta: "ca.json",
} as const;

export interface CaMaterial {
  dir: string;
  trustDomain: string;
  rootDer: Uint8Array;
  intermediateDer: Uint8Array;
  intermediateKeys: Ed25519KeyPair;
  /** Root + intermediate PEM: what every node and server trusts. */
  bundlePem: string;
}

export async function createCaChain(trustDomain: string, now = new Date()) {
  if (!TRUST_DOMAIN_PATTERN.test(trustDomain)) {
    throw new Error(`invalid trust domain "${trustDomain}": use a DNS-like name such as "acme.internal"`);
  }
  const rootKeys = generateEd25519();
  const intermediateKeys = generateEd25519();
  const tdUri = [`spiffe://${trustDomain}`];
  const rootDer = await buildCertificate({
    commonName: `EmberNet Root CA ${trustDomain}`, publicKey: rootKeys.publicKey, signer: rootKeys,
    notBefore: now, notAfter: new Date(now.getTime() + ROOT_TTL_MS),
    isCa: true, pathLength: ROOT_PATH_LEN, keyUsage: KeyUsage.keyCertSign | KeyUsage.cRLSign, uris: tdUri,
  });
  const intermediateDer = await buildCertificate({
    commonName: `EmberNet Cluster CA ${trustDomain}`, publicKey: intermediateKeys.publicKey,
    issuerDer: rootDer, signer: rootKeys,
    notBefore: now, notAfter: new Date(now.getTime() + INTERMEDIATE_TTL_MS),
    isCa: true, pathLength: INTERMEDIATE_PATH_LEN, keyUsage: KeyUsage.keyCertSign | KeyUsage.cRLSign, uris: tdUri,
  });
  return { rootKeys, rootDer, intermediateKeys, intermediateDer };
}

export async function initCa(dir: string, trustDomain: string): Promise<CaMaterial> {
  if (existsSync(join(dir, CA_FILES.rootKey)) || existsSync(join(dir, CA_FILES.intermediateKey))) {
    throw new Error(`${dir} already holds a CA; refusing to overwrite its keys`);
  }
  const chain = await createCaChain(trustDomain);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writePrivateFile(join(dir, CA_FILES.rootKey), privateKeyToPem(chain.rootKeys.privateKey));
  writePrivateFile(join(dir, CA_FILES.intermediateKey), privateKeyToPem(chain.intermediateKeys.privateKey));
  const rootPem = toPem(chain.rootDer, "CERTIFICATE");
  const intermediatePem = toPem(chain.intermediateDer, "CERTIFICATE");
  writeFileSync(join(dir, CA_FILES.rootCert), rootPem);
  writeFileSync(join(dir, CA_FILES.intermediateCert), intermediatePem);
  writeFileSync(join(dir, CA_FILES.bundle), rootPem + intermediatePem);
  writeFileSync(join(dir, CA_FILES.meta), JSON.stringify({ trustDomain, revocationNumber: 0 }, null, 2) + "\n");
  return loadCa(dir);
}

export function loadCa(dir: string): CaMaterial {
  const metaPath = join(dir, CA_FILES.meta);
  if (!existsSync(metaPath)) throw new Error(`${dir} is not a CA directory (no ${CA_FILES.meta}); run "ember ca init" first`);
  const meta = JSON.parse(readFileSync(metaPath, "utf8")) as { trustDomain: string };
  const [rootDer] = pemBlocks(readBoundedFile(join(dir, CA_FILES.rootCert), "root certificate"), "CERTIFICATE", "root certificate");
  const [intermediateDer] = pemBlocks(readBoundedFile(join(dir, CA_FILES.intermediateCert), "intermediate certificate"), "CERTIFICATE", "intermediate certificate");
  const intermediateKeys = keyPairFromPrivatePem(readBoundedFile(join(dir, CA_FILES.intermediateKey), "intermediate key"), "intermediate key");
  return {
    dir, trustDomain: meta.trustDomain, rootDer, intermediateDer, intermediateKeys,
    bundlePem: toPem(rootDer, "CERTIFICATE") + toPem(intermediateDer, "CERTIFICATE"),
  };
}
