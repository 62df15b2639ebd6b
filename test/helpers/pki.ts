// Test fixtures for the PKI: a CA in a temp dir and a builder for deliberately faulty leaves.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCertificate, type CertificateSpec } from "../../src/pki/build.js";
import { KeyUsage } from "../../src/pki/certificate.js";
import {
  generateEd25519, initCa, issueLeaf, OID_EKU_CLIENT_AUTH, OID_EKU_SERVER_AUTH, spiffeId, toPem,
  type CaMaterial, type Ed25519KeyPair, privateKeyToPem,
} from "../../src/pki/index.js";

export function tempDir(prefix = "ember-test-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function makeCa(dir: string, trustDomain = "acme.internal"): Promise<CaMaterial> {
  return initCa(join(dir, `ca-${Math.random().toString(36).slice(2)}`), trustDomain);
}

export interface TestLeaf { der: Uint8Array; pem: string; keys: Ed25519KeyPair; keyPem: string }

export async function makeLeaf(ca: CaMaterial, name: string, opts: { tenant?: string; groups?: string[]; roles?: string[]; ttlMs?: number; now?: Date } = {}): Promise<TestLeaf> {
  const keys = generateEd25519();
  const der = await issueLeaf(ca, { name, tenant: opts.tenant ?? "acme", groups: opts.groups ?? ["eng"], roles: opts.roles, ttlMs: opts.ttlMs, publicKey: keys.publicKey, now: opts.now });
  return { der, pem: toPem(der, "CERTIFICATE"), keys, keyPem: privateKeyToPem(keys.privateKey) };
}

/** A leaf with the regular profile, any field overridden. */
export async function craftLeaf(ca: CaMaterial, over: Partial<CertificateSpec> & { name?: string } = {}): Promise<TestLeaf> {
  const keys = generateEd25519();
  const name = over.name ?? "crafted";
  const now = Date.now();
  const der = await buildCertificate({
    commonName: name, publicKey: keys.publicKey, issuerDer: ca.intermediateDer, signer: ca.intermediateKeys,
    notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000), isCa: false,
    keyUsage: KeyUsage.digitalSignature, extKeyUsage: [OID_EKU_SERVER_AUTH, OID_EKU_CLIENT_AUTH],
    uris: [spiffeId(ca.trustDomain, "acme", name)], grants: { tenant: "acme", groups: ["eng"], roles: [] },
    ...over,
  });
  return { der, pem: toPem(der, "CERTIFICATE"), keys, keyPem: privateKeyToPem(keys.privateKey) };
}
