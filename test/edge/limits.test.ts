// The edge's admission decisions with a hand-driven clock: the per-source bucket (burst, then its rate), the
// per-source and global concurrency caps, release, and forgetting idle sources.
import { describe, expect, it } from "vitest";
import { SourceLimiter, EDGE_LIMIT_DEFAULTS } from "../../src/edge/limits.js";

const limits = { ...EDGE_LIMIT_DEFAULTS, ratePerSource: 10, burstPerSource: 5, concurrentPerSource: 3, maxConnections: 4 };

describe("edge admission", () => {
  it("lets a source burst, then holds it to its rate", () => {
    const l = new SourceLimiter({ ...limits, concurrentPerSource: 100, maxConnections: 100 });
    const admitted = Array.from({ length: 8 }, () => l.admit("198.18.0.9", 0).ok).filter(Boolean).length;
    expect(admitted).toBe(5);
    expect(l.refused.rate).toBe(3);
    expect(l.admit("198.18.0.9", 50).ok).toBe(false); // half a token after 50 ms at 10/s
    expect(l.admit("198.18.0.9", 100).ok).toBe(true);
    expect(l.admit("198.18.0.10", 100).ok).toBe(true); // another source has its own bucket
  });

  it("caps concurrent connections per source and in all, and frees them on release", () => {
    const l = new SourceLimiter(limits);
    for (let i = 0; i < 3; i++) expect(l.admit("a", 0).ok).toBe(true);
    expect(l.admit("a", 0)).toEqual({ ok: false, reason: "source_concurrency" });
    expect(l.admit("b", 0).ok).toBe(true);
    expect(l.admit("c", 0)).toEqual({ ok: false, reason: "global_concurrency" });
    l.release("a");
    expect(l.connections).toBe(3);
    expect(l.admit("c", 0).ok).toBe(true);
    expect(l.refused).toEqual({ rate: 0, source_concurrency: 1, global_concurrency: 1 });
  });

  it("forgets a source once nothing is open and its bucket is full again", () => {
    const l = new SourceLimiter({ ...limits, concurrentPerSource: 100, maxConnections: 100 });
    for (let i = 0; i < 5; i++) expect(l.admit("a", 0).ok).toBe(true);
    for (let i = 0; i < 5; i++) l.release("a");
    l.prune(100); // one token back: not full yet, so the empty bucket is remembered
    expect(l.admit("a", 100).ok).toBe(true);
    expect(l.admit("a", 100).ok).toBe(false);
    l.release("a");
    l.prune(10_000);
    expect((l as unknown as { sources: Map<string, unknown> }).sources.size).toBe(0);
  });
});
