// Every rejection reason of the verifier, each from a certificate crafted to have exactly that fault.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { KeyUsage } from "../../src/pki/certificate.js";
import { encodeGrants } from "../../src/pki/grants.js";
import {
  OID_EKU_SERVER_AUTH, signRevocationList, spiffeId, toPem, Verifier, type CaMaterial,
} from "../../src/pki/index.js";
import { craftLeaf, makeCa, makeLeaf, tempDir } from "../helpers/pki.js";

let tmp: ReturnType<typeof tempDir>;
let ca: CaMaterial;
let other: CaMaterial;

beforeAll(async () => {
  tmp = tempDir();
  ca = await makeCa(tmp.dir);
  other = await makeCa(tmp.dir); // same trust domain and names, different keys
});
afterAll(() => tmp.cleanup());

const verifier = () => new Verifier({ bundlePem: ca.bundlePem });

function expectReject(r: ReturnType<Verifier["verifyChain"]>, reason: string): string {
  expect(r.ok).toBe(false);
  if (r.ok) throw new Error("unreachable");
  expect(r.reason).toBe(reason);
  expect(r.detail.length).toBeGreaterThan(10);
  return r.detail;
}

describe("verifier accepts a good leaf", () => {
  it("returns the identity decoded from the signed grants", async () => {
    const leaf = await makeLeaf(ca, "db-1", { groups: ["eng", "db"], roles: ["admin"] });
    const r = verifier().verifyChain([leaf.der]);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.identity).toMatchObject({ name: "db-1", tenant: "acme", groups: ["eng", "db"], roles: ["admin"], trustDomain: "acme.internal" });
    expect(r.identity.spiffeId).toBe("spiffe://acme.internal/acme/db-1");
    expect(r.identity.publicKey.length).toBe(32);
    // the intermediate presented alongside is accepted too
    expect(verifier().verifyChain([leaf.der, ca.intermediateDer]).ok).toBe(true);
  });
});

