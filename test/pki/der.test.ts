// The DER fast paths (src/pki/der.ts) against @peculiar/x509 as the slow, obviously-correct reference:
// Ed25519 signatures are deterministic, so the same inputs must give the same bytes.
import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { x509, ED25519 } from "../../src/pki/x509-provider.js";
import { buildCertificate, buildCertificateDer, escapeDnValue, type CertificateSpec } from "../../src/pki/build.js";
import { KeyUsage } from "../../src/pki/certificate.js";
import { toWebCryptoPair } from "../../src/pki/keys.js";
import { readTlv, time, uintFromHex } from "../../src/pki/der.js";
import {
  createCsr, generateEd25519, initCa, issueLeaf, issueLeafRecord, parseCertificate, pemBlocks, toPem, verifyCsr, Verifier, withIntermediates,
  OID_EKU_CLIENT_AUTH, OID_EKU_SERVER_AUTH, PkiInputError,
} from "../../src/pki/index.js";

const ca = await initCa(join(mkdtempSync(join(tmpdir(), "ember-der-")), "ca"), "der.internal");

async function referenceCsr(keys: ReturnType<typeof generateEd25519>, name: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${escapeDnValue(name)}`, keys: await toWebCryptoPair(keys), signingAlgorithm: ED25519 });
  return csr.toString("pem");
}

describe("buildCertificateDer", () => {
  const k = generateEd25519();
  const base = { publicKey: k.publicKey, notBefore: new Date(Date.UTC(2026, 10, 30, 1, 2, 3, 456)), notAfter: new Date(Date.UTC(2026, 10, 30, 9, 2, 3, 999)) };
  const specs: [string, CertificateSpec][] = [
    ["leaf", { ...base, commonName: "web-1", issuerDer: ca.intermediateDer, signer: ca.intermediateKeys, isCa: false, keyUsage: KeyUsage.digitalSignature,
      extKeyUsage: [OID_EKU_SERVER_AUTH, OID_EKU_CLIENT_AUTH], uris: ["spiffe://der.internal/acme/web-1"],
      grants: { tenant: "acme", groups: ["web", "db"], roles: ["admin"] }, serial: "0123456789abcdef0123456789abcdef" }],
    ["leaf, serial with the top bit set", { ...base, commonName: "a", issuerDer: ca.intermediateDer, signer: ca.intermediateKeys, isCa: false,
      keyUsage: KeyUsage.digitalSignature, grants: { tenant: "t", groups: [], roles: [] }, serial: "ff" }],
    ["self-signed root (GeneralizedTime after 2049)", { ...base, notAfter: new Date(Date.UTC(2061, 0, 1)), commonName: "EmberNet Root CA x.internal", signer: k,
      isCa: true, pathLength: 1, keyUsage: KeyUsage.keyCertSign | KeyUsage.cRLSign, uris: ["spiffe://x.internal"], serial: "7f00000000000000000000000000000a" }],
    ["intermediate, UTF8String name", { ...base, commonName: "Clüster CA", issuerDer: ca.rootDer, signer: ca.intermediateKeys, isCa: true, pathLength: 0,
      keyUsage: KeyUsage.keyCertSign | KeyUsage.cRLSign, serial: "00ff" }],
    ["test-crafted grants bytes", { ...base, commonName: "odd-1", issuerDer: ca.intermediateDer, signer: ca.intermediateKeys, isCa: false,
      keyUsage: KeyUsage.digitalSignature | KeyUsage.keyEncipherment | KeyUsage.decipherOnly, grantsDer: Uint8Array.from([0x30, 0x00]), serial: "01" }],
  ];
  for (const [what, spec] of specs) {
    it(`gives @peculiar/x509's bytes: ${what}`, async () => {
      expect(Buffer.from(buildCertificateDer(spec)).toString("hex")).toBe(Buffer.from(await buildCertificate(spec)).toString("hex"));
    });
  }

  it("issues leaves the verifier accepts, with the serial and expiry the issuer reports", () => {
    const leaf = issueLeafRecord(ca, { name: "db-1", tenant: "acme", groups: ["db"], ttlMs: 3_600_000, publicKey: k.publicKey });
    const parsed = parseCertificate(leaf.der);
    expect([parsed.serial, parsed.notAfter.getTime()]).toEqual([leaf.serial, leaf.notAfter.getTime()]);
    const v = new Verifier({ bundlePem: ca.bundlePem }).verifyPem(withIntermediates(toPem(leaf.der, "CERTIFICATE"), ca.bundlePem));
    expect(v.ok && [v.identity.name, v.identity.tenant, v.identity.groups]).toEqual(["db-1", "acme", ["db"]]);
  });

  it("encodes edge values like DER", () => {
    expect(uintFromHex("0000").toString("hex")).toBe("020100");
    expect(uintFromHex("0080").toString("hex")).toBe("02020080");
    expect(time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59))).toString("latin1").slice(2)).toBe("491231235959Z");
    expect(time(new Date(Date.UTC(2050, 0, 1))).toString("latin1").slice(2)).toBe("20500101000000Z");
    expect(() => readTlv(Uint8Array.from([0x30, 0x81, 0x05, 0, 0, 0, 0, 0]), 0)).toThrow(/non-minimal/);
    expect(() => readTlv(Uint8Array.from([0x30, 0x80, 0, 0]), 0)).toThrow(/indefinite/);
  });
});

