// Reassembly of fragmented handshake messages: byte-exact in any order, and bounded however it is abused
// (messages in progress overall and per source, bytes, deadline; duplicates and contradicting fragments).
import { describe, expect, it } from "vitest";
import { Reassembler } from "../../src/session/reassembly.js";

const chunk = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe("handshake reassembly", () => {
  it("joins fragments in any order, byte for byte, and forgets the message once whole", () => {
    const r = new Reassembler();
    expect(r.add("m", "198.18.0.1", 2, 3, chunk(10, 3), 0)).toBe("pending");
    expect(r.add("m", "198.18.0.1", 0, 3, chunk(1000, 1), 0)).toBe("pending");
    expect(r.add("m", "198.18.0.1", 0, 3, chunk(1000, 9), 0)).toBe("duplicate");
    expect(r.add("m", "198.18.0.1", 1, 4, chunk(1000, 9), 0)).toBe("mismatch");
    const whole = r.add("m", "198.18.0.1", 1, 3, chunk(1000, 2), 0) as Uint8Array;
    expect(whole.length).toBe(2010);
    expect([whole[0], whole[999], whole[1000], whole[2009]]).toEqual([1, 1, 2, 3]);
    expect(r.size).toBe(0);
    expect(r.bufferedBytes).toBe(0);
  });

  it("holds at most the configured messages, per source and overall, and bytes; the oldest give way", () => {
    const gaveUp: string[] = [];
    const r = new Reassembler({ maxMessages: 10, maxPerSource: 3, maxBytes: 8_000, timeoutMs: 5_000 }, (why) => gaveUp.push(why));
    for (let i = 0; i < 100; i++) r.add(`a${i}`, "198.18.0.1", 0, 2, chunk(500, 1), i);
    expect(r.size).toBe(3); // one source: 3
    for (let s = 0; s < 50; s++) r.add(`b${s}`, `198.18.1.${s}`, 0, 2, chunk(500, 1), 100);
    expect(r.size).toBe(10); // many sources: 10
    expect(r.bufferedBytes).toBeLessThanOrEqual(8_000);
    for (let s = 0; s < 5; s++) r.add(`c${s}`, `198.18.2.${s}`, 0, 2, chunk(1200, 1), 100);
    expect(r.bufferedBytes).toBeLessThanOrEqual(8_000);
    expect(gaveUp.every((w) => w === "evicted")).toBe(true);
    expect(gaveUp.length).toBeGreaterThan(100);
    // a message whose other fragments never come is forgotten at its deadline
    r.expire(100 + 5_000);
    expect(r.size).toBe(0);
    expect(r.bufferedBytes).toBe(0);
    expect(gaveUp).toContain("expired");
  });
});
