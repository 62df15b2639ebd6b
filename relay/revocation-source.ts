// Where the relay learns revocations: a signed list file (re-read when it changes) and/or the coordination
// server's GET /v1/revocation, polled with the relay's own certificate. Either way the list goes through
// Verifier.applyRevocationList, which checks the CA signature and refuses older lists (no un-revoking).
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import type { Agent } from "node:https";
import type { Logger } from "pino";
import type { Verifier } from "../src/pki/index.js";
import { RequestError, requestJson, verifiedAgent } from "../src/pki/mtls-client.js";
import { COORD_SERVER, PATHS } from "../src/wire/coord-api.js";
import { acrossReplicas, ReplicasFailed } from "../src/wire/coord-failover.js";
import { coordOrigins } from "../src/wire/coord-origins.js";
import { RELAY_DEFAULTS } from "../src/wire/relay.js";

const FILE_POLL_MS = 500;

export interface RevocationSourceOptions {
  verifier: Verifier;
  log: Logger;
  /** Called after a newer list was accepted. */
  onUpdate: (listNumber: number, source: string) => void;
  file?: string;
  coordUrl?: string;
  certChainPem: string;
  keyPem: string;
  pollMs?: number;
}

export class RevocationSource {
  private timer?: NodeJS.Timeout;
  private agent?: Agent;
  private lastPollProblem = "";
  private polling = false;

  constructor(private readonly o: RevocationSourceOptions) {}

  /** Reads the file once (throws if it is missing or does not verify: the relay must not start open), then watches. */
  start(): void {
    if (this.o.file) {
      const file = this.o.file;
      let text: string;
      try { text = readFileSync(file, "utf8"); } catch (err) { throw new Error(`--revocation ${file}: ${(err as Error).message}`); }
      const r = this.o.verifier.applyRevocationList(text);
      if (!r.ok && r.reason !== "stale_list") throw new Error(`--revocation ${file}: ${r.reason}: ${r.detail}`);
      if (r.ok) this.o.onUpdate(this.o.verifier.revocation.number, "file");
      watchFile(file, { interval: FILE_POLL_MS }, () => this.readFile(file));
    }
    if (this.o.coordUrl) {
      this.agent = verifiedAgent({ verifier: this.o.verifier, expect: COORD_SERVER, certChainPem: this.o.certChainPem, keyPem: this.o.keyPem, maxSockets: 1 });
      void this.poll();
      this.timer = setInterval(() => void this.poll(), this.o.pollMs ?? RELAY_DEFAULTS.revocationPollMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.o.file) unwatchFile(this.o.file);
    if (this.timer) clearInterval(this.timer);
    this.agent?.destroy();
  }

  /** Re-reads the file now (also on SIGHUP). */
  reload(): void {
    if (this.o.file) this.readFile(this.o.file);
  }

  private readFile(file: string): void {
    let text: string;
    try { text = readFileSync(file, "utf8"); } catch (err) {
      this.o.log.warn({ event: "revocation_read_failed", file, detail: (err as Error).message }, "revocation list unreadable; keeping the current one");
      return;
    }
    this.apply(text, "file");
  }

  private apply(text: string, source: string): void {
    const r = this.o.verifier.applyRevocationList(text);
    if (r.ok) {
      this.o.log.info({ event: "revocation_applied", source, number: this.o.verifier.revocation.number, serials: this.o.verifier.revocation.revokedSerials.length }, "revocation list applied");
      this.o.onUpdate(this.o.verifier.revocation.number, source);
    } else if (r.reason !== "stale_list") {
      this.o.log.warn({ event: "revocation_rejected", source, reason: r.reason, detail: r.detail }, "revocation list refused; keeping the current one");
    }
  }

  /** Which coordination replica polls ask first (--coord URL1,URL2): the last one that answered. */
  private replica = 0;

  private async poll(): Promise<void> {
    if (this.polling || !this.agent || !this.o.coordUrl) return;
    this.polling = true;
    const agent = this.agent;
    const origins = coordOrigins(this.o.coordUrl);
    let asked = origins[this.replica];
    try {
      // A replica that is down or without its store: the same poll asks the next one at once.
      const body = await acrossReplicas(origins, (origin, index) => {
        asked = origin;
        return requestJson(agent, origin + PATHS.revocation, "GET", undefined, { timeoutMs: 5_000 }).then((b) => { this.replica = index; return b; });
      }, { idempotent: true, start: this.replica, passes: 1, onFailover: (from, err) => this.problem(err.message, from) });
      this.problem("", asked);
      this.apply(typeof body === "string" ? body : JSON.stringify(body), "coord");
    } catch (err) {
      if (err instanceof ReplicasFailed) return; // each replica's failure was logged as it happened
      // Tolerant: an older coordination server without the endpoint, or one that is down, is logged once per change.
      const detail = err instanceof RequestError && err.status === 404 ? "the coordination server has no /v1/revocation endpoint" : (err as Error).message;
      this.problem(detail, asked);
    } finally {
      this.polling = false;
    }
  }

  private problem(detail: string, replica: string): void {
    const key = detail && `${replica} ${detail}`;
    if (key === this.lastPollProblem) return;
    if (detail) this.o.log.warn({ event: "revocation_poll_failed", coord: this.o.coordUrl, replica, detail }, "cannot fetch the revocation list; keeping the current one");
    else if (this.lastPollProblem) this.o.log.info({ event: "revocation_poll_ok", coord: this.o.coordUrl, replica }, "revocation list reachable again");
    this.lastPollProblem = key;
  }
}
