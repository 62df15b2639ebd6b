// DATA header layout and the STUN/EmberNet first-byte split on the shared socket.
import { describe, expect, it } from "vitest";
import { dataCiphertext, isDataPacket, readCounter, readReceiverIndex, writeDataHeader } from "../../src/wire/data.js";
import {
  DATA_HEADER_SIZE, EMBER_TYPE_MAX, EMBER_TYPE_MIN, INNER, MAX_DATAGRAM, MAX_PAYLOAD, MIN_DATA_PACKET, PACKET,
  REPLAY_WINDOW_SIZE, isEmberPacket, isStunPacket,
} from "../../src/wire/constants.js";

describe("DATA header", () => {
  it("lays out type, zero reserved bytes, LE receiver index and LE 64-bit counter", () => {
    const buf = new Uint8Array(MIN_DATA_PACKET).fill(0xee);
    writeDataHeader(buf, 0x04030201, 0x0b0a09_08070605);
    expect(Array.from(buf.subarray(0, DATA_HEADER_SIZE))).toEqual([PACKET.DATA, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0]);
    expect(buf[DATA_HEADER_SIZE]).toBe(0xee); // nothing past the header is touched
  });

  it("round-trips indexes and counters across their ranges", () => {
    const buf = new Uint8Array(MIN_DATA_PACKET);
    for (const idx of [0, 1, 0x7fffffff, 0x80000000, 0xffffffff]) {
      for (const ctr of [0, 1, 255, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER]) {
        writeDataHeader(buf, idx, ctr);
        expect(readReceiverIndex(buf)).toBe(idx);
        expect(readCounter(buf)).toBe(ctr);
        expect(isDataPacket(buf)).toBe(true);
      }
    }
  });

  it("reads counters >= 2^53 as unsafe numbers (which the replay window refuses)", () => {
    const buf = new Uint8Array(MIN_DATA_PACKET);
    writeDataHeader(buf, 1, 0);
    buf.fill(0xff, 8, 16);
    expect(Number.isSafeInteger(readCounter(buf))).toBe(false);
    buf.fill(0, 8, 16); buf[14] = 0x20; // exactly 2^53
    expect(readCounter(buf)).toBe(2 ** 53);
  });

  it("shape check refuses short, oversized, wrong-type and reserved-bit packets", () => {
    const ok = new Uint8Array(100);
    writeDataHeader(ok, 9, 9);
    expect(isDataPacket(ok)).toBe(true);
    expect(isDataPacket(ok.subarray(0, MIN_DATA_PACKET - 1))).toBe(false);
    const big = new Uint8Array(MAX_DATAGRAM + 1); writeDataHeader(big, 1, 1);
    expect(isDataPacket(big)).toBe(false);
    const t = Uint8Array.from(ok); t[0] = PACKET.HANDSHAKE_INIT;
    expect(isDataPacket(t)).toBe(false);
    const r = Uint8Array.from(ok); r[2] = 1;
    expect(isDataPacket(r)).toBe(false);
    expect(isDataPacket(new Uint8Array(0))).toBe(false);
    expect(dataCiphertext(ok).length).toBe(100 - DATA_HEADER_SIZE);
    expect(dataCiphertext(ok).buffer).toBe(ok.buffer); // a view, no copy
  });

  it("reads without allocating per packet (return values are plain numbers)", () => {
    const buf = new Uint8Array(MIN_DATA_PACKET);
    writeDataHeader(buf, 77, 88);
    expect(typeof readReceiverIndex(buf)).toBe("number");
    expect(typeof readCounter(buf)).toBe("number");
  });
});

describe("constants", () => {
  it("keeps every EmberNet type in 0x10..0x1f, distinct, and sizes consistent", () => {
    const types = Object.values(PACKET);
    expect(new Set(types).size).toBe(types.length);
    for (const t of types) { expect(t).toBeGreaterThanOrEqual(EMBER_TYPE_MIN); expect(t).toBeLessThanOrEqual(EMBER_TYPE_MAX); }
    expect(new Set(Object.values(INNER)).size).toBe(Object.values(INNER).length);
    expect(DATA_HEADER_SIZE + 1 + MAX_PAYLOAD + 16).toBe(MAX_DATAGRAM);
    expect(REPLAY_WINDOW_SIZE).toBeGreaterThanOrEqual(2048);
  });

  it("tells STUN from EmberNet by the first byte and the magic cookie", () => {
    // a real STUN Binding Request header: type 0x0001, length 0, cookie, 12-byte transaction id
    const stun = Buffer.from("000100002112a442" + "0102030405060708090a0b0c", "hex");
    expect(isStunPacket(stun)).toBe(true);
    expect(isEmberPacket(stun)).toBe(false);
    const resp = Buffer.from(stun); resp[0] = 0x01; resp[1] = 0x01; // Binding Success Response
    expect(isStunPacket(resp)).toBe(true);
    const noCookie = Buffer.from(stun); noCookie[5] = 0;
    expect(isStunPacket(noCookie)).toBe(false);
    expect(isStunPacket(stun.subarray(0, 19))).toBe(false);
    const data = new Uint8Array(MIN_DATA_PACKET); writeDataHeader(data, 0x2112a442, 0);
    expect(isStunPacket(data)).toBe(false);
    expect(isEmberPacket(data)).toBe(true);
    for (const t of Object.values(PACKET)) { const p = Buffer.from(stun); p[0] = t; expect(isStunPacket(p)).toBe(false); }
  });
});
