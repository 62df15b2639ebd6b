// A periodic timer that slows down at rest: the callback says whether anything is in progress, and the next
// run comes after fastMs if so, after restMs if not. poke() brings the next run forward to fastMs at once (a
// wake-up, a new peer). At rest a node's event loop then wakes a few times a minute instead of eight times a
// second (docs/performance.md "Idle CPU"). Given a RestClock whose beat fits restMs, the rest runs come on its
// beat, in the same wake-up as the node's other periodic work (rest-clock.ts).
import { due, type RestClock } from "../clock/rest-clock.js";

export class AdaptiveTicker {
  private timer?: NodeJS.Timeout;
  private dueAt = Infinity;
  private stopped = true;
  /** At rest on the clock's beat: no timer of our own; the run after lastRunAt + restMs comes on a beat. */
  private resting = false;
  private lastRunAt = 0;
  private leaveClock?: () => void;

  constructor(private readonly run: () => boolean, private readonly fastMs: number, private readonly restMs: number, private readonly clock?: RestClock) {}

  start(): void {
    this.stopped = false;
    if (this.clock && this.restMs >= this.clock.beatMs) this.leaveClock = this.clock.onBeat(this.onBeat);
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.dueAt = Infinity;
    this.resting = false;
    this.leaveClock?.();
    this.leaveClock = undefined;
  }

  /** Something started: run within fastMs, whatever the current schedule. */
  poke(): void {
    if (this.stopped || this.dueAt <= Date.now() + this.fastMs) return;
    this.schedule(this.fastMs);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.resting = false;
    this.dueAt = Date.now() + ms;
    this.timer = setTimeout(this.onTimer, ms);
    this.timer.unref();
  }

  /** Nothing in progress: the next run after restMs, on the clock's beat when there is one. */
  private rest(): void {
    if (!this.leaveClock) return this.schedule(this.restMs);
    clearTimeout(this.timer);
    this.timer = undefined;
    this.resting = true;
    this.dueAt = this.lastRunAt + this.restMs;
  }

  private readonly onBeat = (): void => {
    if (this.resting && !this.stopped && due(this.lastRunAt, Date.now(), this.restMs, this.clock!.beatMs)) this.onTimer();
  };

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.resting = false;
    this.lastRunAt = Date.now();
    let busy = true;
    try {
      busy = this.run();
    } finally {
      if (!this.stopped) {
        if (busy) this.schedule(this.fastMs);
        else this.rest();
      }
    }
  };
}
