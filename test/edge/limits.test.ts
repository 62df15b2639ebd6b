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

  it("counts an IPv6 source by its /64 (issue 28.6): every address of one /64 shares one budget", () => {
    const l = new SourceLimiter({ ...limits, concurrentPerSource: 100, maxConnections: 100 });
    const admitted = Array.from({ length: 8 }, (_, i) => l.admit(`2001:db8:7:1::${(i + 1).toString(16)}`, 0).ok).filter(Boolean).length;
    expect(admitted).toBe(5);
    expect(l.refused.rate).toBe(3);
    expect(l.admit("2001:db8:7:1:ffff:ffff:ffff:fffe", 0).ok).toBe(false);
    expect(l.admit("2001:db8:7:2::1", 0).ok).toBe(true); // the next /64 is another source
    // Concurrency too, and release finds the shared entry from any address of the /64.
    const c = new SourceLimiter(limits);
    for (let i = 0; i < 3; i++) expect(c.admit(`2001:db8::${i + 1}`, 0).ok).toBe(true);
    expect(c.admit("2001:db8::99", 0)).toEqual({ ok: false, reason: "source_concurrency" });
    c.release("2001:db8::abcd");
    expect(c.admit("2001:db8::99", 0).ok).toBe(true);
    // An IPv4-mapped address is its IPv4 source.
    const m = new SourceLimiter(limits);
    for (let i = 0; i < 3; i++) expect(m.admit(i % 2 ? "::ffff:198.18.0.9" : "198.18.0.9", 0).ok).toBe(true);
    expect(m.admit("::ffff:198.18.0.9", 0).ok).toBe(false);
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
