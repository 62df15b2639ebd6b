// Handshake framing: layout, INIT padding, and refusal reasons for malformed frames.
import { describe, expect, it } from "vitest";
import { FrameError, encodeHandshake, parseHandshake } from "../../src/wire/handshake-frame.js";
import { HANDSHAKE_INIT_DATAGRAM, MAX_DATAGRAM, PACKET } from "../../src/wire/constants.js";

const e = new Uint8Array(32).map((_, i) => i + 1);

describe("handshake frames", () => {
  it("INIT: type, zero reserved, LE sender index, e, zero padding to a fixed size", () => {
    const f = encodeHandshake(PACKET.HANDSHAKE_INIT, 0x0a0b0c0d, undefined, e);
    expect(f.length).toBe(HANDSHAKE_INIT_DATAGRAM);
    expect(Array.from(f.subarray(0, 8))).toEqual([PACKET.HANDSHAKE_INIT, 0, 0, 0, 0x0d, 0x0c, 0x0b, 0x0a]);
    expect(f.subarray(40).every((b) => b === 0)).toBe(true);
    const p = parseHandshake(f);
    expect(p).toMatchObject({ ok: true, type: PACKET.HANDSHAKE_INIT, senderIndex: 0x0a0b0c0d });
    if (p.ok) { expect(Array.from(p.message)).toEqual(Array.from(e)); expect(p.receiverIndex).toBeUndefined(); }
  });

  it("RESP and FINAL carry both indexes and the whole Noise message", () => {
    for (const [type, size] of [[PACKET.HANDSHAKE_RESP, 96], [PACKET.HANDSHAKE_FINAL, 64], [PACKET.HANDSHAKE_RESP, 1200]] as const) {
      const msg = new Uint8Array(size).fill(7);
      const f = encodeHandshake(type, 1, 0xffffffff, msg);
      expect(f.length).toBe(12 + size);
      const p = parseHandshake(f);
      expect(p).toMatchObject({ ok: true, type, senderIndex: 1, receiverIndex: 0xffffffff });
      if (p.ok) expect(p.message.length).toBe(size);
    }
  });

  it("refuses malformed frames with a reason and a detail", () => {
    const init = encodeHandshake(PACKET.HANDSHAKE_INIT, 1, undefined, e);
    const resp = encodeHandshake(PACKET.HANDSHAKE_RESP, 1, 2, new Uint8Array(96));
    const final = encodeHandshake(PACKET.HANDSHAKE_FINAL, 1, 2, new Uint8Array(64));
    const cases: [Uint8Array, string][] = [
      [new Uint8Array(0), "not_handshake"],
      [Uint8Array.of(PACKET.DATA, 0, 0, 0), "not_handshake"],
      [Uint8Array.of(0x00, 0x01), "not_handshake"],
      [init.subarray(0, 40), "truncated"], // an unpadded INIT: refused (anti-amplification)
      [Buffer.concat([init, Buffer.alloc(1)]), "oversized"],
      [resp.subarray(0, resp.length - 1), "truncated"],
      [final.subarray(0, 12 + 63), "truncated"],
      [resp.subarray(0, 5), "truncated"],
      [new Uint8Array(MAX_DATAGRAM + 1).fill(PACKET.HANDSHAKE_RESP, 0, 1), "oversized"],
      [Buffer.from(init).fill(1, 1, 2), "reserved_bits"],
      [Buffer.from(final).fill(1, 3, 4), "reserved_bits"],
    ];
    for (const [bytes, reason] of cases) {
      const p = parseHandshake(bytes);
      expect(p.ok, reason).toBe(false);
      if (!p.ok) { expect(p.reason).toBe(reason); expect(p.detail.length).toBeGreaterThan(5); }
    }
  });

  it("refuses to encode frames that break the format", () => {
    expect(() => encodeHandshake(PACKET.HANDSHAKE_INIT, 1, 2, e)).toThrow(FrameError);
    expect(() => encodeHandshake(PACKET.HANDSHAKE_RESP, 1, undefined, new Uint8Array(96))).toThrow(/receiver index/);
    expect(() => encodeHandshake(PACKET.HANDSHAKE_INIT, 1, undefined, new Uint8Array(33))).toThrow(/32 bytes/);
    expect(() => encodeHandshake(PACKET.HANDSHAKE_RESP, 1, 2, new Uint8Array(MAX_DATAGRAM))).toThrow(/datagram/);
  });
});
