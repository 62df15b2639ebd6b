// Bulk data over the simulated network: byte-exact (sha256) under loss, reordering and duplication, with
// many streams at once, with a link that pushes back, and with the MTU shrinking mid-transfer.
import { describe, expect, it } from "vitest";
import type { MuxOptions } from "../../src/transport/options.js";
import type { Stream } from "../../src/transport/stream.js";
import { randomData, readAll, sha256, writeAll, type Reader } from "./helpers.js";
import { simPair, type LinkConditions, type SimPair } from "./sim-link.js";

const MB = 1 << 20;

/** a opens one stream to b and sends `data`; b reads it. Resolves with both ends and the pair. */
function oneWay(cond: Partial<LinkConditions>, data: Buffer, seed = 1, opts: MuxOptions = {}) {
  let reader: Reader | undefined;
  const p = simPair(cond, opts, { ...opts, onIncoming: (s) => { s.accept(); reader = readAll(s); } }, seed);
  const s = p.a.open(Buffer.from("bulk"));
  const sender = readAll(s);
  void writeAll(s, data);
  return { p, s, sender, get reader() { return reader; } };
}

async function runToEnd(p: SimPair, done: () => boolean, maxVirtualMs = 3_600_000): Promise<void> {
  expect(await p.clock.run(done, maxVirtualMs)).toBe(true);
}

describe("bulk transfer, byte-exact", () => {
  const data = randomData(20 * MB);
  const digest = sha256(data);

  for (const [name, cond, opts] of [
    ["no loss", {}, {}],
    ["5% loss", { loss: 0.05 }, {}],
    ["5% loss (NewReno)", { loss: 0.05 }, { congestion: "newreno" }],
    ["20% loss", { loss: 0.2 }, {}],
    ["reordering and duplication", { jitterMs: 3, duplicate: 0.05 }, {}],
  ] as [string, Partial<LinkConditions>, MuxOptions][]) {
    it(`20 MB with ${name}`, async () => {
      const t = oneWay(cond, data, 7, opts);
      expect(t.p.a.stats().congestion).toBe(opts.congestion ?? "cubic");
      await runToEnd(t.p, () => t.reader?.ended === true || t.reader?.error != null);
      expect(t.reader!.error).toBeNull();
      expect(t.reader!.bytes).toBe(data.length);
      expect(t.reader!.hash()).toBe(digest);
      const a = t.p.a.stats();
      const b = t.p.b.stats();
      expect(a.streamBytesSent).toBe(data.length);
      expect(b.streamBytesReceived).toBe(data.length);
      if (cond.loss) {
        // Losses happened and were repaired: every lost packet's data went out again in new packets.
        expect(t.p.ab.lost).toBeGreaterThan(0);
        expect(a.packetsLost).toBeGreaterThan(0);
        expect(a.packetsRetransmitted).toBeGreaterThan(0);
      }
      if (cond.duplicate) expect(b.drops.duplicate_packet).toBeGreaterThan(0);
      expect(t.p.ab.oversize + t.p.ba.oversize).toBe(0);
    }, 60_000);
  }

  it("200 concurrent streams, each byte-exact, with 2% loss", async () => {
    const N = 200;
    const payloads = Array.from({ length: N }, (_, i) => randomData(20_000 + i * 150));
    const got = new Map<string, Reader>();
    const p = simPair({ loss: 0.02, jitterMs: 1 }, {}, {
      onIncoming: (s, req) => {
        s.accept();
        got.set(Buffer.from(req).toString(), readAll(s));
      },
    }, 3);
    const streams: Stream[] = [];
    for (let i = 0; i < N; i++) {
      const s = p.a.open(Buffer.from(`stream-${i}`));
      streams.push(s);
      void writeAll(s, payloads[i], 16 * 1024);
    }
    expect(p.a.stats().openStreams).toBe(N);
    await runToEnd(p, () => got.size === N && [...got.values()].every((r) => r.ended || r.error));
    for (let i = 0; i < N; i++) {
      const r = got.get(`stream-${i}`)!;
      expect(r.error, `stream ${i}`).toBeNull();
      expect(r.hash(), `stream ${i}`).toBe(sha256(payloads[i]));
    }
    expect(p.b.stats().streamsAccepted).toBe(N);
  }, 60_000);

  it("the MTU shrinking mid-transfer (1400 -> 1200 payload): still byte-exact, no datagram ever above maxPayload()", async () => {
    const d = randomData(6 * MB);
    const t = oneWay({ loss: 0.03, mtu: 1400 }, d, 11);
    let shrunkAt = -1;
    await runToEnd(t.p, () => {
      if (shrunkAt < 0 && (t.reader?.bytes ?? 0) >= 2 * MB) {
        // The path changed: both directions now carry at most 1200 bytes, with data in flight at 1400.
        t.p.ab.cond.mtu = 1200;
        t.p.ba.cond.mtu = 1200;
        shrunkAt = t.p.ab.sent;
      }
      return t.reader?.ended === true || t.reader?.error != null;
    });
    expect(shrunkAt).toBeGreaterThan(0);
    expect(t.reader!.hash()).toBe(sha256(d));
    expect(t.p.ab.oversize).toBe(0);
    expect(t.p.ba.oversize).toBe(0);
    expect(t.p.ab.largestPayload).toBe(1400);
    // Data lost before the change was resent cut to the new size.
    expect(t.p.a.stats().packetsRetransmitted).toBeGreaterThan(0);
  }, 60_000);

  it("a link that is often full (send() returns false): nothing is lost or reported sent that was not", async () => {
    const d = randomData(4 * MB);
    const t = oneWay({ capacity: 6, rateBytesPerMs: 2_000, delayMs: 2 }, d, 5);
    await runToEnd(t.p, () => t.reader?.ended === true || t.reader?.error != null);
    expect(t.reader!.hash()).toBe(sha256(d));
    expect(t.p.ab.refused).toBeGreaterThan(0);
    // Every packet the mux counts as sent, the link took.
    expect(t.p.a.stats().packetsSent).toBe(t.p.ab.sent);
    expect(t.p.a.stats().packetsLost).toBe(0);
  }, 60_000);

  it("bidirectional bulk on one stream at once", async () => {
    const up = randomData(3 * MB);
    const down = randomData(3 * MB);
    let serverRead: Reader | undefined;
    const p = simPair({ loss: 0.01 }, {}, {
      onIncoming: (s) => {
        s.accept();
        serverRead = readAll(s);
        void writeAll(s, down);
      },
    }, 9);
    const s = p.a.open();
    const clientRead = readAll(s);
    void writeAll(s, up);
    await runToEnd(p, () => clientRead.ended && serverRead?.ended === true);
    expect(clientRead.hash()).toBe(sha256(down));
    expect(serverRead!.hash()).toBe(sha256(up));
    await p.clock.run(() => p.a.stats().openStreams === 0 && p.b.stats().openStreams === 0, 10_000);
    expect(p.a.stats().openStreams + p.b.stats().openStreams).toBe(0);
  }, 60_000);
});
