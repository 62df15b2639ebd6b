// The node's telemetry client (docs/telemetry.md): events queue here (bounded), go to the coordination
// server in batches every few seconds with an access token obtained over mTLS and refreshed before it
// expires, and wait in a bounded spool file in the state directory while the server is unreachable. This is
// the only place on a node that holds a bearer token, and it only ever sends it to the coordination server.
import { appendFileSync, existsSync, readFileSync, statSync, unlinkSync } from "node:fs";
import type { Agent } from "node:https";
import { request } from "node:https";
import { join } from "node:path";
import type { Logger } from "pino";
import type { Verifier } from "../pki/index.js";
import { verifiedAgent } from "../pki/mtls-client.js";
import { repeat, type RestClock } from "../clock/rest-clock.js";
import { COORD_SERVER } from "../wire/coord/names.js";
import { TELEMETRY_PATHS } from "../wire/coord/api.js";
import { PROTOCOL_VERSION } from "../wire/protocol.js";
import { RELEASE } from "../release.js";
import { MAX_BATCH_EVENTS, TELEMETRY_VERSION, type PeerSnapshot, type Problem, type TelemetryEvent } from "../wire/coord/telemetry.js";
import { hasNews, LATENCY_REFRESH_MS, viewOf, type SentView } from "./telemetry-news.js";

export const TELEMETRY_CLIENT = {
  /** Batches go this often (EMBER_TELEMETRY_INTERVAL_MS overrides it, for tests). */
  intervalMs: Number(process.env.EMBER_TELEMETRY_INTERVAL_MS ?? 5_000),
  /** Events held in memory; beyond it the oldest are dropped (counted). */
  maxQueue: 2_000,
  /** The spool file's bound; beyond it new events are dropped (counted). */
  maxSpoolBytes: 1024 * 1024,
  /** An access token is refreshed when it has less than this left. */
  refreshBeforeMs: 60_000,
  requestTimeoutMs: 10_000,
  /** A view that changed only in latency or loss figures goes at most this often (telemetry-news.ts). */
  latencyRefreshMs: LATENCY_REFRESH_MS,
};
export const SPOOL_FILE = "telemetry-spool.jsonl";

export interface TelemetryClientDeps {
  coordUrl: string;
  stateDir: string;
  log: Logger;
  verifier: Verifier;
  credentials(): { certPem: string; keyPem: string; bundlePem: string };
  /** The node's current view, sent with each batch. */
  snapshot(): { peers: PeerSnapshot[]; problems: Problem[] };
  /** The node's rest clock: batches go on its beat, with the node's other periodic work. */
  restClock?: RestClock;
}

interface Tokens { access: string; refresh: string; accessExpires: number; refreshExpires: number }

export class HttpStatusError extends Error {
  constructor(readonly status: number, readonly body: any) { super(`HTTP ${status}: ${body?.reason ?? body?.error ?? ""} ${body?.detail ?? ""}`.trim()); }
}

export class TelemetryClient {
  readonly stats = { batches: 0, events: 0, dropped: 0, spooled: 0, failures: 0, tokenGrants: 0, tokenRefreshes: 0, lastError: "", lastOkAt: 0 };
  /** Our clock minus the server's, from the last answer that carried its time. */
  clock?: { offsetMs: number; measuredAt: number; via: string };
  private queue: TelemetryEvent[] = [];
  private tokens?: Tokens;
  private agent?: Agent;
  private agentCert = "";
  private stopTimer?: () => void;
  private flushing?: Promise<void>;
  private seq = Date.now();
  /** What the server last received, and when: an unchanged view with no events is not sent (a resting node is quiet). */
  private lastSent: SentView = { shape: "", at: 0, measured: [], idle: [], figures: "" };
  private stopped = true;
  /**
   * False once the spool is known absent: only this client writes it while the daemon runs, so a resting node does
   * not look for the file on every batch (one stat a beat, issue 16). True at start (a previous run may have left one).
   */
  private spoolMayExist = true;

