// Fail-back to the preferred coordination replica (the first `--coord` URL). A node whose stream failed over to
// another replica watches the preferred one with a light health probe and moves back once it has answered every
// probe for `healthyForMs`, after a random wait of up to `jitterMs` so that the nodes of a mesh do not all move
// back in the same second. Without this, every node stayed on the survivor until it restarted.
import { randomInt } from "node:crypto";
import { parseDuration } from "../pki/index.js";

export interface FailBackTiming {
  /** The preferred replica must answer every probe for this long before a node moves back. */
  healthyForMs: number;
  /** Then the node waits a random 0..jitterMs, spreading the returning nodes over this window. */
  jitterMs: number;
  /** How often the preferred replica is probed (each probe varies by +-20%). */
  probeMs: number;
}

/**
 * 60 s healthy: a replica that restarts in a crash loop, or whose host is still settling, is not worth a move.
 * 30 s of jitter: returning nodes arrive spread over half a minute (10,000 at ~330 a second), not in one burst of
 * TLS handshakes; a node runs on its cached map while its stream moves.
 * A probe every 15 s: a GET /v1/health on a kept-alive connection, which the moved stream then reuses.
 */
export const FAIL_BACK_DEFAULTS: FailBackTiming = { healthyForMs: 60_000, jitterMs: 30_000, probeMs: 15_000 };

/** The environment variable that sets the timing (tests, operators): "off", or HEALTHY,JITTER[,PROBE]. */
export const FAIL_BACK_ENV = "EMBER_COORD_FAILBACK";

/** Parses FAIL_BACK_ENV: undefined/empty gives the defaults, "off" disables fail-back, else e.g. "60s,30s,15s". */
export function parseFailBack(text: string | undefined): FailBackTiming | false {
  if (text === undefined || text.trim() === "") return FAIL_BACK_DEFAULTS;
  if (text.trim() === "off") return false;
  const parts = text.split(",");
  if (parts.length < 2 || parts.length > 3) throw new Error(`${FAIL_BACK_ENV}="${text}": expected "off" or HEALTHY,JITTER[,PROBE], e.g. 60s,30s,15s`);
  let ms: number[];
  try { ms = parts.map(parseDuration); } catch (err) { throw new Error(`${FAIL_BACK_ENV}: ${(err as Error).message}`); }
  const [healthyForMs, jitterMs, probeMs = FAIL_BACK_DEFAULTS.probeMs] = ms;
  if (probeMs < 100) throw new Error(`${FAIL_BACK_ENV}: a probe interval under 100 ms would flood the replica; give at least 100ms`);
  return { healthyForMs, jitterMs, probeMs };
}

/**
 * Pure: the run of successful probes after one more probe at `now`. A failed probe ends the run; the node is
 * ready to move back once the run has lasted `healthyForMs`.
 */
export function afterProbe(healthySince: number | undefined, ok: boolean, now: number, healthyForMs: number): { healthySince?: number; ready: boolean } {
  if (!ok) return { healthySince: undefined, ready: false };
  const since = healthySince ?? now;
  return { healthySince: since, ready: now - since >= healthyForMs };
}

/** Owns the probe timer and the run of health; calls `onReady` once per watch, after the jitter. */
export class PreferredReplicaWatch {
  private timer?: NodeJS.Timeout;
  private healthySince?: number;
  /** Bumped by start/stop: a probe that was in flight across them is ignored. */
  private generation = 0;
  private running = false;

  constructor(readonly timing: FailBackTiming, private readonly probe: () => Promise<unknown>, private readonly onReady: () => void) {}

  /** Starts watching (no-op when already watching). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.generation++;
    this.healthySince = undefined;
    this.schedule(this.probeDelay());
  }

  stop(): void {
    this.running = false;
    this.generation++;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.healthySince = undefined;
  }

  private probeDelay(): number {
    const p = this.timing.probeMs;
    return Math.round(p * 0.8) + randomInt(Math.max(1, Math.round(p * 0.4)));
  }

  private schedule(ms: number): void {
    const gen = this.generation;
    this.timer = setTimeout(() => void this.tick(gen), ms);
    this.timer.unref();
  }

  private async tick(gen: number): Promise<void> {
    let ok = true;
    try { await this.probe(); } catch { ok = false; }
    if (gen !== this.generation) return;
    const s = afterProbe(this.healthySince, ok, Date.now(), this.timing.healthyForMs);
    this.healthySince = s.healthySince;
    if (!s.ready) return this.schedule(this.probeDelay());
    this.timer = setTimeout(() => {
      if (gen !== this.generation) return;
      this.stop();
      this.onReady();
    }, randomInt(this.timing.jitterMs + 1));
    this.timer.unref();
  }
}
