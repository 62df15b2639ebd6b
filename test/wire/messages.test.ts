// msgpack control messages: versioned, schema-checked, clear errors on anything else.
import { describe, expect, it } from "vitest";
import { pack } from "msgpackr";
import { MessageError, callMeMaybe, decodeHandshakePayload, encodeHandshakePayload } from "../../src/wire/messages.js";

const chain = [new Uint8Array(300).fill(1), new Uint8Array(280).fill(2)];
const sig = new Uint8Array(64).fill(3);

describe("handshake payload", () => {
  it("round-trips with an explicit version", () => {
    const bytes = encodeHandshakePayload({ chain, sig, ts: 1_700_000_000_123 });
    const p = decodeHandshakePayload(bytes);
    expect(p.v).toBe(1);
    expect(p.ts).toBe(1_700_000_000_123);
    expect(p.chain.map((c) => Array.from(c))).toEqual(chain.map((c) => Array.from(c)));
    expect(Array.from(p.sig)).toEqual(Array.from(sig));
  });

  it("names the problem for wrong or missing fields", () => {
    const good = { v: 1, chain: chain.map((c) => Buffer.from(c)), sig: Buffer.from(sig), ts: 5 };
    const cases: [unknown, RegExp][] = [
      [{ ...good, v: 2 }, /version 2 is not 1/],
      [{ ...good, v: undefined }, /version undefined/],
      [{ ...good, chain: [] }, /chain must be a list of 1-4/],
      [{ ...good, chain: Array.from({ length: 5 }, () => Buffer.alloc(1)) }, /chain must be a list/],
      [{ ...good, chain: ["text"] }, /chain\[0\] must be bytes/],
      [{ ...good, sig: Buffer.alloc(63) }, /sig must be 64 bytes, got 63/],
      [{ ...good, sig: undefined }, /sig must be bytes/],
      [{ ...good, ts: -1 }, /ts must be an integer/],
      [{ ...good, ts: "now" }, /ts must be an integer/],
      [[1, 2, 3], /not a map/],
      ["hello", /not a map/],
    ];
    for (const [value, re] of cases) expect(() => decodeHandshakePayload(pack(value)), String(re)).toThrow(re);
    expect(() => decodeHandshakePayload(Uint8Array.of(0xc1))).toThrow(MessageError);
    expect(() => decodeHandshakePayload(new Uint8Array(0))).toThrow(MessageError);
    expect(() => decodeHandshakePayload(Uint8Array.of(0xdf, 0xff, 0xff, 0xff, 0xff))).toThrow(MessageError);
  });

  it("survives random garbage with MessageError only", () => {
    for (let i = 0; i < 500; i++) {
      const junk = new Uint8Array(1 + (i % 60)).map(() => Math.floor(Math.random() * 256));
      try { decodeHandshakePayload(junk); } catch (err) { expect(err).toBeInstanceOf(MessageError); }
    }
  });
});

describe("call-me-maybe", () => {
  it("round-trips candidates and refuses bad ports", () => {
    const m = { candidates: [{ ip: "198.18.0.1", port: 41641 }, { ip: "2001:db8::1", port: 1 }] };
    expect(callMeMaybe.decode(callMeMaybe.encode(m))).toEqual({ v: 1, ...m });
    expect(() => callMeMaybe.decode(pack({ v: 1, candidates: [{ ip: "198.18.0.1", port: 70000 }] }))).toThrow(/candidates\[0\]\.port/);
    expect(() => callMeMaybe.decode(pack({ v: 1 }))).toThrow(/candidates must be a list/);
  });
});
