// The addon's batch AEAD against the TypeScript transport cipher: the same bytes both ways.
import { describe, expect, it } from "vitest";
import { randomBytes, randomInt } from "node:crypto";
import { nativeStatus, nativeAddon } from "../../src/native/addon.js";
import { TransportCipher } from "../../src/crypto/transport.js";
import { nodeAead } from "../../src/crypto/aead.js";
import { TAG_SIZE } from "../../src/wire/constants.js";

const status = nativeStatus();
if (!status.loaded) console.log(`native addon not loaded, AEAD tests skipped: ${status.reason}`);

describe.skipIf(!status.loaded)("native aeadSealBatch / aeadOpenBatch", () => {
  const addon = nativeAddon()!;

  // Counters up to 2^53 - 2^13 - 1 (the key's message limit): above 2^32 the nonce's high word is used.
  const counterOf = (i: number) => [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 7, 2 ** 40 + 3, 2 ** 53 - 2 ** 13 - 1002][i % 7] + (i > 6 ? randomInt(1000) : 0);

  it("seals what the TypeScript cipher opens, for random keys, counters and lengths 0..1500", () => {
    for (let round = 0; round < 20; round++) {
      const key = randomBytes(32);
      const ts = new TransportCipher(key, nodeAead);
      const counters = Array.from({ length: 16 }, (_, i) => counterOf(i + round));
      const plains = counters.map((_, i) => randomBytes(i === 0 ? 0 : i === 1 ? 1500 : randomInt(1501)));
      const sealed = addon.aeadSealBatch(key, counters, plains);
      expect(sealed).toHaveLength(plains.length);
      sealed.forEach((s, i) => {
        expect(s.length).toBe(plains[i].length + TAG_SIZE);
        const ref = Buffer.alloc(plains[i].length + TAG_SIZE);
        ts.seal(counters[i], plains[i], ref, 0);
        expect(Buffer.from(s).equals(ref)).toBe(true);
        const back = Buffer.alloc(plains[i].length);
        expect(ts.open(counters[i], s, back)).toBe(plains[i].length);
        expect(back.equals(plains[i])).toBe(true);
      });
    }
  });

  it("opens what the TypeScript cipher seals; a flipped bit, a wrong counter or key gives null", () => {
    const key = randomBytes(32);
    const ts = new TransportCipher(key);
    const counters = Array.from({ length: 12 }, (_, i) => counterOf(i));
    const sealed = counters.map((c) => {
      const p = randomBytes(randomInt(1501));
      const out = Buffer.alloc(p.length + TAG_SIZE);
      ts.seal(c, p, out, 0);
      return { p, out };
    });
    const opened = addon.aeadOpenBatch(key, counters, sealed.map((s) => s.out));
    opened.forEach((o, i) => expect(o && Buffer.from(o).equals(sealed[i].p)).toBe(true));

    const tampered = sealed.map((s) => {
      const t = Buffer.from(s.out);
      t[randomInt(t.length)] ^= 1 << randomInt(8);
      return t;
    });
    expect(addon.aeadOpenBatch(key, counters, tampered)).toEqual(counters.map(() => null));
    expect(addon.aeadOpenBatch(key, counters.map((c) => c + 1), sealed.map((s) => s.out))).toEqual(counters.map(() => null));
    expect(addon.aeadOpenBatch(randomBytes(32), counters, sealed.map((s) => s.out))).toEqual(counters.map(() => null));
    expect(addon.aeadOpenBatch(key, [0], [new Uint8Array(5)])).toEqual([null]); // shorter than a tag
  });

  it("throws TypeError on bad arguments", () => {
    const key = randomBytes(32);
    expect(() => addon.aeadSealBatch(randomBytes(31), [0], [Buffer.alloc(1)])).toThrow(TypeError);
    expect(() => addon.aeadSealBatch(key, [0, 1], [Buffer.alloc(1)])).toThrow(/same length/);
    expect(() => addon.aeadSealBatch(key, [-1], [Buffer.alloc(1)])).toThrow(TypeError);
    expect(() => addon.aeadSealBatch(key, [1.5], [Buffer.alloc(1)])).toThrow(TypeError);
    expect(() => addon.aeadSealBatch(key, [2 ** 53], [Buffer.alloc(1)])).toThrow(TypeError);
    expect(() => addon.aeadOpenBatch(key, [0], ["x" as unknown as Uint8Array])).toThrow(TypeError);
    expect(() => addon.aeadOpenBatch("k" as unknown as Uint8Array, [], [])).toThrow(TypeError);
  });
});
