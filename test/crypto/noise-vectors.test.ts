// Noise XX against the cacophony test vectors (haskell-cryptography/cacophony, vectors/cacophony.txt):
// handshake messages, handshake hash and transport messages byte for byte, for SHA-256 and BLAKE2s.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { keyPairFromPrivate, XXHandshake, type NoiseHash } from "../../src/crypto/noise.js";
import { open, seal } from "../../src/crypto/aead.js";

const fixture = JSON.parse(readFileSync(join(import.meta.dirname, "vectors", "noise-xx-cacophony.json"), "utf8"));
const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
const toHex = (u: Uint8Array) => Buffer.from(u).toString("hex");

describe("Noise XX cacophony vectors", () => {
  for (const v of fixture.vectors) {
    it(v.protocol_name, () => {
      const hash = v.protocol_name.split("_").pop() as NoiseHash;
      const init = new XXHandshake({ initiator: true, hash, prologue: hex(v.init_prologue), staticKey: keyPairFromPrivate(hex(v.init_static)), ephemeral: keyPairFromPrivate(hex(v.init_ephemeral)) });
      const resp = new XXHandshake({ initiator: false, hash, prologue: hex(v.resp_prologue), staticKey: keyPairFromPrivate(hex(v.resp_static)), ephemeral: keyPairFromPrivate(hex(v.resp_ephemeral)) });
      const [m1, m2, m3, ...transport] = v.messages;
      const c1 = init.writeMessage(hex(m1.payload));
      expect(toHex(c1)).toBe(m1.ciphertext);
      expect(toHex(resp.readMessage(c1))).toBe(m1.payload);
      const c2 = resp.writeMessage(hex(m2.payload));
      expect(toHex(c2)).toBe(m2.ciphertext);
      expect(toHex(init.readMessage(c2))).toBe(m2.payload);
      const c3 = init.writeMessage(hex(m3.payload));
      expect(toHex(c3)).toBe(m3.ciphertext);
      expect(toHex(resp.readMessage(c3))).toBe(m3.payload);
      expect(toHex(init.handshakeHash)).toBe(v.handshake_hash);
      expect(toHex(resp.handshakeHash)).toBe(v.handshake_hash);
      const [i2r, r2i] = init.split();
      const [ri2r, rr2i] = resp.split();
      expect(toHex(ri2r)).toBe(toHex(i2r));
      expect(toHex(rr2i)).toBe(toHex(r2i));
      // transport messages keep alternating after the third handshake message: responder first
      const n = [0, 0];
      transport.forEach((m: { payload: string; ciphertext: string }, i: number) => {
        const dir = (i + 1) % 2;
        const key = dir === 0 ? i2r : r2i;
        expect(toHex(seal(key, n[dir], undefined, hex(m.payload)))).toBe(m.ciphertext);
        expect(toHex(open(key, n[dir], undefined, hex(m.ciphertext))!)).toBe(m.payload);
        n[dir]++;
      });
    });
  }

  it("refuses out-of-order use and tampered messages", () => {
    const a = new XXHandshake({ initiator: true, staticKey: keyPairFromPrivate(new Uint8Array(32).fill(1)) });
    const b = new XXHandshake({ initiator: false, staticKey: keyPairFromPrivate(new Uint8Array(32).fill(2)) });
    expect(() => b.writeMessage(new Uint8Array(0))).toThrow(/out_of_order/);
    b.readMessage(a.writeMessage(new Uint8Array(0)));
    const m2 = b.writeMessage(new Uint8Array(0));
    m2[40] ^= 1;
    expect(() => a.readMessage(m2)).toThrow(/decrypt_failed/);
    expect(() => a.readMessage(new Uint8Array(10))).toThrow(/truncated/);
  });
});

