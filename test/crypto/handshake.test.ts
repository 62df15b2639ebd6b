// The certificate-bound Noise XX handshake with real issued certificates: success both ways with
// matching keys, refusals with the verifier's reason, binding to the Noise static key, and hostile bytes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Verifier, parseCertificate, signRevocationList, type CaMaterial } from "../../src/pki/index.js";
import {
  HandshakeError, Initiator, Responder, TimestampGuard, generateStaticKeyPair, type LocalIdentity,
} from "../../src/crypto/handshake.js";
import { TransportCipher } from "../../src/crypto/transport.js";
import { craftLeaf, makeCa, makeLeaf, tempDir, type TestLeaf } from "../helpers/pki.js";

const tmp = tempDir("ember-hs-");
let ca: CaMaterial;
let foreignCa: CaMaterial;
let verifier: Verifier;
let alice: LocalIdentity;
let bob: LocalIdentity;

function local(ca: CaMaterial, leaf: TestLeaf, keys = generateStaticKeyPair()): LocalIdentity {
  return { certChainDer: [leaf.der, ca.intermediateDer], certPrivateKey: leaf.keys.privateKey, ...keys };
}

/** Runs all three messages; returns both sides. Throws whatever the handshake throws. */
function handshake(a: LocalIdentity, b: LocalIdentity, va = verifier, vb = verifier) {
  const i = new Initiator(a, va);
  const r = new Responder(b, vb);
  r.readInit(i.writeInit());
  i.readResp(r.writeResp());
  r.readFinal(i.writeFinal());
  return { i, r };
}

function refusal(fn: () => unknown): HandshakeError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(HandshakeError);
    return err as HandshakeError;
  }
  throw new Error("expected a HandshakeError, the handshake succeeded");
}

beforeAll(async () => {
  ca = await makeCa(tmp.dir);
  foreignCa = await makeCa(tmp.dir);
  verifier = new Verifier({ bundlePem: ca.bundlePem });
  alice = local(ca, await makeLeaf(ca, "alice", { groups: ["eng"] }));
  bob = local(ca, await makeLeaf(ca, "bob", { groups: ["ops"] }));
});
afterAll(() => tmp.cleanup());

