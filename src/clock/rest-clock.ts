// One timer for the periodic work of a node (issue 16, docs/performance.md "At rest"). Every wake-up of an idle
// Node process costs about 0.25 ms of CPU on a small VM (an empty interval, measured), whatever the callback does;
// a resting node had eight periodic jobs on their own timers (session and path tickers, telemetry, traffic sample,
// relay checks, status report, netcheck): ~56 wake-ups a minute, a third of its idle CPU. Jobs whose period is a
// multiple of the beat run on the beat instead, all in one wake-up: each keeps its own period (due()) and its own
// state; the clock owns only the timer. A period shorter than the beat (tests, active tickers) keeps its own timer.

/** The beat: the shortest rest period of the jobs (the session and path tickers' rest tick). */
export const REST_BEAT_MS = 5_000;

/**
 * Whether a job with this period, last run at lastAt, runs on the beat at now (pure). Half a beat of slack: beats
 * come a few milliseconds late or early, and a job of 10 s on a 5 s beat must run every second beat, not third.
 */
export function due(lastAt: number, now: number, periodMs: number, beatMs: number): boolean {
  return now - lastAt >= periodMs - beatMs / 2;
}

/** Runs job every periodMs until the returned function is called: on the clock when there is one, else on an interval. */
export function repeat(clock: RestClock | undefined, periodMs: number, job: () => void): () => void {
  if (clock) return clock.every(periodMs, job);
  const t = setInterval(job, periodMs);
  t.unref();
  return () => clearInterval(t);
}

export class RestClock {
  private readonly jobs = new Set<() => void>();
  private timer?: NodeJS.Timeout;

  constructor(readonly beatMs = REST_BEAT_MS, private readonly now: () => number = Date.now) {}

  /**
   * Runs job every periodMs until the returned function is called: on the beat when the period is at least one,
   * else on a timer of its own. The first run comes one period after the call.
   */
  every(periodMs: number, job: () => void): () => void {
    if (periodMs < this.beatMs) return repeat(undefined, periodMs, job);
    let lastAt = this.now();
    return this.onBeat(() => {
      const now = this.now();
      if (!due(lastAt, now, periodMs, this.beatMs)) return;
      lastAt = now;
      job();
    });
  }

  /** Calls job on every beat until the returned function is called (the job decides what is due). */
  onBeat(job: () => void): () => void {
    const own = () => job(); // one entry per call, even for the same function
    this.jobs.add(own);
    this.arm();
    return () => {
      this.jobs.delete(own);
      if (!this.jobs.size) { clearTimeout(this.timer); this.timer = undefined; }
    };
  }

  private arm(): void {
    if (this.timer || !this.jobs.size) return;
    this.timer = setTimeout(this.beat, this.beatMs);
    this.timer.unref();
  }

  private readonly beat = (): void => {
    this.timer = undefined;
    try {
      // A job that throws must not stop the others (nor the clock): each runs on its own.
      for (const job of [...this.jobs]) {
        try { job(); } catch (err) { queueMicrotask(() => { throw err; }); }
      }
    } finally {
      this.arm();
    }
  };
}