describe("Noise XX edge cases", () => {
  it("refuses a low-order (all-zero) ephemeral key instead of using a zero shared secret", () => {
    const b = new XXHandshake({ initiator: false, staticKey: keyPairFromPrivate(new Uint8Array(32).fill(2)) });
    b.readMessage(new Uint8Array(32)); // message 1 only mixes the key into the hash
    expect(() => b.writeMessage(new Uint8Array(0))).toThrow(/bad_public_key/);
  });

  it("a failed read leaves the state untouched", () => {
    const a = new XXHandshake({ initiator: true, staticKey: keyPairFromPrivate(new Uint8Array(32).fill(1)) });
    const b = new XXHandshake({ initiator: false, staticKey: keyPairFromPrivate(new Uint8Array(32).fill(2)) });
    b.readMessage(a.writeMessage(new Uint8Array(0)));
    const m2 = b.writeMessage(Uint8Array.of(7));
    const bad = Uint8Array.from(m2);
    bad[bad.length - 1] ^= 1;
    expect(() => a.readMessage(bad)).toThrow(/decrypt_failed/);
    expect(() => a.readMessage(m2, () => { throw new Error("payload refused"); })).toThrow(/payload refused/);
    expect(Array.from(a.readMessage(m2))).toEqual([7]);
    b.readMessage(a.writeMessage(new Uint8Array(0)));
    expect(Buffer.from(a.split()[0]).equals(Buffer.from(b.split()[0]))).toBe(true);
  });
});

describe("X25519 key handling", () => {
  it("generated and imported keys agree with an independent implementation (@noble/curves)", async () => {
    const { x25519 } = await import("@noble/curves/ed25519.js");
    const { generateX25519, dh, publicFromPrivate } = await import("../../src/crypto/x25519.js");
    for (let i = 0; i < 20; i++) {
      const a = generateX25519();
      const b = generateX25519();
      expect(toHex(a.publicKey)).toBe(toHex(x25519.getPublicKey(a.privateKey)));
      expect(toHex(publicFromPrivate(Uint8Array.from(b.privateKey)))).toBe(toHex(b.publicKey));
      expect(toHex(dh(a.privateKey, b.publicKey))).toBe(toHex(x25519.getSharedSecret(b.privateKey, a.publicKey)));
    }
    expect(() => dh(new Uint8Array(31), new Uint8Array(32))).toThrow(/32 bytes/);
    // a low-order public key (here the identity, all zero) gives an all-zero secret: refused
    expect(() => dh(generateX25519().privateKey, new Uint8Array(32))).toThrow();
  });

  it("the node:crypto fallback (no sodium-native) agrees with @noble/curves and seals the same bytes", () => {
    const script = `
      const { x25519 } = await import("@noble/curves/ed25519.js");
      const { generateX25519, dh } = await import("./src/crypto/x25519.ts");
      const { aead, seal } = await import("./src/crypto/aead.ts");
      const a = generateX25519(), b = generateX25519();
      const ok = Buffer.from(dh(a.privateKey, b.publicKey)).equals(Buffer.from(x25519.getSharedSecret(b.privateKey, a.publicKey)));
      let lowOrder = "accepted"; try { dh(a.privateKey, new Uint8Array(32)); } catch { lowOrder = "refused"; }
      const sealed = Buffer.from(seal(new Uint8Array(32).fill(7), 5, undefined, new Uint8Array(100).fill(1))).toString("hex");
      console.log(JSON.stringify({ backend: aead.name, ok, lowOrder, sealed }));`;
    const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: join(import.meta.dirname, "../.."), env: { ...process.env, EMBER_SODIUM: "off", EMBER_AEAD: "" }, encoding: "utf8",
    });
    expect(run.status, run.stderr).toBe(0);
    const r = JSON.parse(run.stdout.trim().split("\n").pop()!);
    expect(r).toMatchObject({ backend: "node:crypto", ok: true, lowOrder: "refused" });
    expect(r.sealed).toBe(Buffer.from(seal(new Uint8Array(32).fill(7), 5, undefined, new Uint8Array(100).fill(1))).toString("hex"));
  });
});
