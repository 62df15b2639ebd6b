// Node telemetry as it travels (POST /v1/telemetry, JSON): a batch of events plus the node's current view
// of its peers and its own diagnosed problems. Every field is checked here, on the server, before it is
// stored; a batch with anything unexpected is refused whole (400 bad_telemetry) with the first problem.
import { NAME_PATTERN } from "./names.js";

export const TELEMETRY_VERSION = 1;
export const MAX_BATCH_EVENTS = 256;
export const MAX_BATCH_BYTES = 256 * 1024;
export const MAX_EVENT_DATA_CHARS = 1024;
export const MAX_SNAPSHOT_PEERS = 512;
export const MAX_PROBLEMS = 16;

export const EVENT_KINDS = ["decision", "handshake", "path", "coord"] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/** One thing that happened on the node. `peer`: the other node, when there is one. */
export interface TelemetryEvent { t: EventKind; at: number; peer?: string; ok?: boolean; data: Record<string, unknown> }

/** The node's peers now: path kind, measured latency and loss. */
export interface PeerSnapshot { name: string; path: string; state: string; rttMs?: number; lossPct?: number }

export type Severity = "error" | "warning";
/** A diagnosed problem, named with its fix (src/node/diagnostics.ts). */
export interface Problem { code: string; severity: Severity; summary: string; fix: string; detail?: Record<string, unknown> }

export interface TelemetryBatch {
  v: number;
  seq: number;
  sentAt: number;
  events: TelemetryEvent[];
  peers?: PeerSnapshot[];
  problems?: Problem[];
  clockOffsetMs?: number;
  /** The sender's protocol and software version (src/wire/protocol.ts); absent from release 0.1.0 (protocol 1). */
  protocol?: number;
  version?: string;
}

/** A checked batch: its events of known kinds, and how many of each unknown kind (a newer node's) were left out. */
export interface CheckedBatch extends TelemetryBatch { skippedKinds: Record<string, number> }

/** An event kind is a short word: a longer or non-string `t` is junk, not a newer kind. */
const MAX_KIND_CHARS = 32;

export class TelemetryFormatError extends Error {}

function fail(msg: string): never { throw new TelemetryFormatError(msg); }
const isObj = (x: unknown): x is Record<string, unknown> => !!x && typeof x === "object" && !Array.isArray(x);
const shortStr = (x: unknown, max: number) => typeof x === "string" && x.length <= max;
const finite = (x: unknown) => typeof x === "number" && Number.isFinite(x);

export function checkBatch(x: unknown): CheckedBatch {
  if (!isObj(x)) fail("batch must be a JSON object");
  if (x.v !== TELEMETRY_VERSION) fail(`unsupported telemetry version ${String(x.v)} (this server speaks ${TELEMETRY_VERSION})`);
  if (!Number.isSafeInteger(x.seq) || (x.seq as number) < 0) fail(`"seq" must be a non-negative integer`);
  if (!Number.isSafeInteger(x.sentAt)) fail(`"sentAt" must be a time in ms`);
  if (!Array.isArray(x.events)) fail(`"events" must be a list`);
  if (x.events.length > MAX_BATCH_EVENTS) fail(`at most ${MAX_BATCH_EVENTS} events per batch`);
  // Events of a kind this server does not know (a newer node's, protocol 2 on) are left out and counted; the rest
  // of the batch is kept. A `t` that is no short word is junk, and refuses the batch as before.
  const skippedKinds: Record<string, number> = {};
  const known: unknown[] = [];
  x.events.forEach((e, i) => {
    if (!isObj(e)) fail(`events[${i}] must be an object`);
    if (typeof e.t === "string" && e.t.length > 0 && e.t.length <= MAX_KIND_CHARS && !EVENT_KINDS.includes(e.t as EventKind)) {
      skippedKinds[e.t] = (skippedKinds[e.t] ?? 0) + 1;
      return;
    }
    known.push(e);
    if (!EVENT_KINDS.includes(e.t as EventKind)) fail(`events[${i}].t must be one of ${EVENT_KINDS.join(", ")}`);
    if (!Number.isSafeInteger(e.at)) fail(`events[${i}].at must be a time in ms`);
    if (e.peer !== undefined && !(typeof e.peer === "string" && NAME_PATTERN.test(e.peer))) fail(`events[${i}].peer must be a node name`);
    if (e.ok !== undefined && typeof e.ok !== "boolean") fail(`events[${i}].ok must be true or false`);
    if (!isObj(e.data) || JSON.stringify(e.data).length > MAX_EVENT_DATA_CHARS) fail(`events[${i}].data must be an object of at most ${MAX_EVENT_DATA_CHARS} characters`);
  });
  if (x.peers !== undefined) {
    if (!Array.isArray(x.peers) || x.peers.length > MAX_SNAPSHOT_PEERS) fail(`"peers" must be a list of at most ${MAX_SNAPSHOT_PEERS}`);
    x.peers.forEach((p, i) => {
      if (!isObj(p) || typeof p.name !== "string" || !NAME_PATTERN.test(p.name)) fail(`peers[${i}].name must be a node name`);
      if (!shortStr(p.path, 80) || !shortStr(p.state, 32)) fail(`peers[${i}] needs short "path" and "state" strings`);
      if (p.rttMs !== undefined && !finite(p.rttMs)) fail(`peers[${i}].rttMs must be a number`);
      if (p.lossPct !== undefined && !finite(p.lossPct)) fail(`peers[${i}].lossPct must be a number`);
    });
  }
  if (x.problems !== undefined) {
    if (!Array.isArray(x.problems) || x.problems.length > MAX_PROBLEMS) fail(`"problems" must be a list of at most ${MAX_PROBLEMS}`);
    x.problems.forEach((p, i) => {
      if (!isObj(p) || !shortStr(p.code, 40) || !shortStr(p.summary, 600) || !shortStr(p.fix, 600) || (p.severity !== "error" && p.severity !== "warning")) {
        fail(`problems[${i}] needs code, severity (error|warning), summary and fix`);
      }
      if (p.detail !== undefined && (!isObj(p.detail) || JSON.stringify(p.detail).length > 2048)) fail(`problems[${i}].detail must be a small object`);
    });
  }
  if (x.clockOffsetMs !== undefined && !finite(x.clockOffsetMs)) fail(`"clockOffsetMs" must be a number`);
  return { ...(x as unknown as TelemetryBatch), events: known as unknown as TelemetryEvent[], skippedKinds };
}
