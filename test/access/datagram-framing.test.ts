// Datagram framing against a slow, obviously-correct reference, with edge lengths and input split at random points.
import { describe, expect, it } from "vitest";
import { DatagramDecoder, encodeDatagram, FramingError } from "../../src/access/datagram-framing.js";
import { MAX_DATAGRAM } from "../../src/access/limits.js";

/** Reference encoder: the format written out longhand. */
function referenceFrame(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from([payload.length >> 8, payload.length & 0xff]), payload]);
}

// Deterministic PRNG so a failure reproduces.
function rng(seed: number) {
  return () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x80000000; };
}

function payloadOf(len: number, fill: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + fill) & 0xff;
  return b;
}

describe("datagram framing", () => {
  it("encodes as the reference does, including the edge lengths 1 and 65507", () => {
    for (const len of [1, 2, 255, 256, 1500, 65_535 - 28, MAX_DATAGRAM]) {
      const p = payloadOf(len, len);
      expect(encodeDatagram(p).equals(referenceFrame(p)), String(len)).toBe(true);
    }
    expect(encodeDatagram(new Uint8Array([7])).toString("hex")).toBe("000107");
  });

  it("refuses to encode an empty or oversized datagram", () => {
    expect(() => encodeDatagram(Buffer.alloc(0))).toThrow(FramingError);
    expect(() => encodeDatagram(Buffer.alloc(0))).toThrow("length 0");
    expect(() => encodeDatagram(Buffer.alloc(MAX_DATAGRAM + 1))).toThrow("65508 bytes, over the 65507-byte UDP maximum");
  });

  it("decodes any split of a stream of frames, never holding more than one frame", () => {
    const rand = rng(42);
    for (let round = 0; round < 30; round++) {
      const payloads: Buffer[] = [];
      for (let i = 0; i < 20; i++) {
        const r = rand();
        const len = r < 0.1 ? MAX_DATAGRAM : r < 0.2 ? 1 : 1 + Math.floor(rand() * 3000);
        payloads.push(payloadOf(len, round * 20 + i));
      }
      const wire = Buffer.concat(payloads.map(referenceFrame));
      const dec = new DatagramDecoder();
      const got: Buffer[] = [];
      let off = 0;
      while (off < wire.length) {
        const n = rand() < 0.3 ? 1 + Math.floor(rand() * 3) : 1 + Math.floor(rand() * 70_000);
        got.push(...dec.push(wire.subarray(off, off + n)).map((b) => Buffer.from(b)));
        expect(dec.buffered).toBeLessThanOrEqual(2 + MAX_DATAGRAM);
        off += n;
      }
      expect(dec.buffered).toBe(0);
      expect(got.length).toBe(payloads.length);
      got.forEach((g, i) => expect(g.equals(payloads[i]), `round ${round} frame ${i}`).toBe(true));
    }
  });

  it("assembles a maximum frame fed one byte at a time", () => {
    const p = payloadOf(MAX_DATAGRAM, 9);
    const wire = referenceFrame(p);
    const dec = new DatagramDecoder();
    const got: Buffer[] = [];
    for (let i = 0; i < wire.length; i++) got.push(...dec.push(wire.subarray(i, i + 1)));
    expect(got).toHaveLength(1);
    expect(got[0].equals(p)).toBe(true);
  });

  it("refuses a frame of length 0 or over 65507, whether its header is whole or split, and stays refused", () => {
    for (const header of ["0000", "ffe4", "ffff"]) {
      const whole = new DatagramDecoder();
      expect(() => whole.push(Buffer.from(header + "00", "hex")), header).toThrow(FramingError);
      expect(() => whole.push(Buffer.from("000100", "hex"))).toThrow(FramingError);
      const split = new DatagramDecoder();
      expect(split.push(Buffer.from("000161", "hex"))).toEqual([Buffer.from("a")]);
      expect(split.push(Buffer.from(header.slice(0, 2), "hex"))).toEqual([]);
      expect(() => split.push(Buffer.from(header.slice(2), "hex")), header).toThrow(header === "0000" ? "length 0" : "over the 65507-byte");
      expect(split.buffered).toBe(0);
    }
    // 65507 itself is fine.
    expect(new DatagramDecoder().push(Buffer.from("ffe3", "hex"))).toEqual([]);
  });
});
