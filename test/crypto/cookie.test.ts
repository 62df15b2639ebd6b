// The silent port's cryptography (docs/crypto.md "Silent port and cookies"): mac1 keyed by what only a member
// of the mesh knows about the responder, mac2 keyed by a cookie tied to the source address and a rotating
// secret, the cookie reply (small, sealed, bound to the INIT it answers), the load meter, and the INIT claim
// (sealed, signed over the responder's name, e and the timestamp).
import { describe, expect, it } from "vitest";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { CookieChecker, cookieKey, mac, mac1Key, openCookieReply, responderKey, writeInitMacs } from "../../src/crypto/cookie.js";
import { claimSignatureHolds, openClaim, sealClaim, signClaim } from "../../src/crypto/init-claim.js";
import { generateEd25519, rawPublicKey } from "../../src/pki/index.js";
import { encodeHandshake, encodeInitMessage, parseCookieReply } from "../../src/wire/handshake-frame.js";
import {
  COOKIE_REPLY_SIZE, COOKIE_SECRET_ROTATE_MS, HANDSHAKE_INIT_DATAGRAM, HANDSHAKE_UNDER_LOAD_PER_S, PACKET, UNDER_LOAD_HOLD_MS,
} from "../../src/wire/constants.js";

const root = createHash("sha256").update("a root certificate").digest();
const otherRoot = createHash("sha256").update("another root").digest();
const rkB = responderKey(root, "node-b");

function init(rk = rkB, cookie?: Uint8Array): Buffer {
  const [f] = encodeHandshake(PACKET.HANDSHAKE_INIT, 42, undefined, encodeInitMessage(randomBytes(32), randomBytes(100)));
  writeInitMacs(f, mac1Key(rk), cookie);
  return f;
}

describe("mac1", () => {
  it("verifies only under the responder key it was made for: same name, same root", () => {
    const c = new CookieChecker([rkB], 0);
    expect(c.checkMac1(init())).toBe(0);
    expect(c.checkMac1(init(responderKey(root, "node-c")))).toBe(-1); // another node's name
    expect(c.checkMac1(init(responderKey(otherRoot, "node-b")))).toBe(-1); // another mesh
    // a node that trusts two roots accepts either (its responder key for each)
    const two = new CookieChecker([responderKey(otherRoot, "node-b"), rkB], 0);
    expect(two.checkMac1(init())).toBe(1);
  });

  it("covers every byte before it: one flipped bit anywhere fails", () => {
    const c = new CookieChecker([rkB], 0);
    const f = init();
    for (let i = 0; i < f.length - 32; i += 13) {
      const g = Buffer.from(f);
      g[i] ^= 1;
      expect(c.checkMac1(g), `byte ${i}`).toBe(-1);
    }
    const g = Buffer.from(f);
    g[f.length - 20] ^= 1; // inside mac1 itself
    expect(c.checkMac1(g)).toBe(-1);
    const h = Buffer.from(f);
    h[f.length - 1] ^= 1; // mac2 is not covered by mac1
    expect(c.checkMac1(h)).toBe(0);
  });
});

describe("the load meter", () => {
  it("goes under load above the rate and stays there for the hold time", () => {
    const c = new CookieChecker([rkB], 0);
    for (let i = 0; i < HANDSHAKE_UNDER_LOAD_PER_S; i++) expect(c.noteInit(500)).toBe(false);
    expect(c.noteInit(600)).toBe(true);
    expect(c.underLoad(600 + UNDER_LOAD_HOLD_MS - 1)).toBe(true);
    expect(c.underLoad(600 + UNDER_LOAD_HOLD_MS)).toBe(false);
    expect(c.noteInit(5_000)).toBe(false); // a new second, a new count
  });
});

