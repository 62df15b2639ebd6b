// The mux's timer decisions on their own (mux-deadlines.ts): idle and keepalive deadlines, and when the one
// timer fires given everything it waits for.
import { describe, expect, it } from "vitest";
import { GRANULARITY_MS, STALL_RECHECK_MS } from "../../src/transport/constants.js";
import { idleDeadline, isQuiet, keepaliveDeadline, nextWakeup, type Deadlines } from "../../src/transport/mux-deadlines.js";

const nothing: Deadlines = { loss: Infinity, ack: Infinity, pacing: 0, keepalive: Infinity, idle: Infinity, stalled: false };

describe("mux deadlines", () => {
  it("is quiet only with no stream open and nothing ack-eliciting in flight", () => {
    expect(isQuiet(0, 0)).toBe(true);
    expect(isQuiet(1, 0)).toBe(false);
    expect(isQuiet(0, 1)).toBe(false);
  });

  it("counts the idle timeout from the later of the last packet received and the mux turning busy", () => {
    expect(idleDeadline(1_000, 5_000, 60_000)).toBe(65_000);
    expect(idleDeadline(7_000, 5_000, 60_000)).toBe(67_000);
  });

  it("lets the side with the higher epoch ping first; the lower one waits half as long again", () => {
    expect(keepaliveDeadline(100, 300, 9, 4, 1_000)).toBe(1_300);
    expect(keepaliveDeadline(100, 300, 4, 9, 1_000)).toBe(1_800);
    // A peer not heard from yet: no reason to wait longer.
    expect(keepaliveDeadline(500, 300, 4, 0, 1_000)).toBe(1_500);
  });

  it("fires at the earliest applicable deadline, and not at all when nothing is pending", () => {
    expect(nextWakeup(100, nothing)).toBe(Infinity);
    expect(nextWakeup(100, { ...nothing, loss: 400, ack: 125, keepalive: 900, idle: 5_000 })).toBe(125);
    expect(nextWakeup(100, { ...nothing, idle: 5_000, pacing: 103 })).toBe(103);
  });

  it("ignores a pacing time already reached, and looks a tick later at any deadline already past", () => {
    expect(nextWakeup(100, { ...nothing, pacing: 100 })).toBe(Infinity);
    expect(nextWakeup(100, { ...nothing, loss: 90, pacing: 100 })).toBe(100 + GRANULARITY_MS);
    expect(nextWakeup(100, { ...nothing, ack: 100 })).toBe(100 + GRANULARITY_MS);
  });

  it("looks again soon when data waits that no ACK will wake", () => {
    expect(nextWakeup(100, { ...nothing, stalled: true })).toBe(100 + STALL_RECHECK_MS);
    expect(nextWakeup(100, { ...nothing, stalled: true, keepalive: 105 })).toBe(105);
  });
});