  constructor(private readonly deps: TelemetryClientDeps) {}

  get spoolPath(): string { return join(this.deps.stateDir, SPOOL_FILE); }

  record(e: TelemetryEvent): void {
    this.queue.push(e);
    if (this.queue.length > TELEMETRY_CLIENT.maxQueue) { this.queue.shift(); this.stats.dropped++; }
  }

  start(): void {
    this.stopped = false;
    // A flush still running when the next is due is not doubled (flush() joins it).
    this.stopTimer = repeat(this.deps.restClock, TELEMETRY_CLIENT.intervalMs, () => { if (!this.stopped) void this.flush(); });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopTimer?.();
    this.stopTimer = undefined;
    await this.flushing;
    // What is still queued waits in the spool for the next start.
    if (this.queue.length) this.spool(this.queue.splice(0));
    this.agent?.destroy();
  }

  /** Sends the spool, then the queue, in batches; on failure the events go to the spool. */
  flush(): Promise<void> {
    this.flushing ??= this.flushOnce().finally(() => { this.flushing = undefined; });
    return this.flushing;
  }

  private async flushOnce(): Promise<void> {
    try {
      const spooled = this.readSpool();
      if (spooled.length) {
        for (let i = 0; i < spooled.length; i += MAX_BATCH_EVENTS) await this.send(spooled.slice(i, i + MAX_BATCH_EVENTS));
        try { unlinkSync(this.spoolPath); } catch { /* gone */ }
        this.spoolMayExist = false;
      }
      // One snapshot per flush (a 999-peer node's peer list is its largest allocation at rest).
      const snap = this.deps.snapshot();
      const view = viewOf(snap, Date.now());
      if (!hasNews(this.queue.length, view, this.lastSent, TELEMETRY_CLIENT.latencyRefreshMs)) return;
      do {
        const events = this.queue.splice(0, MAX_BATCH_EVENTS);
        try { await this.send(events, { snap, view }); } catch (err) { this.spool(events); throw err; }
      } while (this.queue.length);
      this.stats.lastOkAt = Date.now();
      this.stats.lastError = "";
    } catch (err) {
      this.stats.failures++;
      this.stats.lastError = (err as Error).message;
      this.deps.log.debug({ err: (err as Error).message }, "telemetry: batch not delivered (kept in the spool)");
    }
  }

  private async send(events: TelemetryEvent[], withSnapshot?: { snap: ReturnType<TelemetryClientDeps["snapshot"]>; view: SentView }): Promise<void> {
    const snap = withSnapshot?.snap;
    const view = withSnapshot?.view;
    const body = {
      v: TELEMETRY_VERSION, seq: this.seq++, sentAt: Date.now(), events, protocol: PROTOCOL_VERSION, version: RELEASE.version,
      ...(snap ? { peers: snap.peers, problems: snap.problems } : {}), ...(this.clock ? { clockOffsetMs: Math.round(this.clock.offsetMs) } : {}),
    };
    for (let attempt = 0; ; attempt++) {
      const access = await this.accessToken();
      try {
        const r = await this.post(TELEMETRY_PATHS.telemetry, JSON.stringify(body), "application/json", access);
        this.stats.batches++;
        this.stats.events += r.accepted ?? 0;
        if (view) this.lastSent = view;
        return;
      } catch (err) {
        // A refused token (expired meanwhile, family revoked, certificate rotated): one new grant, then give up.
        if (err instanceof HttpStatusError && err.status === 401 && attempt === 0) { this.tokens = undefined; continue; }
        throw err;
      }
    }
  }