describe("CSR", () => {
  it("createCsr gives @peculiar/x509's bytes; verifyCsr accepts its requests", async () => {
    for (const name of ["n-1", "web-server-07"]) {
      const keys = generateEd25519();
      const csr = await createCsr(keys, name);
      const der = (pem: string) => Buffer.from(pemBlocks(pem, "CERTIFICATE REQUEST", "CSR")[0]).toString("hex");
      expect(der(csr)).toBe(der(await referenceCsr(keys, name)));
      const v = await verifyCsr(csr);
      expect(v.commonName).toBe(name);
      expect(v.publicKey.export({ type: "spki", format: "der" }).equals(keys.publicKey.export({ type: "spki", format: "der" }))).toBe(true);
    }
  });

  it("refuses altered, truncated, padded and foreign-algorithm requests", async () => {
    const keys = generateEd25519();
    const der = pemBlocks(await createCsr(keys, "web-1"), "CERTIFICATE REQUEST", "CSR")[0];
    const pem = (d: Uint8Array) => toPem(d, "CERTIFICATE REQUEST");
    const at = Buffer.from(der).indexOf(Buffer.from("web-1"));
    const renamed = Uint8Array.from(der); renamed[at] = "x".charCodeAt(0);
    await expect(verifyCsr(pem(renamed))).rejects.toThrow(/signature does not verify/);
    const sigFlipped = Uint8Array.from(der); sigFlipped[der.length - 1] ^= 1;
    await expect(verifyCsr(pem(sigFlipped))).rejects.toThrow(/signature does not verify/);
    await expect(verifyCsr(pem(der.subarray(0, der.length - 1)))).rejects.toThrow(PkiInputError);
    await expect(verifyCsr(pem(Uint8Array.from([...der, 0])))).rejects.toThrow(/trailing/);
    const alg = Buffer.from(der).lastIndexOf(Buffer.from([0x06, 0x03, 0x2b, 0x65, 0x70]));
    const otherAlg = Uint8Array.from(der); otherAlg[alg + 4] = 0x71; // Ed448's OID
    await expect(verifyCsr(pem(otherAlg))).rejects.toThrow(/not Ed25519/);
    await expect(verifyCsr("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n")).rejects.toThrow(PkiInputError);
  });

  it("leaves issued from a verified CSR are the requester's key", async () => {
    const keys = generateEd25519();
    const csr = await verifyCsr(await createCsr(keys, "api-2"));
    const der = await issueLeaf(ca, { name: "api-2", tenant: "acme", publicKey: csr.publicKey });
    expect(parseCertificate(der).native.publicKey.export({ type: "spki", format: "der" }).equals(keys.publicKey.export({ type: "spki", format: "der" }))).toBe(true);
  });
});
