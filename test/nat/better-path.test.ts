// The pure path score (src/nat/better-path.ts): hysteresis within a family, and IPv6 preferred at similar RTT.
import { describe, expect, it } from "vitest";
import { betterPath, IPV6_PREFER_WITHIN, KEEP_WITHIN, SWITCH_FASTER, type ScoredPath } from "../../src/nat/better-path.js";

const v4 = (rttMs: number, current = false): ScoredPath => ({ endpoint: { kind: "udp", host: "198.18.0.2", port: 4000 }, rttMs, current });
const v6 = (rttMs: number, current = false): ScoredPath => ({ endpoint: { kind: "udp", host: "2001:db8::2", port: 4000 }, rttMs, current });
const mapped = (rttMs: number): ScoredPath => ({ endpoint: { kind: "udp", host: "::ffff:198.18.0.9", port: 4000 }, rttMs, current: false });

describe("betterPath", () => {
  it("anything beats nothing", () => {
    expect(betterPath(v4(50), undefined)).toBe(true);
  });

  it("within a family: another path must be 20% faster; the current one stays while within 25%", () => {
    expect(betterPath(v4(10 * SWITCH_FASTER - 0.01), v4(10, true))).toBe(true);
    expect(betterPath(v4(9), v4(10, true))).toBe(false);
    expect(betterPath(v4(12, true), v4(10))).toBe(true);
    expect(betterPath(v4(10 * KEEP_WITHIN + 0.01, true), v4(10))).toBe(false);
    expect(betterPath(v6(9), v6(10, true))).toBe(false);
  });

  it("IPv6 wins at similar RTT, either way round, and loses when clearly slower", () => {
    expect(betterPath(v6(10), v4(10, true))).toBe(true);
    expect(betterPath(v6(10 * IPV6_PREFER_WITHIN), v4(10))).toBe(true);
    expect(betterPath(v4(10, true), v6(10.5))).toBe(false);
    expect(betterPath(v4(10), v6(10, true))).toBe(false);
    expect(betterPath(v6(20), v4(10, true))).toBe(false);
    expect(betterPath(v4(5), v6(10, true))).toBe(true);
  });

  it("a v4-mapped address is IPv4", () => {
    expect(betterPath(mapped(10), v4(10, true))).toBe(false);
  });
});
