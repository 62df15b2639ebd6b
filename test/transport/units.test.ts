// The stream layer's building blocks on their own, each against an obviously-correct model: byte
// ranges, received packet numbers, reassembly, the send buffer, RTT estimation, the congestion
// controllers, receive windows and option validation.
import { describe, expect, it } from "vitest";
import { AckTracker } from "../../src/transport/ack-tracker.js";
import { initialWindow, minimumWindow } from "../../src/transport/congestion.js";
import { MAX_ACK_DELAY_MS, MAX_TRACKED_PN_RANGES } from "../../src/transport/constants.js";
import { Cubic } from "../../src/transport/cubic.js";
import { ReceiveWindow } from "../../src/transport/flow.js";
import { NewReno } from "../../src/transport/newreno.js";
import { DEFAULT_TRANSPORT_CONFIG, resolveConfig } from "../../src/transport/options.js";
import { Pacer } from "../../src/transport/pacer.js";
import { RangeSet } from "../../src/transport/ranges.js";
import { RecvBuffer } from "../../src/transport/recv-buffer.js";
import { RttEstimator } from "../../src/transport/rtt.js";
import { SendBuffer } from "../../src/transport/send-buffer.js";
import { prng } from "./sim-link.js";

describe("RangeSet", () => {
  it("matches a bitmap model under random adds and removes", () => {
    const r = prng(1);
    for (let round = 0; round < 50; round++) {
      const set = new RangeSet();
      const model = new Uint8Array(500);
      for (let i = 0; i < 60; i++) {
        const a = Math.floor(r() * 500);
        const b = Math.min(500, a + Math.floor(r() * 40));
        if (r() < 0.7) { set.add(a, b); model.fill(1, a, b); } else { set.remove(a, b); model.fill(0, a, b); }
        if (r() < 0.1) { const at = Math.floor(r() * 500); set.removeBelow(at); model.fill(0, 0, at); }
      }
      const expected: [number, number][] = [];
      for (let i = 0; i < 500; i++) {
        if (model[i] && (i === 0 || !model[i - 1])) expected.push([i, i + 1]);
        else if (model[i]) expected[expected.length - 1][1] = i + 1;
      }
      expect(set.toArray()).toEqual(expected);
      expect(set.size).toBe(model.reduce((n, v) => n + v, 0));
    }
  });
});

describe("AckTracker", () => {
  it("reports exactly the packets received, as descending ranges, and spots duplicates", () => {
    const r = prng(2);
    const t = new AckTracker(2, MAX_ACK_DELAY_MS);
    const seen = new Set<number>();
    for (let i = 0; i < 3_000; i++) {
      const pn = Math.floor(r() * 400);
      expect(t.isDuplicate(pn)).toBe(seen.has(pn));
      if (!seen.has(pn)) { t.onReceived(pn, true, i); seen.add(pn); }
    }
    const fromRanges = new Set<number>();
    const rg = t.ranges;
    for (let i = 0; i < rg.length; i += 2) {
      if (i > 0) expect(rg[i]).toBeLessThan(rg[i - 1] - 1);
      for (let pn = rg[i + 1]; pn <= rg[i]; pn++) fromRanges.add(pn);
    }
    expect([...fromRanges].sort((a, b) => a - b)).toEqual([...seen].sort((a, b) => a - b));
  });

  it("acks every second packet at once, a lone one after max_ack_delay, a gap immediately", () => {
    const t = new AckTracker(2, 25);
    t.onReceived(0, true, 100);
    expect(t.ackNow).toBe(false);
    expect(t.ackDeadline).toBe(125);
    t.onReceived(1, true, 101);
    expect(t.ackNow).toBe(true);
    t.onAckSent();
    t.onReceived(5, true, 102); // 2..4 missing
    expect(t.ackNow).toBe(true);
    t.onAckSent();
    t.onReceived(6, false, 103); // ACK-only packets are never acknowledged by themselves
    expect(t.ackNow).toBe(false);
    expect(t.ackDeadline).toBe(Infinity);
    t.onTimer(200);
    expect(t.ackNow).toBe(false);
  });

  it("forgets what an acknowledged ACK covered, and never tracks more than its range limit", () => {
    const t = new AckTracker(2, 25);
    for (let pn = 0; pn < 100; pn++) t.onReceived(pn, true, 0);
    t.onAckAcked(89);
    expect(t.ranges).toEqual([99, 90]);
    expect(t.isDuplicate(50)).toBe(true);
    for (let pn = 200; pn < 200 + 4 * MAX_TRACKED_PN_RANGES; pn += 2) t.onReceived(pn, true, 0);
    expect(t.ranges.length / 2).toBeLessThanOrEqual(MAX_TRACKED_PN_RANGES);
  });
});