describe("cookies and mac2", () => {
  it("a cookie reply is 64 bytes, opens only with the responder key and the mac1 of the INIT it answers, and its cookie makes mac2", () => {
    const c = new CookieChecker([rkB], 1_000);
    const f = init();
    const reply = c.reply(f, 42, "198.18.0.1:5000", 0, 1_000);
    expect(reply.length).toBe(COOKIE_REPLY_SIZE);
    expect(reply.length).toBeLessThan(HANDSHAKE_INIT_DATAGRAM / 6);
    const p = parseCookieReply(reply);
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    expect(p.receiverIndex).toBe(42);
    const mac1 = f.subarray(f.length - 32, f.length - 16);
    const cookie = openCookieReply(p, rkB, mac1)!;
    expect(cookie).toBeDefined();
    // the same bytes as @noble/ciphers' XChaCha20-Poly1305 (libsodium seals here where its addon loads)
    expect(Buffer.from(xchacha20poly1305(cookieKey(rkB), p.nonce, mac1).decrypt(p.sealedCookie)).equals(Buffer.from(cookie))).toBe(true);
    expect(cookie.length).toBe(16);
    expect(openCookieReply(p, responderKey(root, "node-c"), mac1)).toBeUndefined(); // someone else's reply
    expect(openCookieReply(p, rkB, new Uint8Array(16))).toBeUndefined(); // not for this INIT
    const tampered = Buffer.from(reply);
    tampered[40] ^= 1;
    const tp = parseCookieReply(tampered);
    expect(tp.ok && openCookieReply(tp, rkB, mac1)).toBeFalsy();
    // with the cookie, the next INIT from the same address passes mac2; from another address, or without it, not
    const next = init(rkB, cookie);
    expect(c.checkMac1(next)).toBe(0);
    expect(c.checkMac2(next, "198.18.0.1:5000", 2_000)).toBe(true);
    expect(c.checkMac2(next, "198.18.0.1:5001", 2_000)).toBe(false);
    expect(c.checkMac2(init(), "198.18.0.1:5000", 2_000)).toBe(false);
    // the secret rotates every two minutes: an old cookie stops working
    expect(c.checkMac2(next, "198.18.0.1:5000", 1_000 + COOKIE_SECRET_ROTATE_MS + 1)).toBe(false);
  });

  it("mac is truncated HMAC-SHA-256", () => {
    const key = randomBytes(32);
    const data = randomBytes(100);
    expect(Buffer.from(mac(key, data)).equals(createHmac("sha256", key).update(data).digest().subarray(0, 16))).toBe(true);
  });
});

describe("the INIT claim", () => {
  const keys = generateEd25519();
  const pub = rawPublicKey(keys.publicKey);

  it("seals to the responder key and e; the signature binds the responder's name, e and the timestamp", () => {
    const e = randomBytes(32);
    const ts = 1_700_000_000_000;
    const claim = { name: "node-a", ts, sig: signClaim(keys.privateKey, "node-b", e, ts) };
    const sealed = sealClaim(rkB, e, claim);
    expect(Buffer.from(sealed).includes("node-a")).toBe(false); // the name is not in the clear
    const opened = openClaim(rkB, e, sealed)!;
    expect(opened).toMatchObject({ name: "node-a", ts });
    expect(openClaim(responderKey(root, "node-c"), e, sealed)).toBeUndefined();
    expect(openClaim(rkB, randomBytes(32), sealed)).toBeUndefined();
    expect(claimSignatureHolds(pub, "node-b", e, opened)).toBe(true);
    expect(claimSignatureHolds(pub, "node-c", e, opened)).toBe(false); // made for another responder
    expect(claimSignatureHolds(pub, "node-b", randomBytes(32), opened)).toBe(false); // another INIT's e
    expect(claimSignatureHolds(pub, "node-b", e, { ...opened, ts: ts + 1 })).toBe(false); // another time
    expect(claimSignatureHolds(rawPublicKey(generateEd25519().publicKey), "node-b", e, opened)).toBe(false); // another key
  });

  it("carries a certificate chain when asked to, and refuses garbage", () => {
    const e = randomBytes(32);
    const chain = [randomBytes(900), randomBytes(400)];
    const sealed = sealClaim(rkB, e, { name: "node-a", ts: 1, sig: new Uint8Array(64), chain });
    expect(openClaim(rkB, e, sealed)!.chain!.map((c) => c.length)).toEqual([900, 400]);
    const bad = Buffer.from(sealed);
    bad[3] ^= 1;
    expect(openClaim(rkB, e, bad)).toBeUndefined();
    expect(openClaim(rkB, e, randomBytes(10))).toBeUndefined();
  });
});
