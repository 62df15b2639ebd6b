// The node's telemetry client while the coordination server is unreachable: events wait in a bounded spool
// file (then new ones are dropped and counted), the memory queue is bounded too, and nothing throws.
import { afterAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { pino } from "pino";
import { Verifier } from "../../src/pki/index.js";
import { TelemetryClient, TELEMETRY_CLIENT } from "../../src/node/telemetry.js";
import { hasNews, viewOf } from "../../src/node/telemetry-news.js";
import { makeCa, makeLeaf, tempDir } from "../helpers/pki.js";

const tmp = tempDir("ember-telemetry-client-");
afterAll(() => tmp.cleanup());

describe("telemetry client, server unreachable", () => {
  it("spools to a bounded file and counts what it drops", async () => {
    const ca = await makeCa(tmp.dir);
    const leaf = await makeLeaf(ca, "n1");
    const saved = { ...TELEMETRY_CLIENT };
    Object.assign(TELEMETRY_CLIENT, { maxSpoolBytes: 4_000, maxQueue: 50, requestTimeoutMs: 2_000 });
    try {
      const c = new TelemetryClient({
        coordUrl: "https://127.0.0.1:1", stateDir: tmp.dir, log: pino({ level: "silent" }), verifier: new Verifier({ bundlePem: ca.bundlePem }),
        credentials: () => ({ certPem: leaf.pem, keyPem: leaf.keyPem, bundlePem: ca.bundlePem }), snapshot: () => ({ peers: [], problems: [] }),
      });
      for (let i = 0; i < 60; i++) c.record({ t: "decision", at: Date.now(), ok: false, data: { flow: `a -> b:${i}/tcp`, pad: "x".repeat(40) } });
      expect(c.stats.dropped).toBe(10); // the queue holds 50
      await c.flush();
      expect(c.stats.lastError).toMatch(/ECONNREFUSED/);
      const spooled = () => readFileSync(c.spoolPath, "utf8");
      expect(spooled().length).toBeLessThanOrEqual(4_000);
      expect(spooled().trim().split("\n").length).toBe(c.stats.spooled);
      expect(c.stats.spooled + c.stats.dropped).toBe(60);
      for (let i = 0; i < 60; i++) c.record({ t: "decision", at: Date.now(), ok: false, data: { flow: `c -> d:${i}/tcp`, pad: "x".repeat(40) } });
      await c.flush(); // still unreachable: the spool stays, the new events wait in the (bounded) queue
      expect(c.stats.spooled + c.stats.dropped).toBe(70);
      await c.stop(); // the queue goes to the spool, which is full: dropped, counted
      expect(spooled().length).toBeLessThanOrEqual(4_000);
      expect(c.stats.spooled + c.stats.dropped).toBe(120);
      expect(existsSync(c.spoolPath)).toBe(true);
    } finally {
      Object.assign(TELEMETRY_CLIENT, saved);
    }
  });
});

describe("telemetry at rest", () => {
  it("a batch goes when events wait or paths change; latency alone every few minutes", () => {
    const snap = (path: string, rttMs: number) => ({ peers: [{ name: "b", path, state: "connected", rttMs }], problems: [] });
    const sent = viewOf(snap("direct", 0.4), 0);
    expect(hasNews(0, viewOf(snap("direct", 0.4), 5_000), sent)).toBe(false);
    expect(hasNews(1, viewOf(snap("direct", 0.4), 5_000), sent)).toBe(true);
    expect(hasNews(0, viewOf(snap("relay:relay-1", 0.4), 5_000), sent)).toBe(true);
    expect(hasNews(0, viewOf(snap("direct", 0.7), 5_000), sent)).toBe(false);
    expect(hasNews(0, viewOf(snap("direct", 0.7), TELEMETRY_CLIENT.latencyRefreshMs), sent)).toBe(true);
    expect(hasNews(0, viewOf(snap("direct", 0.4), TELEMETRY_CLIENT.latencyRefreshMs), sent)).toBe(false);
    expect(hasNews(0, sent, { shape: "", at: 0, measured: [], idle: [], figures: "" })).toBe(true); // the first batch after a start
    // Keys expiring at rest are no news; a refusal is.
    const withState = (state: string) => viewOf({ peers: [{ name: "b", path: "direct", state, rttMs: 0.4 }], problems: [] }, 5_000);
    expect(hasNews(0, withState("idle"), sent)).toBe(false);
    expect(hasNews(0, withState("refused"), sent)).toBe(true);
  });

  it("a problem whose figures change is no news until the latency refresh; a new or cleared problem is", () => {
    const slow = (ms: number) => ({ code: "high_latency", severity: "warning" as const, summary: `high latency to b: ${ms} ms on direct`, fix: "check the network" });
    const snap = (problems: ReturnType<typeof slow>[]) => ({ peers: [{ name: "b", path: "direct", state: "connected", rttMs: 600 }], problems });
    const sent = viewOf(snap([slow(603)]), 0);
    expect(hasNews(0, viewOf(snap([slow(601)]), 20_000), sent)).toBe(false);
    expect(hasNews(0, viewOf(snap([slow(601)]), TELEMETRY_CLIENT.latencyRefreshMs), sent)).toBe(true);
    expect(hasNews(0, viewOf(snap([]), 20_000), sent)).toBe(true);
    expect(hasNews(0, viewOf(snap([slow(603), { ...slow(603), code: "relay_only" }]), 20_000), sent)).toBe(true);
  });

  it("a measured problem that leaves because its peer's keys expired at rest is no news; one that clears on a live session is", () => {
    const slow = { code: "high_latency", severity: "warning" as const, summary: "high latency to b: 603 ms on direct", fix: "-", detail: { peer: "b", rttMs: 603 } };
    const view = (state: string, problems: typeof slow[], at: number) =>
      viewOf({ peers: [{ name: "b", path: "direct", state, ...(state === "connected" ? { rttMs: 603 } : {}) }], problems }, at);
    const sent = view("connected", [slow], 0);
    expect(hasNews(0, view("idle", [], 180_000), sent)).toBe(false); // the satellite link at rest (issue 26)
    expect(hasNews(0, view("connected", [], 180_000), sent)).toBe(true); // the link got better
    expect(hasNews(0, view("refused", [], 180_000), sent)).toBe(true); // a refusal is news whatever the figures
    // Back from rest with the same problem: nothing new; a problem about another peer is.
    expect(hasNews(0, view("connected", [slow], 200_000), view("idle", [], 180_000))).toBe(true);
    expect(hasNews(0, view("connected", [slow], 200_000), sent)).toBe(false);
    expect(hasNews(0, view("connected", [slow, { ...slow, detail: { peer: "c", rttMs: 603 } }], 20_000), sent)).toBe(true);
    // The latency refresh does not fire for figures that stopped at rest (keys expired, nothing measured).
    expect(hasNews(0, view("idle", [], TELEMETRY_CLIENT.latencyRefreshMs + 1), sent)).toBe(false);
    expect(hasNews(0, view("connected", [{ ...slow, summary: "high latency to b: 640 ms on direct" }], TELEMETRY_CLIENT.latencyRefreshMs + 1), sent)).toBe(true);
  });
});
