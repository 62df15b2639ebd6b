// Long lossy paths (issue 26): random loss is not congestion (src/transport/loss-rate.ts), a receive window
// the peer keeps running into grows though the application takes data slowly behind each loss
// (src/transport/flow.ts), and a pacing wait lost to rounding no longer stalls the sender until the next ACK
// (mux.ts). In virtual time (sim-link.ts) on a geostationary-like path: 20 Mbit/s with a 250 ms drop-tail
// queue, 300 ms each way. End to end on the emulated link: test/natlab/long-links.test.ts.
import { describe, expect, it } from "vitest";
import { LossRate } from "../../src/transport/loss-rate.js";
import { ReceiveWindow } from "../../src/transport/flow.js";
import { simPair } from "./sim-link.js";

const SECONDS = 30;
/** 2500 bytes/ms = 20 Mbit/s; 446 datagrams of ~1400 bytes = 250 ms of queue. */
const GEO_LIKE = { rateBytesPerMs: 2500, queueLimit: 446, delayMs: 300 };

/** What one bulk stream gets across in SECONDS virtual seconds, with the sender's stats. */
async function goodput(loss: number) {
  let got = 0;
  const p = simPair({ ...GEO_LIKE, loss }, {}, { onIncoming: (s) => { s.accept(); s.on("data", (c: Buffer) => (got += c.length)); } }, 7,
    { delayMs: GEO_LIKE.delayMs, loss });
  const s = p.a.open();
  s.on("error", () => {});
  const chunk = Buffer.alloc(64 * 1024, 1);
  let open = true;
  const pump = () => { while (open && s.write(chunk)); };
  s.on("drain", pump);
  pump();
  await p.clock.run(() => false, SECONDS * 1000);
  open = false;
  const st = p.a.stats();
  s.destroy();
  return { mbit: (got * 8) / SECONDS / 1e6, st, queueDrops: p.ab.queueDrops };
}

describe("random loss is not congestion", () => {
  it("LossRate: a few losses among many deliveries are random; a burst is congestion", () => {
    const r = new LossRate();
    let pn = 0;
    // Two rounds of 1000 packets with 1% loss: random.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 100; i++) { r.onAcked(10, pn += 10, pn + 1000); }
      r.onLost(10);
      expect(r.congestive()).toBe(false);
    }
    // A queue overflows: 60 of the next packets lost at once.
    r.onLost(60);
    expect(r.congestive()).toBe(true);
    // A small sample needs a higher share: 3 lost of 120 is bad luck at 1% random loss, 8 is a queue.
    const small = (lost: number) => { const x = new LossRate(); x.onAcked(120 - lost, 119, 120); x.onLost(lost); return x.congestive(); };
    expect(small(3)).toBe(false);
    expect(small(8)).toBe(true);
    // A tiny flow that loses half its packets is congested.
    const tiny = new LossRate();
    tiny.onAcked(2, 3, 4);
    tiny.onLost(2);
    expect(tiny.congestive()).toBe(true);
  });

  it("ReceiveWindow: a peer that keeps running into our limit doubles the window, however slowly the application takes data", () => {
    // 600 ms round trips; the application takes 128 KiB every 1.5 s because it waits behind losses.
    const srtt = 600;
    const slow = new ReceiveWindow(64 * 1024, 256 * 1024, 16 * 1024 * 1024);
    const blocked = new ReceiveWindow(64 * 1024, 256 * 1024, 16 * 1024 * 1024);
    let now = 0;
    for (const w of [slow, blocked]) w.maybeUpdate(now, srtt);
    for (let i = 0; i < 8; i++) {
      now += 1_500;
      blocked.onReceived(blocked.advertised); // the peer sent right up to the limit
      for (const w of [slow, blocked]) w.onConsumed(128 * 1024, now, srtt);
    }
    expect(slow.receiveWindow).toBe(256 * 1024); // a slow peer that never hit the limit: no growth
    expect(blocked.receiveWindow).toBeGreaterThanOrEqual(1024 * 1024);
    expect(blocked.receiveWindow).toBeLessThanOrEqual(16 * 1024 * 1024);
  });

  // Before: 1.0 Mbit/s (every random loss cut the window, the receive window stayed at 256 KiB, and the
  // sender sat out rounding-error pacing waits until the next ACK); after: 12.0.
  it("600 ms round trip, 20 Mbit/s, 1% loss each way: more than half the link over 30 s", async () => {
    const r = await goodput(0.01);
    expect(r.st.packetsLost).toBeGreaterThan(0);
    expect(r.st.randomLossEvents).toBeGreaterThan(0);
    expect(r.mbit, `cwnd ${r.st.cwnd}, lost ${r.st.packetsLost}, random loss events ${r.st.randomLossEvents}`).toBeGreaterThan(10);
  }, 120_000);

  // Before: 12.3 Mbit/s (the pacing stall); after: 16.0.
  it("no random loss: the queue's overflow still cuts the window, its drops stay a small share, the link fills", async () => {
    const r = await goodput(0);
    expect(r.queueDrops).toBeGreaterThan(0);
    expect(r.queueDrops / r.st.packetsSent).toBeLessThan(0.05);
    expect(r.mbit).toBeGreaterThan(15);
  }, 120_000);
});
