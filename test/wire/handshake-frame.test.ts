// Handshake framing: layout, fragmentation to 1280-byte paths, INIT padding and macs, the INIT message and
// the cookie reply, and refusal reasons for malformed frames.
import { describe, expect, it } from "vitest";
import {
  FrameError, encodeCookieReply, encodeHandshake, encodeInitMessage, initMacs, parseCookieReply, parseHandshake, parseInitMessage,
} from "../../src/wire/handshake-frame.js";
import {
  COOKIE_REPLY_SIZE, DEFAULT_PATH_MTU, HANDSHAKE_INIT_DATAGRAM, HANDSHAKE_MAX_DATAGRAM, HANDSHAKE_MAX_FRAGMENTS, INIT_FRAGMENT_CHUNK,
  IPV6_UDP_OVERHEAD, MAX_HANDSHAKE_MESSAGE, MIN_INIT_MESSAGE, PACKET, REPLY_FRAGMENT_CHUNK,
} from "../../src/wire/constants.js";

const e = new Uint8Array(32).map((_, i) => i + 1);
const claim = new Uint8Array(120).fill(9);

describe("handshake frames", () => {
  it("INIT: type, zero reserved, fragment 0 of 1, LE sender index, the padded message, room for mac1 and mac2", () => {
    const msg = encodeInitMessage(e, claim);
    expect(msg.length).toBe(MIN_INIT_MESSAGE);
    const [f, ...rest] = encodeHandshake(PACKET.HANDSHAKE_INIT, 0x0a0b0c0d, undefined, msg);
    expect(rest).toHaveLength(0);
    expect(f.length).toBe(HANDSHAKE_INIT_DATAGRAM);
    expect(Array.from(f.subarray(0, 8))).toEqual([PACKET.HANDSHAKE_INIT, 0, 0, 1, 0x0d, 0x0c, 0x0b, 0x0a]);
    expect(Array.from(f.subarray(8, 40))).toEqual(Array.from(e));
    expect(f.readUInt16LE(40)).toBe(claim.length);
    expect(f.subarray(42 + claim.length).every((b) => b === 0)).toBe(true); // padding and the empty macs
    const p = parseHandshake(f);
    expect(p).toMatchObject({ ok: true, type: PACKET.HANDSHAKE_INIT, senderIndex: 0x0a0b0c0d, fragIndex: 0, fragCount: 1 });
    if (!p.ok) return;
    expect(p.receiverIndex).toBeUndefined();
    expect(p.chunk.length).toBe(HANDSHAKE_INIT_DATAGRAM - 8 - 32);
    const m = parseInitMessage(p.chunk)!;
    expect(Array.from(m.e)).toEqual(Array.from(e));
    expect(Array.from(m.sealedClaim)).toEqual(Array.from(claim));
    expect(initMacs(f).mac1.length + initMacs(f).mac2.length).toBe(32);
  });

  it("RESP and FINAL carry both indexes; short messages stay one datagram", () => {
    for (const [type, size] of [[PACKET.HANDSHAKE_RESP, 96], [PACKET.HANDSHAKE_FINAL, 64], [PACKET.HANDSHAKE_RESP, 1200]] as const) {
      const msg = new Uint8Array(size).fill(7);
      const frags = encodeHandshake(type, 1, 0xffffffff, msg);
      expect(frags).toHaveLength(1);
      expect(frags[0].length).toBe(12 + size);
      const p = parseHandshake(frags[0]);
      expect(p).toMatchObject({ ok: true, type, senderIndex: 1, receiverIndex: 0xffffffff, fragIndex: 0, fragCount: 1 });
      if (p.ok) expect(p.chunk.length).toBe(size);
    }
  });

  it("long messages are split into fragments that each fit a 1280-byte IPv6 packet, and join back byte for byte", () => {
    expect(HANDSHAKE_MAX_DATAGRAM).toBe(DEFAULT_PATH_MTU - IPV6_UDP_OVERHEAD);
    for (const type of [PACKET.HANDSHAKE_INIT, PACKET.HANDSHAKE_RESP, PACKET.HANDSHAKE_FINAL] as const) {
      for (const size of [1219, 1220, 1221, 2500, 5000, MAX_HANDSHAKE_MESSAGE]) {
        const msg = new Uint8Array(size).map((_, i) => (i * 31) & 0xff);
        const frags = encodeHandshake(type, 5, type === PACKET.HANDSHAKE_INIT ? undefined : 6, msg);
        const chunk = type === PACKET.HANDSHAKE_INIT ? INIT_FRAGMENT_CHUNK : REPLY_FRAGMENT_CHUNK;
        expect(frags).toHaveLength(Math.ceil(size / chunk));
        const parts: Uint8Array[] = [];
        frags.forEach((f, i) => {
          expect(f.length).toBeLessThanOrEqual(HANDSHAKE_MAX_DATAGRAM);
          if (i < frags.length - 1) expect(f.length).toBe(HANDSHAKE_MAX_DATAGRAM);
          const p = parseHandshake(f);
          expect(p.ok, `${type} ${size} fragment ${i}`).toBe(true);
          if (!p.ok) return;
          expect([p.fragIndex, p.fragCount]).toEqual([i, frags.length]);
          parts.push(p.chunk);
        });
        expect(Buffer.concat(parts).equals(Buffer.from(msg))).toBe(true);
      }
    }
    expect(() => encodeHandshake(PACKET.HANDSHAKE_RESP, 1, 2, new Uint8Array(REPLY_FRAGMENT_CHUNK * HANDSHAKE_MAX_FRAGMENTS + 1))).toThrow(/fragments/);
  });

  it("refuses malformed frames with a reason and a detail", () => {
    const [init] = encodeHandshake(PACKET.HANDSHAKE_INIT, 1, undefined, encodeInitMessage(e, claim));
    const [resp] = encodeHandshake(PACKET.HANDSHAKE_RESP, 1, 2, new Uint8Array(96));
    const [final] = encodeHandshake(PACKET.HANDSHAKE_FINAL, 1, 2, new Uint8Array(64));
    const two = encodeHandshake(PACKET.HANDSHAKE_RESP, 1, 2, new Uint8Array(2000));
    const cases: [Uint8Array, string][] = [
      [new Uint8Array(0), "not_handshake"],
      [Uint8Array.of(PACKET.DATA, 0, 0, 0), "not_handshake"],
      [Uint8Array.of(0x00, 0x01), "not_handshake"],
      [init.subarray(0, 80), "truncated"], // an unpadded INIT: refused (anti-amplification)
      [Buffer.concat([init, Buffer.alloc(HANDSHAKE_MAX_DATAGRAM)]), "oversized"],
      [resp.subarray(0, 12), "truncated"],
      [resp.subarray(0, 5), "truncated"],
      [new Uint8Array(HANDSHAKE_MAX_DATAGRAM + 1).fill(PACKET.HANDSHAKE_RESP, 0, 1), "oversized"],
      [Buffer.from(init).fill(1, 1, 2), "reserved_bits"],
      [Buffer.from(final).fill(0, 3, 4), "bad_fragment"], // zero fragments
      [Buffer.from(final).fill(17, 3, 4), "bad_fragment"], // more than the maximum
      [Buffer.from(final).fill(1, 2, 3), "bad_fragment"], // index 1 of 1
      [two[0].subarray(0, 1000), "bad_fragment"], // a short fragment that is not the last
    ];
    for (const [bytes, reason] of cases) {
      const p = parseHandshake(bytes);
      expect(p.ok, reason).toBe(false);
      if (!p.ok) { expect(p.reason, reason).toBe(reason); expect(p.detail.length).toBeGreaterThan(5); }
    }
    expect(parseInitMessage(new Uint8Array(10))).toBeUndefined();
    const badLen = Buffer.from(encodeInitMessage(e, claim));
    badLen.writeUInt16LE(1000, 32);
    expect(parseInitMessage(badLen)).toBeUndefined();
  });

  it("refuses to encode frames that break the format", () => {
    const msg = encodeInitMessage(e, claim);
    expect(() => encodeHandshake(PACKET.HANDSHAKE_INIT, 1, 2, msg)).toThrow(FrameError);
    expect(() => encodeHandshake(PACKET.HANDSHAKE_RESP, 1, undefined, new Uint8Array(96))).toThrow(/receiver index/);
    expect(() => encodeHandshake(PACKET.HANDSHAKE_INIT, 1, undefined, new Uint8Array(33))).toThrow(/padded/);
    expect(() => encodeInitMessage(new Uint8Array(31), claim)).toThrow(/32 bytes/);
  });

  it("cookie reply: 64 bytes, smaller than any INIT, and parsed strictly", () => {
    const nonce = new Uint8Array(24).fill(3);
    const sealed = new Uint8Array(32).fill(4);
    const r = encodeCookieReply(0x01020304, nonce, sealed);
    expect(r.length).toBe(COOKIE_REPLY_SIZE);
    expect(COOKIE_REPLY_SIZE).toBeLessThan(HANDSHAKE_INIT_DATAGRAM);
    expect(Array.from(r.subarray(0, 8))).toEqual([PACKET.COOKIE_REPLY, 0, 0, 0, 4, 3, 2, 1]);
    const p = parseCookieReply(r);
    expect(p).toMatchObject({ ok: true, receiverIndex: 0x01020304 });
    if (p.ok) { expect(Array.from(p.nonce)).toEqual(Array.from(nonce)); expect(Array.from(p.sealedCookie)).toEqual(Array.from(sealed)); }
    expect(parseCookieReply(r.subarray(0, 63))).toMatchObject({ ok: false, reason: "truncated" });
    expect(parseCookieReply(Buffer.concat([r, Buffer.alloc(1)]))).toMatchObject({ ok: false, reason: "oversized" });
    expect(parseCookieReply(Buffer.from(r).fill(1, 2, 3))).toMatchObject({ ok: false, reason: "reserved_bits" });
  });
});
