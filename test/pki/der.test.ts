// The DER fast paths (src/pki/der.ts) against @peculiar/x509 as the slow, obviously-correct reference:
// Ed25519 signatures are deterministic, so the same inputs must give the same bytes.
import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { x509 as loadX509, ED25519 } from "../../src/pki/x509-provider.js";

const x509 = loadX509();
import { buildCertificate, buildCertificateDer, escapeDnValue, type CertificateSpec } from "../../src/pki/build.js";
import { KeyUsage } from "../../src/pki/certificate.js";
import { toWebCryptoPair } from "../../src/pki/keys.js";
import { readTlv, time, uintFromHex } from "../../src/pki/der.js";
import { createHash, X509Certificate as NodeX509 } from "node:crypto";
import {
  OID_BASIC_CONSTRAINTS, OID_EXT_KEY_USAGE, OID_KEY_USAGE, OID_SUBJECT_ALT_NAME, OID_SUBJECT_KEY_ID, OID_AUTHORITY_KEY_ID, OID_EMBER_GRANTS, UNDERSTOOD_CRITICAL,
} from "../../src/pki/constants.js";
import { decodeGrants, type Grants } from "../../src/pki/grants.js";
import { ab } from "../../src/pki/pem.js";
import type { ParsedCertificate } from "../../src/pki/certificate.js";
import {
  createCsr, generateEd25519, initCa, issueLeaf, issueLeafRecord, parseCertificate, pemBlocks, toPem, verifyCsr, Verifier, withIntermediates,
  OID_EKU_CLIENT_AUTH, OID_EKU_SERVER_AUTH, PkiInputError,
} from "../../src/pki/index.js";

const caDir = mkdtempSync(join(tmpdir(), "ember-der-"));
afterAll(() => rmSync(caDir, { recursive: true, force: true })); // one CA per run, not one left per run
const ca = await initCa(join(caDir, "ca"), "der.internal");

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

describe("parseCertificate", () => {
  it("reads what @peculiar/x509's parser read, for every profile", async () => {
    const k = generateEd25519();
    const base = { publicKey: k.publicKey, notBefore: new Date(Date.UTC(1999, 0, 2, 3, 4, 5)), notAfter: new Date(Date.UTC(2070, 5, 6, 7, 8, 9)) };
    const ders: Uint8Array[] = [ca.rootDer, ca.intermediateDer,
      await issueLeaf(ca, { name: "web-1", tenant: "acme", groups: ["web", "db"], roles: ["admin"], publicKey: k.publicKey }),
      await buildCertificate({ ...base, commonName: "a,b+c \\ #x ", signer: k, isCa: true, keyUsage: KeyUsage.keyCertSign | KeyUsage.cRLSign | KeyUsage.decipherOnly }),
      await buildCertificate({ ...base, commonName: "Grüße", issuerDer: ca.intermediateDer, signer: ca.intermediateKeys, isCa: false, keyUsage: KeyUsage.dataEncipherment,
        grantsDer: Uint8Array.from([0x30, 0x02, 0x0c, 0x00]), uris: ["spiffe://a/b/c", "https://x.example/"] }),
      await buildCertificate({ ...base, commonName: "bad-grants", issuerDer: ca.intermediateDer, signer: ca.intermediateKeys, isCa: false, keyUsage: KeyUsage.digitalSignature,
        grantsDer: Uint8Array.from([0x04, 0x00]) }),
    ];
    const other = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: "00ab", name: "CN=x, O=Acme Inc.+OU=ops, C=DE, E=a@b.c", notBefore: base.notBefore, notAfter: base.notAfter,
      keys: await toWebCryptoPair(k), signingAlgorithm: ED25519,
      extensions: [new x509.Extension("1.2.3.4.5", true, new Uint8Array([1, 2, 3])), new x509.BasicConstraintsExtension(false, undefined, false)],
    });
    ders.push(new Uint8Array(other.rawData));
    for (const der of ders) {
      const parsed = parseCertificate(der);
      expect(parsed.publicKey.export({ type: "spki", format: "der" }).equals(parsed.native.publicKey.export({ type: "spki", format: "der" }))).toBe(true);
      const { native: _a, publicKey: _p, ed25519: _e, spki: _s, ...fast } = parsed;
      const { native: _b, ...ref } = referenceParse(der);
      expect(fast).toEqual(ref);
    }
  });

  it("refuses malformed certificates as PkiInputError", () => {
    const der = Uint8Array.from(ca.intermediateDer);
    expect(() => parseCertificate(der.subarray(0, der.length - 3))).toThrow(PkiInputError);
    expect(() => parseCertificate(Uint8Array.from([...der, 0]))).toThrow(PkiInputError);
  });
});

// The parser before the DER fast path, kept as the reference.
function referenceParse(der: Uint8Array): Omit<ParsedCertificate, "publicKey" | "ed25519" | "spki"> {
  let cert: InstanceType<typeof x509.X509Certificate>;
  let native: NodeX509;
  try {
    native = new NodeX509(der);
    cert = new x509.X509Certificate(ab(der));
  } catch (err) {
    throw new PkiInputError(`not a DER X.509 certificate (${(err as Error).message})`);
  }
  let isCa = false, pathLength: number | undefined, keyUsage: number | undefined, extKeyUsage: string[] | undefined;
  let grants: Grants | Error | undefined;
  let subjectKeyId: string | undefined, authorityKeyId: string | undefined;
  const uris: string[] = [];
  const unknownCritical: string[] = [];
  for (const ext of cert.extensions) {
    try {
      switch (ext.type) {
        case OID_BASIC_CONSTRAINTS: {
          const bc = new x509.BasicConstraintsExtension(ext.rawData);
          isCa = bc.ca; pathLength = bc.pathLength; break;
        }
        case OID_KEY_USAGE: keyUsage = new x509.KeyUsagesExtension(ext.rawData).usages; break;
        case OID_EXT_KEY_USAGE: extKeyUsage = new x509.ExtendedKeyUsageExtension(ext.rawData).usages.map(String); break;
        case OID_SUBJECT_ALT_NAME:
          for (const n of new x509.SubjectAlternativeNameExtension(ext.rawData).names.items) {
            if (n.type === "url") uris.push(n.value);
          }
          break;
        case OID_SUBJECT_KEY_ID: subjectKeyId = new x509.SubjectKeyIdentifierExtension(ext.rawData).keyId.toLowerCase(); break;
        case OID_AUTHORITY_KEY_ID: authorityKeyId = new x509.AuthorityKeyIdentifierExtension(ext.rawData).keyId?.toLowerCase(); break;
        case OID_EMBER_GRANTS:
          try { grants = decodeGrants(new Uint8Array(ext.value)); } catch (err) { grants = err as Error; }
          break;
        default:
          if (ext.critical && !UNDERSTOOD_CRITICAL.has(ext.type)) unknownCritical.push(ext.type);
      }
    } catch (err) {
      throw new PkiInputError(`extension ${ext.type} is malformed (${(err as Error).message})`);
    }
  }
  const cn = cert.subjectName.getField("CN");
  return {
    der,
    fingerprint: createHash("sha256").update(der).digest("hex"),
    native,
    subject: cert.subject,
    issuer: cert.issuer,
    commonName: cn[0],
    serial: cert.serialNumber.toLowerCase(),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    isCa, pathLength, keyUsage, extKeyUsage, uris, grants, unknownCritical,
    selfIssued: cert.subject === cert.issuer,
    subjectKeyId, authorityKeyId,
  };
}