describe("verifier rejects, with the reason", () => {
  it("expired", async () => {
    const leaf = await makeLeaf(ca, "old", { ttlMs: 3_600_000, now: new Date(Date.now() - 3 * 3_600_000) });
    expect(expectReject(verifier().verifyChain([leaf.der]), "expired")).toMatch(/expired at/);
  });

  it("expired leaves pass within the skew allowance and fail past it", async () => {
    const leaf = await makeLeaf(ca, "edge", { ttlMs: 60_000 });
    const v = new Verifier({ bundlePem: ca.bundlePem, skewMs: 10_000 });
    expect(v.verifyChain([leaf.der], { now: Date.now() + 65_000 }).ok).toBe(true);
    expectReject(v.verifyChain([leaf.der], { now: Date.now() + 75_000 }), "expired");
  });

  it("not_yet_valid, naming clock skew and NTP", async () => {
    const leaf = await craftLeaf(ca, { notBefore: new Date(Date.now() + 3_600_000), notAfter: new Date(Date.now() + 7_200_000) });
    expect(expectReject(verifier().verifyChain([leaf.der]), "not_yet_valid")).toMatch(/NTP/);
  });

  it("unknown_ca for a leaf of another CA, with or without its intermediate", async () => {
    const foreign = await makeLeaf(other, "intruder");
    expectReject(verifier().verifyChain([foreign.der]), "unknown_ca");
    expectReject(verifier().verifyChain([foreign.der, other.intermediateDer]), "unknown_ca");
  });

  it("bad_signature when the grants extension was altered after signing", async () => {
    const leaf = await makeLeaf(ca, "sneaky", { groups: ["eng"] });
    const der = Buffer.from(leaf.der);
    const at = der.indexOf(Buffer.from("group:eng"));
    expect(at).toBeGreaterThan(0);
    Buffer.from("group:ops").copy(der, at); // same length: still well-formed DER
    const detail = expectReject(verifier().verifyChain([new Uint8Array(der)]), "bad_signature");
    expect(detail).toMatch(/does not verify/);
  });

  it("not_a_ca for a leaf signed by a leaf", async () => {
    const parent = await makeLeaf(ca, "parent");
    const child = await craftLeaf(ca, { name: "child", issuerDer: parent.der, signer: parent.keys });
    expectReject(verifier().verifyChain([child.der, parent.der]), "not_a_ca");
  });

  it("path_length when the intermediate signs another CA", async () => {
    const sub = await craftLeaf(ca, { name: "sub-ca", isCa: true, pathLength: 0, keyUsage: KeyUsage.keyCertSign, uris: [`spiffe://${ca.trustDomain}`], grants: undefined });
    const leaf = await craftLeaf(ca, { name: "deep", issuerDer: sub.der, signer: sub.keys });
    expectReject(verifier().verifyChain([leaf.der, sub.der]), "path_length");
  });

  it("wrong_usage: missing clientAuth, missing digitalSignature, a CA as identity", async () => {
    const serverOnly = await craftLeaf(ca, { extKeyUsage: [OID_EKU_SERVER_AUTH] });
    expectReject(verifier().verifyChain([serverOnly.der]), "wrong_usage");
    expect(verifier().verifyChain([serverOnly.der], { usage: "server" }).ok).toBe(true);
    const noSig = await craftLeaf(ca, { keyUsage: KeyUsage.keyEncipherment });
    expectReject(verifier().verifyChain([noSig.der]), "wrong_usage");
    expectReject(verifier().verifyChain([ca.intermediateDer]), "wrong_usage");
  });

  it("wrong_trust_domain and wrong_tenant", async () => {
    const elsewhere = await craftLeaf(ca, { uris: [spiffeId("other.internal", "acme", "crafted")] });
    expectReject(verifier().verifyChain([elsewhere.der]), "wrong_trust_domain");
    const leaf = await makeLeaf(ca, "t1", { tenant: "globex" });
    expectReject(verifier().verifyChain([leaf.der], { expectTenant: "acme" }), "wrong_tenant");
  });

  it("malformed: missing or garbled grants, SAN/CN mismatch", async () => {
    expectReject(verifier().verifyChain([(await craftLeaf(ca, { grants: undefined })).der]), "malformed");
    const garbled = await craftLeaf(ca, { grants: undefined, grantsDer: Uint8Array.from([0x30, 0x03, 0x0c, 0x05, 0x41]) });
    expect(expectReject(verifier().verifyChain([garbled.der]), "malformed")).toMatch(/grants/);
    const noTenant = await craftLeaf(ca, { grants: undefined, grantsDer: Uint8Array.from([0x30, 0x0b, 0x0c, 0x09, ...Buffer.from("group:eng")]) });
    expect(expectReject(verifier().verifyChain([noTenant.der]), "malformed")).toMatch(/no tenant/);
    const mismatch = await craftLeaf(ca, { name: "alice", uris: [spiffeId(ca.trustDomain, "acme", "bob")] });
    expectReject(verifier().verifyChain([mismatch.der]), "malformed");
    const otherTenant = await craftLeaf(ca, { grants: { tenant: "globex", groups: [], roles: [] } });
    expectReject(verifier().verifyChain([otherTenant.der]), "malformed");
    expect(encodeGrants({ tenant: "acme", groups: ["a"], roles: [] }).length).toBeGreaterThan(4);
  });

  it("revoked, and a replayed older list cannot un-revoke", async () => {
    const leaf = await makeLeaf(ca, "gone");
    const r0 = verifier().verifyChain([leaf.der]);
    if (!r0.ok) throw new Error(r0.detail);
    const v = verifier();
    const listEmpty = signRevocationList(ca, 1, []);
    const listRevoked = signRevocationList(ca, 2, [r0.identity.serial]);
    expect(v.applyRevocationList(listEmpty)).toEqual({ ok: true });
    expect(v.verifyChain([leaf.der]).ok).toBe(true);
    expect(v.applyRevocationList(listRevoked)).toEqual({ ok: true });
    expectReject(v.verifyChain([leaf.der]), "revoked");
    const replay = v.applyRevocationList(listEmpty);
    expect(replay).toMatchObject({ ok: false, reason: "stale_list" });
    expect(v.applyRevocationList(listRevoked)).toMatchObject({ ok: false, reason: "stale_list" });
    expectReject(v.verifyChain([leaf.der]), "revoked");
  });

  it("refuses revocation lists that are forged, altered or from another CA", async () => {
    const v = verifier();
    const forged = signRevocationList(other, 9, ["01"]);
    expect(v.applyRevocationList(forged)).toMatchObject({ ok: false, reason: "malformed" });
    const good = JSON.parse(signRevocationList(ca, 5, ["0a"]));
    good.list = good.list.replace('"0a"', '"0b"');
    expect(v.applyRevocationList(JSON.stringify(good))).toMatchObject({ ok: false, reason: "malformed" });
    expect(v.applyRevocationList("not json")).toMatchObject({ ok: false, reason: "malformed" });
    expect(v.revocation.number).toBe(-1);
  });
});

describe("garbage input never crashes the verifier", () => {
  const cases: [string, string][] = [
    ["empty", ""],
    ["random bytes", randomBytes(512).toString("latin1")],
    ["truncated PEM", "-----BEGIN CERTIFICATE-----\nMIIBszCCAWWgAwIBAgIQ"],
    ["PEM with junk base64", "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"],
    ["PEM with random DER", toPem(randomBytes(300), "CERTIFICATE")],
    ["10 MB", "A".repeat(10 * 1024 * 1024)],
  ];
  for (const [label, text] of cases) {
    it(label, () => {
      const r = verifier().verifyPem(text);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toBe("malformed");
    });
  }
  it("truncated DER of a real certificate", async () => {
    const leaf = await makeLeaf(ca, "cut");
    for (const n of [1, 10, 100, leaf.der.length - 1]) expectReject(verifier().verifyChain([leaf.der.subarray(0, n)]), "malformed");
  });
  it("a bad trust bundle is a clear error", () => {
    expect(() => new Verifier({ bundlePem: "" })).toThrow(/trust bundle/);
    expect(() => new Verifier({ bundlePem: toPem(ca.intermediateDer, "CERTIFICATE") })).toThrow(/no self-signed root/);
  });
});
