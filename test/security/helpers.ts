// Fixtures for the exhaustion and fuzz tests: reading a server child's file descriptors and memory from
// /proc, loopback source addresses (the whole of 127/8 is local on Linux, so one machine can play many
// clients), a captured TLS ClientHello, and a bounded flood of pre-TLS TCP connections.
import { readdirSync, readFileSync } from "node:fs";
import { connect as netConnect, createServer, type AddressInfo, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";

/** Open file descriptors of a process (its sockets included). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident set size of a process, in MiB. */
export function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** n distinct loopback source addresses 127.0.<a>.<b>, never 127.0.0.1 (kept for the valid clients). */
export function loopbackSources(n: number, offset = 0): string[] {
  return Array.from({ length: n }, (_, i) => {
    const k = i + offset + 2;
    return `127.0.${10 + Math.floor(k / 250)}.${(k % 250) + 2}`;
  });
}

/** The first bytes a TLS 1.3 client sends (a ClientHello record), captured from node:tls against a silent listener. */
export async function captureClientHello(): Promise<Buffer> {
  const server = createServer();
  const got = new Promise<Buffer>((resolve) => server.once("connection", (s: Socket) => s.once("data", (b: Buffer) => { resolve(b); s.destroy(); })));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const c = tlsConnect({ host: "127.0.0.1", port: (server.address() as AddressInfo).port, rejectUnauthorized: false, minVersion: "TLSv1.3" });
  c.on("error", () => {});
  const hello = await got;
  c.destroy();
  server.close();
  return hello;
}

export type FloodKind = "idle" | "partial" | "slow";

export interface FloodOptions {
  host: string;
  port: number;
  count: number;
  sources: string[];
  /** idle: connect and send nothing; partial: half a ClientHello, then nothing; slow: a ClientHello at one byte per second. */
  kinds: FloodKind[];
  clientHello: Buffer;
  /** Connections being opened at once (the listener's backlog is 511). */
  concurrency?: number;
}

/**
 * Holds `count` TCP connections open towards a server (bounded: they are all destroyed by stop()). Counts
 * how many connected, how many the server closed, and when.
 */
export class Flood {
  readonly sockets: Socket[] = [];
  connected = 0;
  closedByServer = 0;
  failed = 0;
  private stopped = false;
  private slowTimer?: NodeJS.Timeout;
  private readonly slow = new Map<Socket, number>();

  constructor(private readonly o: FloodOptions) {}

  /** Opens every connection (resolves when each has connected or failed). */
  async start(): Promise<void> {
    const { o } = this;
    let next = 0;
    const one = (): Promise<void> => new Promise((resolve) => {
      const i = next++;
      const kind = o.kinds[i % o.kinds.length];
      const s = netConnect({ host: o.host, port: o.port, localAddress: o.sources[i % o.sources.length] });
      this.sockets.push(s);
      let done = false;
      const finish = () => { if (!done) { done = true; resolve(); } };
      s.on("error", () => {});
      s.once("connect", () => {
        this.connected++;
        if (kind === "partial") s.write(o.clientHello.subarray(0, Math.floor(o.clientHello.length / 2)));
        if (kind === "slow") this.slow.set(s, 0);
        finish();
      });
      s.once("close", () => {
        this.slow.delete(s);
        if (!this.stopped) { if (done) this.closedByServer++; else this.failed++; }
        finish();
      });
    });
    const workers = Array.from({ length: Math.min(o.concurrency ?? 200, o.count) }, async () => { while (next < o.count && !this.stopped) await one(); });
    this.slowTimer = setInterval(() => {
      for (const [s, at] of this.slow) {
        if (at >= o.clientHello.length) continue;
        s.write(o.clientHello.subarray(at, at + 1));
        this.slow.set(s, at + 1);
      }
    }, 1_000);
    await Promise.all(workers);
  }

  /** Connections this side still holds open. */
  get open(): number {
    return this.sockets.filter((s) => !s.destroyed && s.readyState === "open").length;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.slowTimer);
    for (const s of this.sockets) s.destroy();
  }
}

/** Samples a value every `ms` until stopped; keeps the maximum. */
export function sampleMax(ms: number, f: () => number): { stop: () => number; max: () => number } {
  let max = -Infinity;
  const t = setInterval(() => { try { max = Math.max(max, f()); } catch { /* process gone: the test fails elsewhere */ } }, ms);
  return { stop: () => { clearInterval(t); return max; }, max: () => max };
}
