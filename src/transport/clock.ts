// Time for the mux: real timers in production, a simulated clock in tests (test/transport/sim-link.ts),
// so a 60-second idle timeout or a 20%-loss transfer runs in milliseconds and reproduces exactly.

export type TimerHandle = unknown;

export interface Clock {
  /** Milliseconds, monotonic, fractional allowed. */
  now(): number;
  /** Calls fn once after ms; must not keep the process alive (real timers are unref()'d). */
  setTimer(fn: () => void, ms: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

export const realClock: Clock = {
  now: () => performance.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimer(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};
