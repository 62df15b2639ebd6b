// Watches the host's network for the mesh: a look at the interface addresses and default routes every second
// while any peer is active, every rest beat (5 s) at rest; a change, or a look that came far later than due (the
// process was stopped or the machine slept), is reported at once. Polling, not netlink: os.networkInterfaces() and
// two small /proc files are portable and cheap (about 0.15 ms of CPU a look on the lab's 2-core VMs), and at rest
// the look rides the rest clock's beat, so it adds no wake-up of its own (0.1 s of CPU an hour). While active the
// node is awake anyway; one look a second bounds the time to notice a move to 1 s, inside the 2 s target.
import { networkInterfaces } from "node:os";
import { readFileSync } from "node:fs";
import { REST_BEAT_MS, type RestClock } from "../clock/rest-clock.js";
import { AdaptiveTicker } from "../session/ticker.js";
import { addressEntries, defaultRoutes, diffNetwork, sleptMs, type Instant, type NetworkSnapshot } from "./network-change.js";

/** While any peer is active: a move is noticed within this (the target is traffic again within 2 s). */
export const WATCH_ACTIVE_MS = 1_000;
/** At rest: on the rest clock's beat (no wake-up of its own); nothing is sent at rest that a move could lose. */
export const WATCH_REST_MS = REST_BEAT_MS;

export interface NetworkChange {
  why: "address" | "wake";
  added: string[];
  removed: string[];
  /** For a wake-up: how much later than due the look came. */
  sleptMs?: number;
}

export interface NetworkWatchOptions {
  onChange(change: NetworkChange): void;
  /** Whether any peer is active: then the look comes every WATCH_ACTIVE_MS. */
  active(): boolean;
  restClock?: RestClock;
  /** The host's network now (tests give their own). */
  read?: () => NetworkSnapshot;
}

/** The host's network now: os.networkInterfaces() and, on Linux, the default routes from /proc. */
export function readNetwork(): NetworkSnapshot {
  const proc = (f: string) => { try { return readFileSync(f, "latin1"); } catch { return ""; } };
  return { addresses: addressEntries(networkInterfaces()), routes: defaultRoutes(proc("/proc/net/route"), proc("/proc/net/ipv6_route")) };
}

function instant(): Instant {
  return { wallMs: Date.now(), monoMs: performance.now() };
}

export class NetworkWatch {
  private readonly ticker: AdaptiveTicker;
  private snapshot?: NetworkSnapshot;
  /** The last look, and the period the next one was due after. */
  private last?: Instant;
  private periodMs = WATCH_ACTIVE_MS;
  private readonly read: () => NetworkSnapshot;

  constructor(private readonly opts: NetworkWatchOptions) {
    this.read = opts.read ?? readNetwork;
    this.ticker = new AdaptiveTicker(() => this.look(), WATCH_ACTIVE_MS, WATCH_REST_MS, opts.restClock);
  }

  start(): void {
    this.ticker.start();
  }

  stop(): void {
    this.ticker.stop();
  }

  /** A peer became active: look every second from now. */
  poke(): void {
    this.ticker.poke();
  }

  /** One look: reports a change or a wake-up; true while the next look is due in WATCH_ACTIVE_MS. */
  private look(): boolean {
    const now = instant();
    const prev = this.last;
    // At rest the look comes on a beat after the period: up to a beat later than the period itself.
    const beat = this.periodMs === WATCH_ACTIVE_MS ? 0 : this.opts.restClock?.beatMs ?? 0;
    const slept = prev ? sleptMs({ wallMs: prev.wallMs + this.periodMs + beat, monoMs: prev.monoMs + this.periodMs + beat }, now, this.periodMs) : 0;
    const snap = this.read();
    const diff = this.snapshot && diffNetwork(this.snapshot, snap);
    this.snapshot = snap;
    this.last = now;
    const busy = this.opts.active();
    this.periodMs = busy ? WATCH_ACTIVE_MS : WATCH_REST_MS;
    if (slept || diff) this.opts.onChange({ why: slept ? "wake" : "address", added: diff?.added ?? [], removed: diff?.removed ?? [], ...(slept ? { sleptMs: slept } : {}) });
    return busy;
  }
}