describe("RecvBuffer", () => {
  it("reassembles overlapping, duplicated, out-of-order pieces into the original bytes, storing each byte once", () => {
    const r = prng(3);
    for (let round = 0; round < 30; round++) {
      const data = Buffer.alloc(20_000);
      for (let i = 0; i < data.length; i++) data[i] = Math.floor(r() * 256);
      const b = new RecvBuffer();
      const out: Buffer[] = [];
      let covered = 0;
      while (b.taken + b.readyBytes < data.length) {
        const off = Math.floor(r() * data.length);
        const len = 1 + Math.floor(r() * 1500);
        b.insert(off, data.subarray(off, Math.min(data.length, off + len)));
        if (r() < 0.05) b.insert(covered, data.subarray(covered, covered + 1400));
        expect(b.buffered).toBeLessThanOrEqual(data.length - b.taken);
        if (r() < 0.3) for (let c = b.take(); c; c = b.take()) out.push(c);
        covered = b.contiguousEnd;
      }
      for (let c = b.take(); c; c = b.take()) out.push(c);
      expect(Buffer.concat(out).equals(data)).toBe(true);
      expect(b.buffered).toBe(0);
    }
  });

  it("keeps copies, not views of the datagram", () => {
    const b = new RecvBuffer();
    const datagram = Buffer.from("abcdef");
    b.insert(3, datagram.subarray(3));
    b.insert(0, datagram.subarray(0, 3));
    datagram.fill(0x7a);
    expect(Buffer.concat([b.take()!, b.take()!]).toString()).toBe("abcdef");
  });
});

describe("SendBuffer", () => {
  it("copies any range, re-segments lost data at any size, and releases only acknowledged chunks", () => {
    const b = new SendBuffer();
    const chunks = [Buffer.from("hello "), Buffer.from("multiplexed "), Buffer.from("world")];
    for (const c of chunks) b.write(c);
    const all = Buffer.concat(chunks);
    const dst = Buffer.alloc(all.length);
    for (let off = 0; off < all.length; off++) {
      for (let len = 0; off + len <= all.length; len += 3) {
        dst.fill(0);
        b.copy(dst, 0, off, len);
        expect(dst.subarray(0, len).equals(all.subarray(off, off + len))).toBe(true);
      }
    }
    b.onSentNew(all.length, false);
    b.onLost(3, 10, false);
    expect(b.lost.toArray()).toEqual([[3, 13]]);
    expect(b.onAcked(0, 3, false)).toBe(3);
    expect(b.onAcked(8, all.length - 8, false)).toBe(0); // above a gap: nothing released yet
    expect(b.lost.toArray()).toEqual([[3, 8]]);
    b.onResent(3, 5, false);
    expect(b.onAcked(3, 5, false)).toBe(all.length - 3);
    expect(b.buffered).toBe(0);
  });

  it("a refused first send is undone; a reset keeps the true final size", () => {
    const b = new SendBuffer();
    b.write(Buffer.alloc(5000));
    b.onSentNew(1200, false);
    b.onSentNew(1200, false);
    b.unsend(1200, 1200, false);
    expect(b.sent).toBe(1200);
    b.end();
    b.discard();
    expect(b.sent).toBe(1200);
    expect(b.written).toBe(1200);
    expect(b.buffered).toBe(0);
  });
});

describe("RttEstimator (RFC 9002 section 5)", () => {
  it("first sample sets srtt and rttvar/2, later ones smooth 7/8 and 3/4 with the ack delay taken out", () => {
    const e = new RttEstimator(333);
    expect(e.smoothed).toBe(333);
    e.update(100, 10, 25);
    expect([e.smoothed, e.variance, e.min]).toEqual([100, 50, 100]);
    e.update(140, 20, 25); // adjusted = 120
    expect(e.smoothed).toBeCloseTo(0.875 * 100 + 0.125 * 120);
    expect(e.variance).toBeCloseTo(0.75 * 50 + 0.25 * 20);
    e.update(105, 20, 25); // 105 < min + 20: the ack delay is not subtracted
    expect(e.smoothed).toBeCloseTo(0.875 * (0.875 * 100 + 0.125 * 120) + 0.125 * 105);
    e.update(200, 1_000, 25); // a peer claiming a huge ack delay is capped at max_ack_delay
    expect(e.min).toBe(100);
    expect(e.pto(25)).toBeCloseTo(e.smoothed + 4 * e.variance + 25);
  });
});

