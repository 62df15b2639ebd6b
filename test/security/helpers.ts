// Fixtures for the exhaustion and fuzz tests: reading a server child's file descriptors and memory from
// /proc, loopback source addresses (the whole of 127/8 is local on Linux, so one machine can play many
// clients), a captured TLS ClientHello, and a bounded flood of pre-TLS TCP connections.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { connect as netConnect, createServer, type AddressInfo, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { IncomingMessage } from "node:http";
import { request as httpsRequest, type Agent } from "node:https";

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

/**
 * idle: TCP connected, nothing sent; partial: half a ClientHello, then nothing; slow: a ClientHello at one byte
 * per second; tls-idle: a full TLS handshake without a client certificate, then nothing; slowloris: TLS, then
 * an HTTP request head at one byte per second.
 */
export type FloodKind = "idle" | "partial" | "slow" | "tls-idle" | "slowloris";

const SLOW_REQUEST = Buffer.from("GET /v1/health HTTP/1.1\r\nHost: coord\r\nX-Slow: " + "a".repeat(200) + "\r\n\r\n");

export interface FloodOptions {
  host: string;
  port: number;
  count: number;
  sources: string[];
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
  private readonly slow = new Map<Socket, { at: number; bytes: Buffer }>();

  constructor(private readonly o: FloodOptions) {}

  /** Opens every connection (resolves when each has connected or failed). */
  async start(): Promise<void> {
    const { o } = this;
    let next = 0;
    const one = (): Promise<void> => new Promise((resolve) => {
      const i = next++;
      const kind = o.kinds[i % o.kinds.length];
      const localAddress = o.sources[i % o.sources.length];
      const tls = kind === "tls-idle" || kind === "slowloris";
      const raw = netConnect({ host: o.host, port: o.port, localAddress });
      raw.on("error", () => {});
      const s: Socket = tls ? tlsConnect({ socket: raw, rejectUnauthorized: false, minVersion: "TLSv1.3" }) : raw;
      this.sockets.push(s);
      let done = false;
      const finish = () => { if (!done) { done = true; resolve(); } };
      s.on("error", () => {});
      s.once(tls ? "secureConnect" : "connect", () => {
        this.connected++;
        s.resume(); // read (and discard) what the server sends, so that its FIN is noticed
        if (kind === "partial") s.write(o.clientHello.subarray(0, Math.floor(o.clientHello.length / 2)));
        if (kind === "slow") this.slow.set(s, { at: 0, bytes: o.clientHello });
        if (kind === "slowloris") this.slow.set(s, { at: 0, bytes: SLOW_REQUEST });
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
      for (const [s, w] of this.slow) {
        if (w.at >= w.bytes.length || s.destroyed) continue;
        s.write(w.bytes.subarray(w.at, w.at + 1));
        w.at++;
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
    this.sockets.length = 0;
  }
}

/** Samples a value every `ms` until stopped; keeps the maximum. */
export function sampleMax(ms: number, f: () => number): { stop: () => number; max: () => number } {
  let max = -Infinity;
  const t = setInterval(() => { try { max = Math.max(max, f()); } catch { /* process gone: the test fails elsewhere */ } }, ms);
  return { stop: () => { clearInterval(t); return max; }, max: () => max };
}

export interface FloodProc { pid: number; last: () => FloodReport; opened: Promise<FloodReport>; stop: () => Promise<void> }
export interface FloodReport { event: string; connected: number; closedByServer: number; failed: number; open: number; ms?: number }

/** Runs a Flood in a child process (see flood-child.ts); stop() ends it by its PID and waits for it to exit. */
export function floodProcess(o: FloodOptions): FloodProc {
  const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "flood-child.ts"), JSON.stringify({ ...o, clientHello: o.clientHello.toString("hex") })],
    { cwd: join(import.meta.dirname, "..", ".."), stdio: ["pipe", "pipe", "inherit"] });
  let last: FloodReport = { event: "starting", connected: 0, closedByServer: 0, failed: 0, open: 0 };
  let buf = "";
  let openedResolve!: (r: FloodReport) => void;
  const opened = new Promise<FloodReport>((r) => { openedResolve = r; });
  child.stdout!.on("data", (c) => {
    buf += c;
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      last = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (last.event === "opened") openedResolve(last);
    }
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    pid: child.pid!, last: () => last, opened,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/**
 * One HTTPS request of a fuzz test: resolves with the status, or "closed" when the server closed without an
 * answer (or node:http refused to send the path at all); rejects when nothing comes within 10 s. A response
 * `streaming` says is a long-lived stream (map, live events) counts as answered once its status arrives.
 */
export function fuzzRequest(o: {
  port: number; agent: Agent; method: string; path: string; headers?: Record<string, string | number>; body?: Buffer; contentType?: string;
  streaming?: (res: IncomingMessage) => boolean;
}): Promise<number | "closed"> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...o.headers };
    if (o.body !== undefined) { headers["content-length"] = o.body.length; if (o.contentType) headers["content-type"] = o.contentType; }
    let req: ReturnType<typeof httpsRequest>;
    try {
      req = httpsRequest({ host: "127.0.0.1", port: o.port, method: o.method, path: o.path, agent: o.agent, headers });
    } catch {
      return resolve("closed");
    }
    const timer = setTimeout(() => { req.destroy(); reject(new Error(`no answer in 10 s to ${o.method} ${o.path}`)); }, 10_000);
    req.on("response", (res) => {
      const status = res.statusCode ?? 0;
      if (status === 200 && o.streaming?.(res)) { clearTimeout(timer); res.destroy(); return resolve(status); }
      res.resume();
      res.on("end", () => { clearTimeout(timer); resolve(status); });
      res.on("error", () => { clearTimeout(timer); resolve("closed"); });
    });
    req.on("error", () => { clearTimeout(timer); resolve("closed"); });
    req.end(o.body);
  });
}
