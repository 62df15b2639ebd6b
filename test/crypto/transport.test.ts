// Transport ciphers (every AEAD backend), the replay window and the key-usage limits.
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { aead, nobleAead, nodeAead, sodiumAead, type AeadBackend } from "../../src/crypto/aead.js";
import { DEFAULT_KEY_LIMITS, REPLAY_WINDOW_SPAN, ReplayWindow, TransportCipher, keyExpired, shouldRekey } from "../../src/crypto/transport.js";
import { REJECT_AFTER_MESSAGES, REPLAY_WINDOW_SIZE, TAG_SIZE } from "../../src/wire/constants.js";

const backends: AeadBackend[] = [nodeAead, nobleAead, ...(sodiumAead ? [sodiumAead] : [])];
if (!sodiumAead) console.log("sodium-native did not load here: its backend is not tested, node:crypto is the transport's");

describe("TransportCipher", () => {
  const key = randomBytes(32);
  it("uses libsodium where sodium-native ships a prebuilt addon (linux-x64 here), else node:crypto", () => {
    const forced = process.env.EMBER_AEAD || process.env.EMBER_SODIUM === "off";
    if (!forced && process.platform === "linux" && process.arch === "x64") expect(aead).toBe(sodiumAead);
    else expect(backends).toContain(aead);
  });

  for (const backend of backends) {
    it(`${backend.name}: sealing in place (plaintext already where the ciphertext goes) equals sealing from a copy`, () => {
      const c = new TransportCipher(key, backend);
      for (const len of [0, 1, 63, 1200, 1439]) {
        const plain = randomBytes(len);
        const ref = Buffer.alloc(16 + len + TAG_SIZE);
        c.seal(7, plain, ref, 16);
        const inPlace = Buffer.alloc(16 + len + TAG_SIZE);
        plain.copy(inPlace, 16);
        expect(c.seal(7, inPlace.subarray(16, 16 + len), inPlace, 16)).toBe(len + TAG_SIZE);
        expect(inPlace.equals(ref)).toBe(true);
        const back = Buffer.alloc(len);
        expect(c.open(7, inPlace.subarray(16), back)).toBe(len);
        expect(back.equals(plain)).toBe(true);
      }
    });

    it(`${backend.name}: round trip at an offset, tag failure, wrong counter, wrong key`, () => {
      const tx = new TransportCipher(key, backend);
      const rx = new TransportCipher(key, backend);
      for (const size of [0, 1, 64, 1400]) {
        const plain = randomBytes(size);
        const out = new Uint8Array(16 + size + TAG_SIZE);
        const counter = 2 ** 40 + size;
        expect(tx.seal(counter, plain, out, 16)).toBe(size + TAG_SIZE);
        const sealed = out.subarray(16);
        const back = new Uint8Array(size);
        expect(rx.open(counter, sealed, back)).toBe(size);
        expect(Buffer.from(back).equals(plain)).toBe(true);
        expect(rx.open(counter + 1, sealed, back)).toBe(-1);
        const bad = Uint8Array.from(sealed);
        bad[bad.length - 1] ^= 1;
        expect(rx.open(counter, bad, back)).toBe(-1);
        if (size > 0) { const b2 = Uint8Array.from(sealed); b2[0] ^= 0x80; expect(rx.open(counter, b2, back)).toBe(-1); }
        expect(new TransportCipher(randomBytes(32), backend).open(counter, sealed, back)).toBe(-1);
      }
      expect(rx.open(0, new Uint8Array(TAG_SIZE - 1), new Uint8Array(0))).toBe(-1);
    });
  }

  it("every backend produces the same bytes (RFC 8439 with the Noise nonce) and opens the others'", () => {
    const plain = randomBytes(300);
    const sealed = backends.map((b) => {
      const out = new Uint8Array(316);
      new TransportCipher(key, b).seal(0x1_0000_0005, plain, out, 0);
      return Buffer.from(out);
    });
    for (const s of sealed) expect(s.equals(sealed[0])).toBe(true);
    for (const b of backends) {
      const back = new Uint8Array(300);
      expect(new TransportCipher(key, b).open(0x1_0000_0005, sealed[0], back)).toBe(300);
      expect(Buffer.from(back).equals(plain)).toBe(true);
    }
    // with associated data, as the handshake uses it
    const ad = randomBytes(32);
    const withAd = backends.map((b) => {
      const out = new Uint8Array(316);
      b.sealInto(b.prepareKey(key), 7, ad, plain, out, 0);
      return Buffer.from(out);
    });
    for (const s of withAd) expect(s.equals(withAd[0])).toBe(true);
    expect(withAd[0].equals(sealed[0])).toBe(false);
  });

  it("refuses bad keys and counters past the message limit", () => {
    expect(() => new TransportCipher(new Uint8Array(16))).toThrow(/32 bytes/);
    const tx = new TransportCipher(key);
    expect(() => tx.seal(REJECT_AFTER_MESSAGES, new Uint8Array(1), new Uint8Array(32), 0)).toThrow(/rekey/);
    expect(() => tx.seal(-1, new Uint8Array(1), new Uint8Array(32), 0)).toThrow(/rekey/);
  });
});