describe("EmberNet handshake", () => {
  it("completes both ways with matching transport keys and verified identities", () => {
    for (const [a, b, an, bn] of [[alice, bob, "alice", "bob"], [bob, alice, "bob", "alice"]] as const) {
      const { i, r } = handshake(a, b);
      const ir = i.result();
      const rr = r.result();
      expect(ir.identity.name).toBe(bn);
      expect(rr.identity.name).toBe(an);
      expect(Buffer.from(ir.sendKey).equals(Buffer.from(rr.recvKey))).toBe(true);
      expect(Buffer.from(ir.recvKey).equals(Buffer.from(rr.sendKey))).toBe(true);
      expect(Buffer.from(ir.sendKey).equals(Buffer.from(ir.recvKey))).toBe(false);
      expect(Buffer.from(ir.peerStatic).equals(Buffer.from(b.staticPublic))).toBe(true);
      expect(Buffer.from(rr.peerStatic).equals(Buffer.from(a.staticPublic))).toBe(true);
      // and the keys actually carry traffic
      const out = new Uint8Array(64);
      const n = new TransportCipher(ir.sendKey).seal(0, Buffer.from("hello"), out, 0);
      const plain = new Uint8Array(64);
      expect(new TransportCipher(rr.recvKey).open(0, out.subarray(0, n), plain)).toBe(5);
      expect(Buffer.from(plain.subarray(0, 5)).toString()).toBe("hello");
    }
  });

  it("gives every handshake fresh keys and a strictly increasing timestamp", () => {
    const a = handshake(alice, bob);
    const b = handshake(alice, bob);
    expect(Buffer.from(a.i.result().sendKey).equals(Buffer.from(b.i.result().sendKey))).toBe(false);
    expect(b.r.result().timestamp).toBeGreaterThan(a.r.result().timestamp);
  });

  it("keeps identities out of the clear: no certificate bytes in any message", () => {
    const i = new Initiator(alice, verifier);
    const r = new Responder(bob, verifier);
    const m1 = i.writeInit();
    r.readInit(m1);
    const m2 = r.writeResp();
    i.readResp(m2);
    const m3 = i.writeFinal();
    expect(m1.length).toBe(32);
    for (const m of [m1, m2, m3]) {
      for (const name of ["alice", "bob", "acme.internal"]) expect(Buffer.from(m).includes(name)).toBe(false);
    }
  });

  it("refuses a revoked peer with reason revoked (either side)", async () => {
    const leaf = await makeLeaf(ca, "mallory");
    const v = new Verifier({ bundlePem: ca.bundlePem });
    const list = signRevocationList(ca, 1, [parseCertificate(leaf.der).serial]);
    expect(v.applyRevocationList(list)).toEqual({ ok: true });
    const mallory = local(ca, leaf);
    expect(refusal(() => handshake(mallory, bob, v, v)).reason).toBe("revoked"); // bob refuses mallory's msg 3
    expect(refusal(() => handshake(bob, mallory, v, v)).reason).toBe("revoked"); // bob refuses mallory's msg 2
  });

  it("refuses an expired peer with reason expired", async () => {
    const now = Date.now();
    const leaf = await craftLeaf(ca, { name: "old", notBefore: new Date(now - 7_200_000), notAfter: new Date(now - 3_600_000) });
    const err = refusal(() => handshake(local(ca, leaf), bob));
    expect(err.reason).toBe("expired");
    expect(err.message).toMatch(/expired/);
  });

  it("refuses a peer from a foreign CA with reason unknown_ca", async () => {
    const stranger = local(foreignCa, await makeLeaf(foreignCa, "stranger"));
    expect(refusal(() => handshake(stranger, bob)).reason).toBe("unknown_ca");
    expect(refusal(() => handshake(bob, stranger)).reason).toBe("unknown_ca");
  });

  it("refuses a certificate whose signature binds a different static key (bad_binding)", () => {
    // Alice's certificate and a valid binding signature for static key X, presented in a handshake run
    // with static key Y (what an attacker with a copied payload but without X's private key could do).
    // The binding signature is cached per LocalIdentity object, so signing first and swapping the static
    // key afterwards makes the payload carry the signature over X.
    const x = generateStaticKeyPair();
    const forged: LocalIdentity = { ...alice, ...x };
    const warm = new Initiator(bob, verifier);
    const warmR = new Responder(forged, verifier);
    warmR.readInit(warm.writeInit());
    warm.readResp(warmR.writeResp()); // honest: signature over X, Noise static X
    Object.assign(forged, generateStaticKeyPair()); // Noise static now Y, cached signature still over X
    expect(refusal(() => handshake(forged, bob)).reason).toBe("bad_binding");
    expect(refusal(() => handshake(bob, forged)).reason).toBe("bad_binding");
  });

  it("refuses a binding signed by a key that is not the certificate's (bad_binding)", () => {
    const mismatched: LocalIdentity = { ...bob, certPrivateKey: alice.certPrivateKey };
    const err = refusal(() => handshake(alice, mismatched));
    expect(err.reason).toBe("bad_binding");
    expect(err.message).toMatch(/bob/);
  });
});

