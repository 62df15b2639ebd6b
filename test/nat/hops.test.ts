// Hop measurement (src/nat/hops.ts) against a STUN client whose requests die below a hop count, as on a real path.
import { describe, expect, it } from "vitest";
import { measureHops } from "../../src/nat/hops.js";
import type { StunClient } from "../../src/nat/stun.js";

/** Requests with TTL >= hops are answered after answerMs; lower ones time out (as the real client does). */
function pathOf(hops: number, answerMs: number): Pick<StunClient, "request"> {
  return {
    request: (_server, timeoutMs = 1_000, opts = {}) => new Promise((resolve, reject) => {
      if ((opts.ttl ?? 64) >= hops) setTimeout(() => resolve({ mapped: { address: "198.18.1.2", port: 4000 }, rttMs: answerMs } as never), answerMs);
      else setTimeout(() => reject(new Error("timeout")), timeoutMs);
    }),
  };
}

const server = { host: "198.18.1.2", port: 3478 };

describe("measureHops", () => {
  it("finds the lowest answering TTL without waiting out the requests that died", async () => {
    const t0 = performance.now();
    expect(await measureHops(pathOf(3, 5), server)).toBe(3);
    // Before: every measurement took the full 1 s timeout of the dead TTLs.
    expect(performance.now() - t0).toBeLessThan(400);
  });

  it("a slow path waits as long again for lower TTLs", async () => {
    expect(await measureHops(pathOf(5, 120), server)).toBe(5);
  });

  it("nothing answers: undefined after the timeout", async () => {
    expect(await measureHops(pathOf(99, 5), server, 4)).toBeUndefined();
  });
});
