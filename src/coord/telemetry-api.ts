// The coordination server's telemetry endpoints (docs/telemetry.md):
//   POST /v1/oauth/token  over mTLS only: grant_type=client_credentials (the certificate authenticates the
//                         node) or grant_type=refresh_token; answers an access + refresh token pair.
//   POST /v1/telemetry    over mTLS with "Authorization: Bearer <access token>" bound to that certificate.
// Every refusal of a token is 401 {error: "invalid_token", reason, detail} with a WWW-Authenticate header
// (RFC 6750); floods are bounded per node (batches per second, events per minute) and counted.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import type { Identity } from "../pki/index.js";
import { HttpError, readBody, sendJson } from "./http.js";
import { certThumbprint, type JwtKey } from "./jwt.js";
import { M2mTokens, TokenRefused } from "./m2m.js";
import { checkBatch, MAX_BATCH_BYTES, TelemetryFormatError, type TelemetryEvent } from "./telemetry-protocol.js";
import { TelemetryStore, type NodeSnapshot, type ReceivedEvent } from "./telemetry-store.js";

/** Per-node admission: batches (burst, per second) and events (burst, per second). */
export const TELEMETRY_LIMITS = { batchBurst: 10, batchesPerSec: 2, eventBurst: 1_200, eventsPerSec: 20 };
/** Nodes whose buckets are kept; beyond it the least recently seen are forgotten. */
const MAX_TRACKED_NODES = 100_000;

class Bucket {
  private tokens: number;
  private at: number;
  constructor(private readonly burst: number, private readonly perSec: number, now: number) { this.tokens = burst; this.at = now; }
  take(n: number, now: number): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSec);
    this.at = now;
    const got = Math.min(n, Math.floor(this.tokens));
    this.tokens -= got;
    return got;
  }
}

interface NodeState { batches: Bucket; events: Bucket; seqs: number[] }

export interface TelemetryCounters {
  batches: number;
  events: number;
  /** Events not stored, by reason: over_quota (per-node event rate), duplicate (batch seen before). */
  dropped: Record<string, number>;
  /** Whole batches refused, by reason: rate_limited, too_large, bad_telemetry. */
  refusedBatches: Record<string, number>;
  /** Per node: events dropped for its quota and batches refused for its rate (the flood view). */
  perNode: Map<string, { dropped: number; refused: number }>;
}

export class TelemetryApi {
  readonly tokens: M2mTokens;
  readonly counters: TelemetryCounters = { batches: 0, events: 0, dropped: {}, refusedBatches: {}, perNode: new Map() };
  private readonly nodes = new Map<string, NodeState>();
  private readonly listeners = new Set<(node: string) => void>();

  constructor(key: JwtKey, readonly store: TelemetryStore, private readonly log: Logger, private readonly limits = TELEMETRY_LIMITS, private readonly now: () => number = Date.now) {
    this.tokens = new M2mTokens(key, now);
  }