describe("hostile handshake bytes", () => {
  /** Every corruption of every message must end in HandshakeError, never another exception. */
  function corrupt(step: 1 | 2 | 3, mutate: (m: Uint8Array) => Uint8Array): HandshakeError {
    const i = new Initiator(alice, verifier);
    const r = new Responder(bob, verifier);
    let m = i.writeInit();
    if (step === 1) return refusal(() => r.readInit(mutate(m)));
    r.readInit(m);
    m = r.writeResp();
    if (step === 2) return refusal(() => i.readResp(mutate(m)));
    i.readResp(m);
    m = i.writeFinal();
    return refusal(() => r.readFinal(mutate(m)));
  }

  it("flipped bits in messages 2 and 3 fail authentication (decrypt_failed)", () => {
    for (const step of [2, 3] as const) {
      for (const pos of [0, 31, 40, 70, 100, -17, -1]) {
        const err = corrupt(step, (m) => { const c = Uint8Array.from(m); c[(pos + c.length) % c.length] ^= 0x04; return c; });
        expect(["decrypt_failed", "malformed"]).toContain(err.reason);
      }
    }
  });

  it("truncated and oversized messages are refused", () => {
    for (const step of [1, 2, 3] as const) {
      for (const len of [0, 1, 31, 33, 63, 95]) corrupt(step, (m) => m.subarray(0, Math.min(len, m.length - 1)));
      const err = corrupt(step, (m) => new Uint8Array([...m, ...new Uint8Array(64)]));
      expect(["decrypt_failed", "malformed"]).toContain(err.reason);
    }
  });

  it("random garbage of many lengths never throws anything but HandshakeError", () => {
    for (let n = 0; n < 200; n++) {
      const junk = new Uint8Array(n * 7).map(() => Math.floor(Math.random() * 256));
      corrupt((1 + (n % 3)) as 1 | 2 | 3, () => junk);
    }
  });

  it("a forged response does not kill the handshake: the genuine one still completes", async () => {
    const stranger = local(foreignCa, await makeLeaf(foreignCa, "stranger"));
    const i = new Initiator(alice, verifier);
    const m1 = i.writeInit();
    const fake = new Responder(stranger, verifier);
    fake.readInit(m1);
    expect(refusal(() => i.readResp(fake.writeResp())).reason).toBe("unknown_ca");
    const r = new Responder(bob, verifier);
    r.readInit(m1);
    i.readResp(r.writeResp());
    r.readFinal(i.writeFinal());
    expect(i.result().identity.name).toBe("bob");
    expect(Buffer.from(i.result().sendKey).equals(Buffer.from(r.result().recvKey))).toBe(true);
  });

  it("refuses steps out of order and results before completion", () => {
    const i = new Initiator(alice, verifier);
    expect(refusal(() => i.writeFinal()).reason).toBe("out_of_order");
    expect(refusal(() => i.result()).reason).toBe("out_of_order");
    const r = new Responder(bob, verifier);
    expect(refusal(() => r.writeResp()).reason).toBe("out_of_order");
  });

  it("a replayed message 1 yields a response nobody can finish; a replayed message 3 fails", () => {
    const i = new Initiator(alice, verifier);
    const r = new Responder(bob, verifier);
    const m1 = i.writeInit();
    r.readInit(m1);
    i.readResp(r.writeResp());
    const m3 = i.writeFinal();
    r.readFinal(m3);
    // attacker replays m1 to a fresh responder state, and then the recorded m3
    const r2 = new Responder(bob, verifier);
    r2.readInit(m1);
    r2.writeResp(); // new responder ephemeral: the recorded m3 was made for the old one
    expect(refusal(() => r2.readFinal(m3)).reason).toBe("decrypt_failed");
  });
});

describe("TimestampGuard", () => {
  it("accepts only strictly newer timestamps per identity", () => {
    const g = new TimestampGuard();
    expect(g.accept("alice", 1000)).toBe(true);
    expect(g.accept("alice", 1000)).toBe(false);
    expect(g.accept("alice", 999)).toBe(false);
    expect(g.accept("bob", 5)).toBe(true);
    expect(g.accept("alice", 1001)).toBe(true);
    expect(g.latest("alice")).toBe(1001);
  });

  it("refuses a replayed (authenticated) handshake's timestamp once a newer one was accepted", () => {
    const g = new TimestampGuard();
    const first = handshake(alice, bob).r.result();
    const second = handshake(alice, bob).r.result();
    expect(g.accept(second.identity.name, second.timestamp)).toBe(true);
    expect(g.accept(first.identity.name, first.timestamp)).toBe(false);
  });

  it("stays bounded", () => {
    const g = new TimestampGuard(3);
    for (const n of ["a", "b", "c", "d"]) g.accept(n, 1);
    expect(g.latest("a")).toBeUndefined();
    expect(g.latest("d")).toBe(1);
  });
});
