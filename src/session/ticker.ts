// A periodic timer that slows down at rest: the callback says whether anything is in progress, and the next
// run comes after fastMs if so, after restMs if not. poke() brings the next run forward to fastMs at once (a
// wake-up, a new peer). At rest a node's event loop then wakes a few times a minute instead of eight times a
// second (docs/performance.md "Idle CPU").
export class AdaptiveTicker {
  private timer?: NodeJS.Timeout;
  private dueAt = Infinity;
  private stopped = true;

  constructor(private readonly run: () => boolean, private readonly fastMs: number, private readonly restMs: number) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.dueAt = Infinity;
  }

  /** Something started: run within fastMs, whatever the current schedule. */
  poke(): void {
    if (this.stopped || this.dueAt <= Date.now() + this.fastMs) return;
    this.schedule(this.fastMs);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.dueAt = Date.now() + ms;
    this.timer = setTimeout(this.onTimer, ms);
    this.timer.unref();
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    let busy = true;
    try {
      busy = this.run();
    } finally {
      if (!this.stopped) this.schedule(busy ? this.fastMs : this.restMs);
    }
  };
}
