// Fairness fixtures (issue 28): an attacker on one loopback address holding as many connections as it can
// without credentials, kept refilled as the server closes them, while a legitimate client on another address
// measures what it gets. Loopback has all of 127/8: the attacker is ATTACKER, the legitimate client LEGIT.
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";

export const ATTACKER = "127.0.0.2";
export const LEGIT = "127.0.0.3";

export interface HoldOptions {
  host: string;
  port: number;
  localAddress: string;
  count: number;
  /** Finish a TLS handshake (no client certificate) and then send nothing; else a bare TCP connection. */
  tls: boolean;
  /** Wait this long before reopening a connection the server closed (bounds the churn). */
  refillMs?: number;
}

/** Holds `count` idle connections from one address, reopening each one the server closes, until stop(). */
export class RefilledHold {
  opened = 0;
  closedByServer = 0;
  private readonly live = new Set<Socket>();
  private stopped = false;

  constructor(private readonly o: HoldOptions) {}

  start(): void {
    for (let i = 0; i < this.o.count; i++) this.openOne();
  }

  /** Sockets open or still opening on this side right now (the server may hold fewer). */
  get open(): number {
    return this.live.size;
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.live) s.destroy();
    this.live.clear();
  }

  private openOne(): void {
    if (this.stopped) return;
    const { host, port, localAddress } = this.o;
    const raw = netConnect({ host, port, localAddress });
    raw.on("error", () => {});
    const s: Socket = this.o.tls ? tlsConnect({ socket: raw, rejectUnauthorized: false, minVersion: "TLSv1.2" }) : raw;
    this.live.add(s);
    s.on("error", () => {});
    s.once(this.o.tls ? "secureConnect" : "connect", () => { this.opened++; s.resume(); });
    s.once("close", () => {
      this.live.delete(s);
      if (this.stopped) return;
      this.closedByServer++;
      setTimeout(() => this.openOne(), this.o.refillMs ?? 500).unref();
    });
  }
}

export interface ProbeResult { ok: number; failed: string[]; latenciesMs: number[]; slowestMs: number }

/** Runs `probe` `count` times, `gapMs` apart, each on its own; a thrown error or a false result is a failure. */
export async function probeSeries(count: number, gapMs: number, probe: () => Promise<boolean | string>): Promise<ProbeResult> {
  const r: ProbeResult = { ok: 0, failed: [], latenciesMs: [], slowestMs: 0 };
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    let verdict: boolean | string;
    try { verdict = await probe(); } catch (err) { verdict = (err as Error).message; }
    const ms = Math.round(performance.now() - t0);
    r.latenciesMs.push(ms);
    r.slowestMs = Math.max(r.slowestMs, ms);
    if (verdict === true) r.ok++; else r.failed.push(verdict === false ? "refused" : verdict);
    await new Promise((res) => setTimeout(res, gapMs));
  }
  return r;
}
