// The rest clock (issue 16): a resting node's periodic jobs share one wake-up per beat, each at its own period.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { due, RestClock } from "../../src/clock/rest-clock.js";
import { AdaptiveTicker } from "../../src/session/ticker.js";

describe("due (pure)", () => {
  it("runs a job on the beat nearest its period, with half a beat of slack either way", () => {
    expect(due(0, 4_000, 5_000, 5_000)).toBe(true); // an early beat
    expect(due(0, 2_499, 5_000, 5_000)).toBe(false);
    expect(due(0, 5_003, 10_000, 5_000)).toBe(false); // a 10 s job skips every other 5 s beat...
    expect(due(0, 9_996, 10_000, 5_000)).toBe(true); // ...and runs on the second even when it comes early
    expect(due(0, 25_010, 30_000, 5_000)).toBe(false);
    expect(due(0, 29_990, 30_000, 5_000)).toBe(true);
  });
});

describe("RestClock", () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  it("runs jobs of several periods in one wake-up per beat", () => {
    const clock = new RestClock(5_000);
    const runs: string[] = [];
    clock.every(5_000, () => runs.push("5"));
    clock.every(10_000, () => runs.push("10"));
    clock.every(30_000, () => runs.push("30"));
    for (let i = 0; i < 6; i++) vi.advanceTimersByTime(5_000);
    expect(runs.filter((r) => r === "5")).toHaveLength(6);
    expect(runs.filter((r) => r === "10")).toHaveLength(3);
    expect(runs.filter((r) => r === "30")).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(1); // one timer for all three
  });

  it("gives a period shorter than the beat a timer of its own, and stops when every job left", () => {
    const clock = new RestClock(5_000);
    let fast = 0, slow = 0;
    const stopFast = clock.every(1_000, () => fast++);
    const stopSlow = clock.every(5_000, () => slow++);
    vi.advanceTimersByTime(5_000);
    expect([fast, slow]).toEqual([5, 1]);
    stopFast();
    stopSlow();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("keeps beating for the other jobs when one throws", () => {
    const clock = new RestClock(5_000);
    let ok = 0;
    clock.onBeat(() => { throw new Error("boom"); });
    clock.onBeat(() => ok++);
    const errors: unknown[] = [];
    const onErr = (e: unknown) => errors.push(e);
    // The throw surfaces as uncaught (a microtask), as a throwing timer callback did before.
    vi.spyOn(globalThis, "queueMicrotask").mockImplementation((fn) => { try { fn(); } catch (e) { onErr(e); } });
    vi.advanceTimersByTime(10_000);
    expect(ok).toBe(2);
    expect(errors).toHaveLength(2);
  });
});

describe("AdaptiveTicker on a rest clock", () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  it("runs fast while busy, on the beat at rest, and fast again at once when poked", () => {
    const clock = new RestClock(5_000);
    let busy = true;
    let runs = 0;
    const t = new AdaptiveTicker(() => { runs++; return busy; }, 250, 5_000, clock);
    t.start();
    vi.advanceTimersByTime(1_000); // runs at 0, 250, 500, 750, 1000
    expect(runs).toBe(5);
    busy = false;
    vi.advanceTimersByTime(250); // this run finds nothing to do: rest
    const atRest = runs;
    expect(vi.getTimerCount()).toBe(1); // only the clock
    vi.advanceTimersByTime(10_000);
    expect(runs - atRest).toBeGreaterThanOrEqual(1);
    expect(runs - atRest).toBeLessThanOrEqual(2);
    const before = runs;
    t.poke();
    vi.advanceTimersByTime(250);
    expect(runs).toBe(before + 1);
    t.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("keeps its own timer when its rest period is shorter than the beat (tests with fast timers)", () => {
    const clock = new RestClock(5_000);
    let runs = 0;
    const t = new AdaptiveTicker(() => { runs++; return false; }, 10, 50, clock);
    t.start();
    vi.advanceTimersByTime(500);
    expect(runs).toBeGreaterThanOrEqual(10);
    t.stop();
  });
});
