// User certificates (issue 15): bound to one device's name and key, never accepted as a machine identity,
// and a machine's certificate never accepted as a user's.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueUserCert, parseCertificate, signRevocationList, Verifier, type CaMaterial } from "../../src/pki/index.js";
import { craftLeaf, makeCa, makeLeaf, tempDir, type TestLeaf } from "../helpers/pki.js";

describe("user certificates", () => {
  const tmp = tempDir();
  let ca: CaMaterial, verifier: Verifier, laptop: TestLeaf, other: TestLeaf;
  const deviceOf = (leaf: TestLeaf) => {
    const r = verifier.verifyChain([leaf.der]);
    if (!r.ok) throw new Error(r.detail);
    return r.identity;
  };
  const aliceOn = (leaf: TestLeaf, device = deviceOf(leaf).name, opts: { ttlMs?: number; now?: number } = {}) =>
    issueUserCert(ca, { user: "alice", tenant: "acme", groups: ["eng"], device, devicePublicKey: leaf.keys.publicKey, ...opts });

  beforeAll(async () => {
    ca = await makeCa(tmp.dir);
    verifier = new Verifier({ bundlePem: ca.bundlePem });
    laptop = await makeLeaf(ca, "laptop-1", { tenant: "acme" });
    other = await makeLeaf(ca, "laptop-2", { tenant: "acme" });
  });
  afterAll(() => tmp.cleanup());

  it("verifies on the device it is bound to, naming user, groups and device", () => {
    const cert = aliceOn(laptop);
    const r = verifier.verifyUser([cert.der], deviceOf(laptop));
    expect(r.ok && r.user).toMatchObject({ name: "alice", tenant: "acme", groups: ["eng"], device: "laptop-1", serial: cert.serial });
    expect(parseCertificate(cert.der).uris).toEqual(["spiffe://acme.internal/acme/user/alice"]);
  });

  it("is worthless on another device: another name, or the right name with another key", () => {
    const cert = aliceOn(laptop);
    const r = verifier.verifyUser([cert.der], deviceOf(other));
    expect(!r.ok && r.detail).toMatch(/bound to device "laptop-1", presented by "laptop-2"/);
    const forged = aliceOn(laptop, "laptop-2");
    const k = verifier.verifyUser([forged.der], deviceOf(other));
    expect(!k.ok && k.detail).toMatch(/not bound to laptop-2's key/);
  });

  it("a user certificate is never a machine identity, and a machine certificate never a user", () => {
    const m = verifier.verifyChain([aliceOn(laptop).der]);
    expect(m.ok).toBe(false);
    expect(!m.ok && m.reason).toBe("wrong_usage");
    const clientOnly = verifier.verifyChain([aliceOn(laptop).der], { usage: "client" });
    expect(clientOnly.ok).toBe(false);
    const u = verifier.verifyUser([laptop.der], deviceOf(laptop));
    expect(!u.ok && u.detail).toMatch(/clientAuth only/);
  });

  it("a machine certificate crafted with a device grant is refused as a machine", async () => {
    const crafted = await craftLeaf(ca, { name: "db-1", grants: { tenant: "acme", groups: [], roles: [], device: "db-1" } });
    const r = verifier.verifyChain([crafted.der]);
    expect(!r.ok && r.detail).toMatch(/user certificate cannot be used as a machine identity/);
  });

  it("expired and revoked user certificates are refused", () => {
    const cert = aliceOn(laptop, undefined, { ttlMs: 1_000, now: Date.now() - 120_000 });
    const r = verifier.verifyUser([cert.der], deviceOf(laptop));
    expect(!r.ok && r.reason).toBe("expired");
    const live = aliceOn(laptop);
    const own = new Verifier({ bundlePem: ca.bundlePem });
    own.applyRevocationList(signRevocationList(ca, 1, [live.serial]));
    const v = own.verifyUser([live.der], deviceOf(laptop));
    expect(!v.ok && v.reason).toBe("revoked");
  });
});
