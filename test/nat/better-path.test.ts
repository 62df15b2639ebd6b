// The pure path score (src/nat/better-path.ts): hysteresis within a family, and IPv6 preferred at similar RTT.
import { describe, expect, it } from "vitest";
import { betterPath, IPV6_PREFER_SLACK_MS, IPV6_PREFER_WITHIN, KEEP_WITHIN, RTT_WINDOW, SWITCH_FASTER, withRttSample, type ScoredPath } from "../../src/nat/better-path.js";

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
    expect(betterPath(v6(100), v4(80, true))).toBe(false);
    expect(betterPath(v4(50), v6(100, true))).toBe(true);
  });

  it("at LAN RTTs the families are equal within a few ms: IPv6 wins and keeps the path on noise", () => {
    // The lab's first round: IPv4 answered at 2.5 ms, IPv6 at 3.1 ms; later IPv4 measured 0.6 ms against 1.5 ms.
    expect(betterPath(v6(3.1), v4(2.5, true))).toBe(true);
    expect(betterPath(v4(0.6), v6(1.5, true))).toBe(false);
    expect(betterPath(v6(2 + IPV6_PREFER_SLACK_MS + 0.5), v4(2, true))).toBe(false);
    expect(betterPath(v4(2), v6(2 + IPV6_PREFER_SLACK_MS + 0.5, true))).toBe(true);
  });

  it("a v4-mapped address is IPv4", () => {
    expect(betterPath(mapped(10), v4(10, true))).toBe(false);
  });

  it("a path is scored on the lowest of its last few RTTs", () => {
    let r = withRttSample(undefined, 7.8);
    expect(r.rttMs).toBe(7.8);
    r = withRttSample(r.samples, 1.1);
    expect(r.rttMs).toBe(1.1);
    for (let i = 0; i < RTT_WINDOW; i++) r = withRttSample(r.samples, 3);
    expect(r.rttMs).toBe(3); // a route that got slower shows within the window
    expect(r.samples).toHaveLength(RTT_WINDOW);
  });
});