describe("ReplayWindow", () => {
  it("accepts in order and refuses duplicates", () => {
    const w = new ReplayWindow();
    for (let c = 0; c < 5000; c++) {
      expect(w.check(c)).toBe(true);
      w.update(c);
      expect(w.check(c)).toBe(false);
    }
    expect(w.highest).toBe(4999);
  });

  it("accepts out-of-order counters within the window, once each", () => {
    const w = new ReplayWindow();
    w.update(3000);
    const order = [2999, 1000, 2500, 10, 2998, 1001];
    for (const c of order) { expect(w.check(c)).toBe(true); w.update(c); }
    for (const c of [...order, 3000]) expect(w.check(c)).toBe(false);
    expect(w.check(2997)).toBe(true);
  });

  it("refuses counters too far behind and keeps working after far jumps ahead", () => {
    const w = new ReplayWindow();
    w.update(0);
    w.update(100_000); // jump far ahead: the whole bitmap is stale and must be cleared
    expect(w.check(100_000 - REPLAY_WINDOW_SPAN)).toBe(false);
    expect(w.check(100_000 - REPLAY_WINDOW_SPAN + 1)).toBe(true);
    expect(w.check(99_999)).toBe(true);
    expect(w.check(0)).toBe(false);
    // counters from before the jump that alias the same bitmap positions are not mistaken for seen ones
    for (let c = 100_001; c < 100_001 + REPLAY_WINDOW_SIZE; c++) expect(w.check(c)).toBe(true);
    w.update(100_000 + 3 * REPLAY_WINDOW_SIZE + 5);
    expect(w.check(100_000 + 2 * REPLAY_WINDOW_SIZE + 5 + 100)).toBe(true);
  });

  it("ignores update() for a counter outside the window instead of aliasing a newer one", () => {
    const W = REPLAY_WINDOW_SIZE;
    const w = new ReplayWindow();
    w.update(2 * W + 10);
    expect(w.check(2 * W + 5)).toBe(true);
    w.update(W + 5); // too old, and it shares its bitmap position with 2W+5
    expect(w.check(2 * W + 5)).toBe(true);
  });

  it("window of at least 2048 packets", () => {
    const w = new ReplayWindow();
    w.update(10_000);
    expect(w.check(10_000 - 2048)).toBe(true);
    expect(REPLAY_WINDOW_SPAN).toBeGreaterThanOrEqual(2048);
  });

  it("handles counters near the 64-bit/safe-integer limits", () => {
    const w = new ReplayWindow();
    const near = REJECT_AFTER_MESSAGES - 1;
    expect(w.check(near)).toBe(true);
    w.update(near);
    expect(w.check(near)).toBe(false);
    expect(w.check(near - 1)).toBe(true);
    expect(w.check(REJECT_AFTER_MESSAGES)).toBe(false);
    expect(w.check(Number.MAX_SAFE_INTEGER)).toBe(false);
    expect(w.check(2 ** 53)).toBe(false);
    expect(w.check(2 ** 64 - 1)).toBe(false);
    expect(w.check(-1)).toBe(false);
    expect(w.check(1.5)).toBe(false);
    expect(w.check(Number.NaN)).toBe(false);
    // a window at 2^32 boundaries (hi word rollover)
    const v = new ReplayWindow();
    v.update(2 ** 32 - 1);
    expect(v.check(2 ** 32)).toBe(true);
    v.update(2 ** 32);
    expect(v.check(2 ** 32 - 1)).toBe(false);
    expect(v.check(2 ** 32 - 2)).toBe(true);
  });
});

describe("key limits", () => {
  it("rekeys after time or messages and stops hard later", () => {
    const l = DEFAULT_KEY_LIMITS;
    expect(shouldRekey(0, l.rekeyAfterTimeMs - 1)).toBe(false);
    expect(shouldRekey(0, l.rekeyAfterTimeMs)).toBe(true);
    expect(shouldRekey(l.rekeyAfterMessages, 0)).toBe(true);
    expect(keyExpired(0, l.rekeyAfterTimeMs)).toBe(false);
    expect(keyExpired(0, l.rejectAfterTimeMs)).toBe(true);
    expect(keyExpired(l.rejectAfterMessages, 0)).toBe(true);
    expect(keyExpired(5, 10, { ...l, rejectAfterMessages: 5 })).toBe(true);
  });
});