  /** Called after every stored batch (the console's live updates). */
  onBatch(fn: (node: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  async token(id: Identity, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const params = await readParams(req);
    const thumb = thumbOf(req);
    try {
      const grant = params.grant_type;
      let pair;
      if (grant === "client_credentials") pair = this.tokens.grant(id, thumb);
      else if (grant === "refresh_token") pair = this.tokens.refresh(id, thumb, params.refresh_token);
      else throw new HttpError(400, "unsupported_grant_type", `grant_type must be client_credentials or refresh_token, got "${String(grant ?? "")}"`);
      this.log.debug({ event: "token_issued", name: id.name, grant });
      sendJson(res, 200, pair);
    } catch (err) {
      if (err instanceof TokenRefused) return this.refuse(res, id, err, "token");
      throw err;
    }
  }

  async ingest(id: Identity, req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      this.tokens.authorize(req.headers.authorization, id, thumbOf(req));
    } catch (err) {
      if (err instanceof TokenRefused) return this.refuse(res, id, err, "telemetry");
      throw err;
    }
    const now = this.now();
    const st = this.state(id.name, now);
    if (st.batches.take(1, now) < 1) {
      this.refuseBatch(id.name, "rate_limited");
      res.setHeader("retry-after", "1");
      throw new HttpError(429, "rate_limited", `more than ${this.limits.batchesPerSec} telemetry batches per second from ${id.name}`);
    }
    let body: Buffer;
    try { body = await readBody(req, MAX_BATCH_BYTES, " (one telemetry batch)"); } catch (err) {
      if (err instanceof HttpError && err.status === 413) this.refuseBatch(id.name, "too_large");
      throw err;
    }
    let batch;
    try { batch = checkBatch(JSON.parse(body.toString("utf8"))); } catch (err) {
      this.refuseBatch(id.name, "bad_telemetry");
      if (err instanceof TelemetryFormatError) throw new HttpError(400, "bad_telemetry", err.message);
      throw new HttpError(400, "bad_json", "request body is not JSON");
    }
    this.counters.batches++;
    if (st.seqs.includes(batch.seq)) {
      this.drop(id.name, "duplicate", batch.events.length);
      return sendJson(res, 200, { accepted: 0, dropped: batch.events.length, duplicate: true, serverTime: this.now() });
    }
    st.seqs.push(batch.seq);
    if (st.seqs.length > 16) st.seqs.shift();
    const allowed = st.events.take(batch.events.length, now);
    const events = onServerClock(batch.events.slice(0, allowed), batch.sentAt, now);
    const dropped = batch.events.length - allowed;
    if (dropped) this.drop(id.name, "over_quota", dropped);
    this.store.add(id.name, events);
    this.counters.events += events.length;
    if (batch.peers || batch.problems || batch.clockOffsetMs !== undefined) {
      const prev = this.store.snapshot(id.name);
      const snap: NodeSnapshot = {
        node: id.name, at: now, peers: batch.peers ?? prev?.peers ?? [], problems: batch.problems ?? prev?.problems ?? [],
        ...(batch.clockOffsetMs !== undefined ? { clockOffsetMs: batch.clockOffsetMs } : prev?.clockOffsetMs !== undefined ? { clockOffsetMs: prev.clockOffsetMs } : {}),
      };
      this.store.saveSnapshot(snap);
    }
    for (const fn of this.listeners) fn(id.name);
    sendJson(res, 200, { accepted: events.length, dropped, serverTime: this.now() });
  }

  private state(name: string, now: number): NodeState {
    let st = this.nodes.get(name);
    if (st) { this.nodes.delete(name); this.nodes.set(name, st); return st; }
    if (this.nodes.size >= MAX_TRACKED_NODES) this.nodes.delete(this.nodes.keys().next().value!);
    st = { batches: new Bucket(this.limits.batchBurst, this.limits.batchesPerSec, now), events: new Bucket(this.limits.eventBurst, this.limits.eventsPerSec, now), seqs: [] };
    this.nodes.set(name, st);
    return st;
  }

  private drop(node: string, reason: string, n: number): void {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + n;
    const p = this.perNode(node);
    p.dropped += n;
  }

  private refuseBatch(node: string, reason: string): void {
    this.counters.refusedBatches[reason] = (this.counters.refusedBatches[reason] ?? 0) + 1;
    this.perNode(node).refused++;
  }

  private perNode(node: string) {
    let p = this.counters.perNode.get(node);
    if (!p) {
      if (this.counters.perNode.size >= MAX_TRACKED_NODES) this.counters.perNode.delete(this.counters.perNode.keys().next().value!);
      this.counters.perNode.set(node, (p = { dropped: 0, refused: 0 }));
    }
    return p;
  }

  private refuse(res: ServerResponse, id: Identity, err: TokenRefused, where: string): void {
    // A family from before a restart or from another replica is routine (the node makes a new grant): info, not a warning.
    const routine = err.reason === "unknown_family";
    this.log[routine ? "info" : "warn"]({ event: "token_refused", reason: err.reason, detail: err.detail, name: id.name, where },
      routine ? "bearer token from before a restart or from another replica; the node obtains a new grant" : "bearer token refused");
    res.setHeader("www-authenticate", `Bearer error="invalid_token", error_description="${err.reason}"`);
    sendJson(res, 401, { error: "invalid_token", reason: err.reason, detail: err.detail });
  }
}

/** RFC 8705: the SHA-256 of the DER of the certificate presented on this connection. */
export function thumbOf(req: IncomingMessage): string {
  const c = (req.socket as TLSSocket).getPeerCertificate?.();
  if (!c?.raw) throw new HttpError(401, "malformed", "no client certificate presented");
  return certThumbprint(c.raw);
}

/** Token requests: application/x-www-form-urlencoded (RFC 6749) or JSON. */
async function readParams(req: IncomingMessage): Promise<Record<string, string | undefined>> {
  const body = (await readBody(req, 16 * 1024)).toString("utf8");
  if ((req.headers["content-type"] ?? "").includes("application/json")) {
    try {
      const v = JSON.parse(body);
      if (v && typeof v === "object" && !Array.isArray(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, typeof x === "string" ? x : undefined]));
    } catch { /* below */ }
    throw new HttpError(400, "bad_json", "request body is not a JSON object");
  }
  return Object.fromEntries(new URLSearchParams(body));
}

/**
 * Events placed on the server's clock, so the console sorts every node's events together even when a node's
 * clock is wrong: each keeps its distance before the batch was sent (node clock, sentAt - at) and is placed that
 * long before the batch arrived (server clock), never in the server's future; the node's own stamp stays as nodeAt.
 */
export function onServerClock(events: TelemetryEvent[], sentAt: number, receivedAt: number): ReceivedEvent[] {
  return events.map((e) => ({ ...e, at: Math.min(receivedAt, receivedAt - Math.max(0, sentAt - e.at)), nodeAt: e.at }));
}