  private async accessToken(): Promise<string> {
    const now = Date.now();
    const t = this.tokens;
    if (t && t.accessExpires - now > TELEMETRY_CLIENT.refreshBeforeMs) return t.access;
    if (t && t.refreshExpires - now > TELEMETRY_CLIENT.refreshBeforeMs) {
      try {
        this.stats.tokenRefreshes++;
        return this.take(await this.post(TELEMETRY_PATHS.token, new URLSearchParams({ grant_type: "refresh_token", refresh_token: t.refresh }).toString(), "application/x-www-form-urlencoded"));
      } catch { this.tokens = undefined; }
    }
    this.stats.tokenGrants++;
    return this.take(await this.post(TELEMETRY_PATHS.token, "grant_type=client_credentials", "application/x-www-form-urlencoded"));
  }

  private take(r: any): string {
    const now = Date.now();
    this.tokens = { access: r.access_token, refresh: r.refresh_token, accessExpires: now + r.expires_in * 1000, refreshExpires: now + r.refresh_expires_in * 1000 };
    return r.access_token;
  }

  private agentFor(): Agent {
    const c = this.deps.credentials();
    if (!this.agent || this.agentCert !== c.certPem) {
      this.agent?.destroy();
      const chain = c.certPem.trimEnd() + "\n" + c.bundlePem.split(/(?=-----BEGIN CERTIFICATE-----)/).slice(1).join("");
      this.agent = verifiedAgent({ verifier: this.deps.verifier, expect: COORD_SERVER, certChainPem: chain, keyPem: c.keyPem, keepAlive: true, maxSockets: 1 });
      this.agentCert = c.certPem;
      this.tokens = undefined; // tokens are bound to the certificate that obtained them
    }
    return this.agent!;
  }

  /** One POST to the coordination server; measures the clock offset from the answer's server time. */
  private post(path: string, body: string, type: string, bearer?: string): Promise<any> {
    const agent = this.agentFor();
    const url = new URL(path, this.deps.coordUrl);
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      const req = request(url, {
        method: "POST", agent, timeout: TELEMETRY_CLIENT.requestTimeoutMs,
        headers: { "content-type": type, "content-length": Buffer.byteLength(body), accept: "application/json", ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
      }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => { if (text.length < 65_536) text += c; });
        res.on("end", () => {
          let j: any;
          try { j = JSON.parse(text); } catch { j = {}; }
          const serverTime = j.server_time ?? j.serverTime;
          if (typeof serverTime === "number") {
            const t1 = Date.now();
            this.clock = { offsetMs: (t0 + t1) / 2 - serverTime, measuredAt: t1, via: `POST ${url.origin}${path}` };
          }
          if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) resolve(j);
          else reject(new HttpStatusError(res.statusCode ?? 0, j));
        });
      });
      req.on("timeout", () => req.destroy(new Error(`${url.origin}${path} timed out`)));
      req.on("error", reject);
      req.end(body);
    });
  }

  /** Appends as many events as fit under the bound; the rest are dropped and counted. */
  private spool(events: TelemetryEvent[]): void {
    if (!events.length) return;
    let size = 0;
    try { size = existsSync(this.spoolPath) ? statSync(this.spoolPath).size : 0; } catch { size = 0; }
    let text = "";
    let kept = 0;
    for (const e of events) {
      const line = JSON.stringify(e) + "\n";
      if (size + text.length + line.length > TELEMETRY_CLIENT.maxSpoolBytes) break;
      text += line;
      kept++;
    }
    this.stats.dropped += events.length - kept;
    if (!kept) return;
    this.spoolMayExist = true;
    try { appendFileSync(this.spoolPath, text, { mode: 0o600 }); this.stats.spooled += kept; } catch { this.stats.dropped += kept; }
  }

  private readSpool(): TelemetryEvent[] {
    if (!this.spoolMayExist) return [];
    if (!existsSync(this.spoolPath)) { this.spoolMayExist = false; return []; }
    try {
      return readFileSync(this.spoolPath, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as TelemetryEvent);
    } catch {
      try { unlinkSync(this.spoolPath); } catch { /* gone */ }
      return [];
    }
  }
}