describe("congestion controllers", () => {
  it("NewReno: slow start, one halving per recovery period, +1 datagram per window, persistent congestion", () => {
    const cc = new NewReno(1200);
    expect(cc.window).toBe(initialWindow(1200));
    cc.onAcked(12_000, 1, 2, 10, false);
    expect(cc.window).toBe(initialWindow(1200) + 12_000);
    const w = cc.window;
    cc.onCongestionEvent(5, 10);
    expect(cc.window).toBe(Math.floor(w / 2));
    cc.onCongestionEvent(8, 11); // sent before recovery began: same event
    expect(cc.window).toBe(Math.floor(w / 2));
    cc.onAcked(1200, 9, 12, 10, false); // acked during recovery: no growth
    expect(cc.window).toBe(Math.floor(w / 2));
    const before = cc.window;
    for (let acked = 0; acked < before; acked += 1200) cc.onAcked(1200, 20, 30, 10, false);
    expect(cc.window).toBe(before + 1200);
    cc.onAcked(1200, 20, 30, 10, true); // app-limited: no growth
    cc.onPersistentCongestion();
    expect(cc.window).toBe(minimumWindow(1200));
  });

  it("CUBIC: backs off by 0.7 and regrows along the cubic towards the old maximum", () => {
    const cc = new Cubic(1200);
    cc.onAcked(200 * 1200, 0, 1, 50, false); // slow start to ~210 datagrams
    const wMax = cc.window;
    cc.onCongestionEvent(2, 3);
    expect(cc.window).toBe(Math.floor(wMax * 0.7));
    let t = 10;
    const trace: number[] = [];
    for (let i = 0; i < 400; i++) {
      t += 50;
      cc.onAcked(cc.window, t - 50, t, 50, false);
      trace.push(cc.window);
    }
    // Grows back past the old maximum, concave then convex: never shrinking on ACKs.
    expect(trace.every((w, i) => i === 0 || w >= trace[i - 1])).toBe(true);
    expect(trace.at(-1)!).toBeGreaterThan(wMax);
  });
});

describe("ReceiveWindow", () => {
  it("grants credit only as data is consumed, in half-window steps, and doubles when the reader keeps up", () => {
    const w = new ReceiveWindow(64 * 1024, 256 * 1024, 1024 * 1024);
    expect(w.maybeUpdate(0, 10)).toBe(true); // the configured window, once the peer may hear it
    expect(w.advertised).toBe(256 * 1024);
    expect(w.exceeds(256 * 1024)).toBe(false);
    expect(w.exceeds(256 * 1024 + 1)).toBe(true);
    expect(w.onConsumed(100 * 1024, 1, 10)).toBe(false); // less than half used: no update yet
    expect(w.onConsumed(30 * 1024, 2, 10)).toBe(true);
    // Consumed fast (within a few RTTs): the window doubled.
    expect(w.receiveWindow).toBe(512 * 1024);
    expect(w.advertised).toBe(130 * 1024 + 512 * 1024);
    // A slow reader: no growth.
    const slow = new ReceiveWindow(64 * 1024, 256 * 1024, 1024 * 1024);
    slow.maybeUpdate(0, 10);
    slow.onConsumed(200 * 1024, 10_000, 10);
    expect(slow.receiveWindow).toBe(256 * 1024);
  });
});

describe("Pacer", () => {
  it("lets a burst through, then spaces packets at 1.25 * cwnd / srtt", () => {
    const p = new Pacer();
    p.configure(100 * 1200, 100, 1200); // 1200 B/ms * 1.25
    let now = 0;
    let burst = 0;
    while (p.delay(now, 1200) === 0) { p.onSent(now, 1200); burst++; }
    expect(burst).toBe(10);
    const wait = p.delay(now, 1200);
    expect(wait).toBeCloseTo(1200 / (1.25 * 1200), 5);
    now += wait;
    expect(p.delay(now, 1200)).toBe(0);
  });
});

describe("options", () => {
  it("fills defaults and names the bad option", () => {
    expect(resolveConfig()).toEqual(DEFAULT_TRANSPORT_CONFIG);
    expect(resolveConfig({ maxStreams: 10 }).maxStreams).toBe(10);
    expect(() => resolveConfig({ maxStreams: 0 })).toThrow(/maxStreams/);
    expect(() => resolveConfig({ streamReceiveWindow: 1000 })).toThrow(/streamReceiveWindow must be an integer in \[65536/);
    expect(() => resolveConfig({ idleTimeoutMs: 10_000 })).toThrow(/idleTimeoutMs/);
    expect(() => resolveConfig({ congestion: "bbr" as never })).toThrow(/congestion/);
    expect(() => resolveConfig({ keepaliveMs: 1.5 })).toThrow(/keepaliveMs/);
  });
});
