// Long lossy paths (issue 26): random loss is not congestion (src/transport/loss-rate.ts), and a receive
// window the peer keeps running into grows though the application takes data slowly behind each loss
// (src/transport/flow.ts). End to end, on an emulated geostationary link: test/natlab/long-links.test.ts.
import { describe, expect, it } from "vitest";
import { LossRate } from "../../src/transport/loss-rate.js";
import { CONGESTIVE_MIN_LOST } from "../../src/transport/constants.js";
import { ReceiveWindow } from "../../src/transport/flow.js";

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
    // Too few losses to judge are never congestion, whatever the share.
    const fresh = new LossRate();
    fresh.onAcked(1, 0, 10);
    fresh.onLost(CONGESTIVE_MIN_LOST - 1);
    expect(fresh.congestive()).toBe(false);
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
});
