// Watches the host's network for the mesh: a look at the interface addresses and default routes whenever the
// kernel announces a change (netlink, through `ip -o monitor address route` on Linux), and by polling: twice a
// second while any peer is active, every rest beat (5 s) at rest. A change, or a look that came far later than due
// (the process was stopped or the machine slept), is reported at once.
// Why netlink as well as polling: every packet the node sends on its old direct path after the new address is up
// leaves from the new address and reaches the peer's NAT before the peer's own packet towards it; a Linux NAT
// then remaps the peer's port (a conntrack clash, docs/nat.md) and the pair stays on the relay until that entry has
// been silent for 30 s. Netlink tells within milliseconds; a poll leaves up to its period for such packets.
// Why polling as well: it needs nothing but Node (os.networkInterfaces() and two small /proc files, about 0.15 ms
// of CPU a look on the lab's 2-core VMs), so it is the fallback where `ip` is missing, and its timer tells a
// wake-up. At rest the look rides the rest clock's beat, so it adds no wake-up of its own (0.1 s of CPU an hour);
// while active the node is awake for its traffic anyway (0.03% of a core for the looks).
import { spawn, type ChildProcess } from "node:child_process";
import { networkInterfaces } from "node:os";
import { readFileSync } from "node:fs";
import { REST_BEAT_MS, type RestClock } from "../clock/rest-clock.js";
import { AdaptiveTicker } from "../session/ticker.js";
import { addressEntries, defaultRoutes, diffNetwork, sleptMs, type Instant, type NetworkSnapshot } from "./network-change.js";

/** While any peer is active: a move is noticed within this (the target is traffic again within 2 s). */
export const WATCH_ACTIVE_MS = 500;
/** At rest: on the rest clock's beat (no wake-up of its own); nothing is sent at rest that a move could lose. */
export const WATCH_REST_MS = REST_BEAT_MS;

/** The kernel's announcements, for as long as our end of stdin is open (then the monitor is ended). */
const MONITOR_SCRIPT = "ip -o monitor address route & read -r _; kill $! 2>/dev/null";

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
  /** Kernel announcements through `ip -o monitor` (Linux; default on there): a look at once on each. */
  netlink?: boolean;
  log?: { info(o: object, m?: string): void };
}

/** The host's network now: os.networkInterfaces() and, on Linux, the default routes from /proc. */
export function readNetwork(): NetworkSnapshot {
  const proc = (f: string) => { try { return readFileSync(f, "latin1"); } catch { return ""; } };
  const routes = defaultRoutes(proc("/proc/net/route"), proc("/proc/net/ipv6_route"));
  return { addresses: addressEntries(networkInterfaces()), routes };
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
  private monitor?: ChildProcess;
  private lookSoon?: NodeJS.Immediate;
  private stopped = true;

  constructor(private readonly opts: NetworkWatchOptions) {
    this.read = opts.read ?? readNetwork;
    this.ticker = new AdaptiveTicker(() => this.look(), WATCH_ACTIVE_MS, WATCH_REST_MS, opts.restClock);
  }

  start(): void {
    this.stopped = false;
    this.ticker.start();
    if (this.opts.netlink ?? process.platform === "linux") this.startMonitor();
  }

  stop(): void {
    this.stopped = true;
    this.ticker.stop();
    clearImmediate(this.lookSoon);
    this.monitor?.stdin?.end();
    this.monitor = undefined;
  }

  /**
   * `ip -o monitor address route`: one line per address or route the kernel adds or deletes; the lines of one
   * change (an address gone, another added, a route) come together and make one look. Without `ip`, or if it ends,
   * polling alone goes on. It runs under a shell that ends it when our end of its stdin closes: on stop(), and when
   * this process dies by any means (a SIGKILLed daemon leaves no monitor behind).
   */
  private startMonitor(): void {
    const child = spawn("sh", ["-c", MONITOR_SCRIPT], { stdio: ["pipe", "pipe", "ignore"] });
    this.monitor = child;
    child.on("error", () => { if (this.monitor === child) this.monitor = undefined; });
    child.on("exit", (code) => {
      if (this.monitor !== child || this.stopped) return;
      this.monitor = undefined;
      this.opts.log?.info({ code }, "network watch: ip monitor ended; polling only");
    });
    child.stdout!.on("data", () => {
      this.lookSoon ??= setImmediate(() => { this.lookSoon = undefined; if (!this.stopped) this.look(); });
    });
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
    const late = this.periodMs + beat;
    const slept = prev ? sleptMs({ wallMs: prev.wallMs + late, monoMs: prev.monoMs + late }, now, this.periodMs) : 0;
    const snap = this.read();
    const diff = this.snapshot && diffNetwork(this.snapshot, snap);
    this.snapshot = snap;
    this.last = now;
    const busy = this.opts.active();
    this.periodMs = busy ? WATCH_ACTIVE_MS : WATCH_REST_MS;
    if (!slept && !diff) return busy;
    const change: NetworkChange = { why: slept ? "wake" : "address", added: diff?.added ?? [], removed: diff?.removed ?? [] };
    this.opts.onChange(slept ? { ...change, sleptMs: slept } : change);
    return busy;
  }
}
