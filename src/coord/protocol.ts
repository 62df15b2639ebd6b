// The coordination protocol in one place: HTTP paths, limits, token format, and the peer-map stream frames.
// Map stream: GET /v1/map?epoch=E&seq=N answers 200 with a streaming body of frames, each
//   [u32 big-endian length][msgpack body]   (msgpackr, useRecords:false, every body has v = MAP_PROTOCOL_VERSION)
// The first frame is a full map (or, on a resumable reconnect, the missing deltas in order); then deltas.
import { Packr } from "msgpackr";
import { PATHS, SERVER_NAME, SERVER_ROLE } from "../wire/coord-api.js";
import { RELAY_ROLE } from "../wire/relay.js";
import { MAX_POLICY_BYTES } from "../policy/limits.js";
import type { EdgeView } from "./edge-protocol.js";

export { PATHS, SERVER_NAME, SERVER_ROLE };

export const MAP_PROTOCOL_VERSION = 1;

/** Telemetry and console endpoints (docs/telemetry.md, docs/dashboard.md). */
export const TELEMETRY_PATHS = {
  token: "/v1/oauth/token",
  telemetry: "/v1/telemetry",
  adminUsers: "/v1/admin/users",
} as const;

/**
 * Admission of TCP connections (src/coord/conn-guard.ts), each a flag of `ember coord`. A connection is
 * authenticated once its TLS handshake presented a client certificate the verifier accepts; until then
 * (pre-TLS, and anonymous: health, bundle, enrollment) it counts against the smaller pending budget, the
 * per-source limit and a lifetime. Authenticated connections (map streams, one per node) are never evicted.
 */
export const COORD_CONNECTION_DEFAULTS = {
  maxConnections: 20_000,
  maxPending: 1_024,
  /** Enrollment bursts from one NAT address are real: higher than the relay's. */
  maxPendingPerSource: 64,
  /** TLS handshake deadline (Node's https default is 120 s). */
  handshakeTimeoutMs: 10_000,
  /** A connection without a client certificate is closed this long after accept (an enrollment takes < 1 s). */
  anonymousTimeoutMs: 30_000,
} as const;
export type CoordConnectionLimits = { -readonly [K in keyof typeof COORD_CONNECTION_DEFAULTS]: number };

/**
 * Admission on the console's own listener (src/coord/console-listener.ts), the same guard as above. A
 * connection is authenticated once a request on it carries a valid session (or its TLS handshake presented a
 * certificate the verifier accepts); the login page, its static files and the login itself are pending.
 */
export const CONSOLE_CONNECTION_DEFAULTS = {
  /** Browsers hold a few connections each, plus one live stream per tab. */
  maxConnections: 512,
  maxPending: 256,
  /** A browser opens about 6 connections per host; an office behind one NAT address, a few browsers. */
  maxPendingPerSource: 32,
  handshakeTimeoutMs: 10_000,
  /** A connection that shows no session this long after accept is closed (browsers reconnect at once). */
  anonymousTimeoutMs: 30_000,
} as const;

/** Request bodies: enrollment/renewal/status are a few KiB; a policy file may be larger. */
export const MAX_BODY_BYTES = 64 * 1024;
/**
 * PUT /v1/admin/policy carries {"source": TEXT}: derived from the one policy limit (MAX_POLICY_BYTES, bytes of
 * source) so that any policy within it fits after JSON escaping, whose worst case is a control character:
 * 1 byte of source, 6 of JSON ("\u0001"). The 1 KiB covers the envelope and any whitespace around it.
 */
export const JSON_ESCAPE_WORST_CASE = 6;
export const MAX_POLICY_BODY_BYTES = JSON_ESCAPE_WORST_CASE * MAX_POLICY_BYTES + 1024;
/** A single frame: a full map of 10,000 peers is ~8 MB; anything over this is junk or an attack. */
export const MAX_FRAME_BYTES = 32 * 1024 * 1024;
export const FRAME_HEADER_BYTES = 4;
/**
 * Server sends a ping frame this often; the client drops a stream silent for STREAM_IDLE_MS. Once a minute: the
 * map stream's keepalive is most of what a node at rest sends (one TCP acknowledgement per ping), and a stream
 * through a NAT or firewall with a TCP timeout of a few minutes stays open. 2.5 intervals tolerate one lost ping.
 */
export const PING_INTERVAL_MS = 60_000;
export const STREAM_IDLE_MS = 150_000;
/** Deltas kept per node for resuming after a reconnect, and how long a disconnected node's log is kept. */
export const RESUME_LOG_FRAMES = 256;
export const RESUME_LOG_BYTES = 256 * 1024;
export const RESUME_GRACE_MS = 5 * 60_000;
/**
 * A logged frame older than this is dropped. A node whose stream broke notices within STREAM_IDLE_MS of the last
 * byte it read and comes back within its backoff, so it misses only frames younger than that; one away longer gets
 * a full map, as after the grace time. Without it a resting node kept the last 256 frames it was sent (its team
 * mates' "online" patches from when they connected: ~5 KiB of server memory per node) for good.
 */
export const RESUME_LOG_MAX_AGE_MS = RESUME_GRACE_MS;
/**
 * Frames to a stream within this long of its last write leave together at the window's end (src/coord/
 * frame-coalescer.ts): a quiet stream's frame leaves at once, a busy one's at most this late.
 */
export const FRAME_COALESCE_MS = 50;
/** A stream whose unsent backlog exceeds this is dropped (the node resumes or gets a full map). */
export const MAX_STREAM_BACKLOG_BYTES = 8 * 1024 * 1024;
/** Status reports: bounded lists of short strings. */
export const MAX_ENDPOINTS = 32;
export const MAX_ENDPOINT_CHARS = 64;
export const STATUS_MIN_INTERVAL_MS = 1_000;

/** Token: ember1.<id 16 hex>.<secret 43 b64url>.<sha256 of the root CA DER, 43 b64url> */
export const TOKEN_PREFIX = "ember1";
export const TOKEN_PATTERN = /^ember1\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{43})$/;
export const TOKEN_DEFAULT_TTL_MS = 60 * 60_000;
export const TOKEN_MAX_USES = 10_000;

/** Leaf TTL policy: default hours, minimum minutes (a test-only server flag lowers the minimum). */
export const CERT_DEFAULT_TTL_MS = 8 * 3_600_000;
export const CERT_MIN_TTL_MS = 5 * 60_000;

export const ADMIN_ROLE = "admin";
/**
 * Roles of the infrastructure: a node enrolled with one is trusted as a relay or as the coordination server by
 * every node that checks only the role and a name. A token granting one needs an explicit confirmation
 * (allowInfraRole, `ember token create --allow-infra-role`), as role admin needs allowAdminRole.
 */
export const INFRA_ROLES: readonly string[] = [RELAY_ROLE, SERVER_ROLE];
/** Names nodes may not enroll under (besides the names of the relays the server hands out). */
export const RESERVED_NAMES = new Set([SERVER_NAME]);

export interface MapRelay { name: string; host: string; port: number; stunPort?: number }

export interface MapPeer {
  name: string;
  tenant: string;
  groups: string[];
  certPem: string;
  endpoints: string[];
  homeRelay?: string;
  online: boolean;
  lastSeen?: string;
  /** Overlay IPv4 address (TUN mode), 100.64.0.0/10; stable for the identity. */
  overlayIp?: string;
  /** Services the node announces (`ember serve`): name, port on the mesh, protocol. */
  services?: MapService[];
  /** The user certificate of the person logged in on the node (bound to its key): the node's flows are theirs. */
  userCertPem?: string;
}

export type ServiceProtocol = "tcp" | "udp" | "https";
export interface MapService { name: string; port: number; protocol: ServiceProtocol }

/** Services one node may announce. */
export const MAX_SERVICES_PER_NODE = 32;
const SERVICE_PROTOCOLS: readonly string[] = ["tcp", "udp", "https"];
const SERVICE_NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Checks an announced service list (status reports and map frames); the message names the first problem. */
export function checkServices(x: unknown): MapService[] {
  if (!Array.isArray(x) || x.length > MAX_SERVICES_PER_NODE) throw new Error(`"services" must be a list of at most ${MAX_SERVICES_PER_NODE}`);
  const seen = new Set<string>();
  return x.map((s, i) => {
    const o = s as Record<string, unknown>;
    if (!o || typeof o !== "object") throw new Error(`services[${i}] must be an object`);
    if (typeof o.name !== "string" || !SERVICE_NAME_PATTERN.test(o.name)) throw new Error(`services[${i}].name must be a lowercase DNS label`);
    if (!Number.isInteger(o.port) || (o.port as number) < 1 || (o.port as number) > 65535) throw new Error(`services[${i}].port must be 1-65535`);
    if (typeof o.protocol !== "string" || !SERVICE_PROTOCOLS.includes(o.protocol)) throw new Error(`services[${i}].protocol must be tcp, udp or https`);
    if (seen.has(o.name)) throw new Error(`services[${i}]: "${o.name}" is announced twice`);
    seen.add(o.name);
    return { name: o.name, port: o.port as number, protocol: o.protocol as ServiceProtocol };
  });
}

export function sameServices(a: MapService[] | undefined, b: MapService[] | undefined): boolean {
  return JSON.stringify(a ?? []) === JSON.stringify(b ?? []);
}

/** A change to a peer already in the map: only the fields that changed. */
/** In a patch, userCertPem "" means: nobody is logged in on the node any more. */
export type PeerPatch = Pick<MapPeer, "name"> & Partial<Pick<MapPeer, "endpoints" | "homeRelay" | "online" | "lastSeen" | "certPem" | "services" | "overlayIp" | "userCertPem">>;

/** userCertPem: the person logged in on this node (in a delta, "" = logged out). */
export interface MapSelf { name: string; tenant: string; groups: string[]; overlayIp?: string; userCertPem?: string }

export interface FullFrame {
  v: number; t: "full"; seq: number; epoch: string;
  self: MapSelf; peers: MapPeer[]; rules: unknown; relays: MapRelay[]; revocation?: string;
  /** Nodes with role edge only: their publications (edge-protocol.ts), checked by the client. */
  edge?: EdgeView;
}
export interface DeltaFrame {
  v: number; t: "delta"; seq: number;
  upsert?: MapPeer[]; patch?: PeerPatch[]; remove?: string[]; rules?: unknown; relays?: MapRelay[]; revocation?: string;
  self?: Pick<MapSelf, "userCertPem">;
  edge?: EdgeView;
}
export interface PingFrame { v: number; t: "ping" }
export type MapFrame = FullFrame | DeltaFrame | PingFrame;

const packr = new Packr({ useRecords: false, moreTypes: false });

export function encodeFrame(frame: MapFrame): Buffer {
  const body = packr.pack(frame);
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, FRAME_HEADER_BYTES);
  return out;
}

/** One peer's msgpack encoding, kept by the hub per peer version and spliced into every full map that lists it. */
export function encodePeer(p: MapPeer): Buffer {
  return Buffer.from(packr.pack(p)); // a copy: packr reuses the buffer it returns
}

const PEERS_KEY = Buffer.from(packr.pack("peers"));

/**
 * encodeFrame of a full map whose peers come encoded (encodePeer): a decoder reads the same frame (with "peers"
 * as its last key). Encoding 49 peers' certificates anew for every stream that connected was a seventh of the
 * server's CPU per stream.
 */
export function encodeFullFrame(frame: Omit<FullFrame, "peers">, peers: Buffer[]): Buffer {
  const rest = packr.pack(frame);
  const head = mapHeader(rest);
  const newHead = msgpackHeader(head.count + 1, 0x80, 0xde, 15);
  const arrayHead = msgpackHeader(peers.length, 0x90, 0xdc, 15);
  let size = newHead.length + rest.length - head.bytes + PEERS_KEY.length + arrayHead.length;
  for (const p of peers) size += p.length;
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + size);
  out.writeUInt32BE(size, 0);
  let at = FRAME_HEADER_BYTES;
  at += newHead.copy(out, at);
  at += rest.copy(out, at, head.bytes);
  at += PEERS_KEY.copy(out, at);
  at += arrayHead.copy(out, at);
  for (const p of peers) at += p.copy(out, at);
  return out;
}

/** The entry count and header length of the msgpack map at the start of `b`. */
function mapHeader(b: Uint8Array): { count: number; bytes: number } {
  if ((b[0] & 0xf0) === 0x80) return { count: b[0] & 0x0f, bytes: 1 };
  if (b[0] === 0xde) return { count: (b[1] << 8) | b[2], bytes: 3 };
  if (b[0] === 0xdf) return { count: Buffer.from(b.buffer, b.byteOffset + 1, 4).readUInt32BE(0), bytes: 5 };
  throw new Error(`a map frame encoded as msgpack type 0x${b[0].toString(16)}, not a map`);
}

/** A msgpack map or array header: fix form (`fix` | n) up to `fixMax`, then 16- and 32-bit counts. */
function msgpackHeader(n: number, fix: number, type16: number, fixMax: number): Buffer {
  if (n <= fixMax) return Buffer.from([fix | n]);
  if (n < 0x10000) return Buffer.from([type16, n >> 8, n & 0xff]);
  const b = Buffer.allocUnsafe(5);
  b[0] = type16 + 1; // map32 = map16 + 1, array32 = array16 + 1
  b.writeUInt32BE(n, 1);
  return b;
}

export class FrameError extends Error {}

/** Incremental frame reader: push stream chunks, get decoded frames; throws FrameError on junk. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): MapFrame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: MapFrame[] = [];
    for (;;) {
      if (this.buffered < FRAME_HEADER_BYTES) return frames;
      const head = this.peek(FRAME_HEADER_BYTES);
      const len = head.readUInt32BE(0);
      if (len === 0 || len > MAX_FRAME_BYTES) throw new FrameError(`frame length ${len} outside 1..${MAX_FRAME_BYTES}`);
      if (this.buffered < FRAME_HEADER_BYTES + len) return frames;
      const all = this.take(FRAME_HEADER_BYTES + len);
      frames.push(decodeFrameBody(all.subarray(FRAME_HEADER_BYTES)));
    }
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0];
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return all.subarray(0, n);
  }
}

export function decodeFrameBody(body: Buffer): MapFrame {
  let f: unknown;
  try { f = packr.unpack(body); } catch (err) { throw new FrameError(`frame is not msgpack: ${(err as Error).message}`); }
  if (f === null || typeof f !== "object" || Array.isArray(f)) throw new FrameError("frame is not a map");
  const o = f as Record<string, unknown>;
  if (o.v !== MAP_PROTOCOL_VERSION) throw new FrameError(`unsupported frame version ${String(o.v)}`);
  if (o.t === "ping") return o as unknown as PingFrame;
  if (o.t !== "full" && o.t !== "delta") throw new FrameError(`unknown frame type ${String(o.t)}`);
  if (!Number.isSafeInteger(o.seq) || (o.seq as number) < 0) throw new FrameError("frame without a valid seq");
  if (o.t === "full") {
    if (typeof o.epoch !== "string" || !o.self || typeof o.self !== "object" || !Array.isArray(o.peers) || !Array.isArray(o.relays)) {
      throw new FrameError("full map frame lacks epoch/self/peers/relays");
    }
    for (const p of o.peers) checkPeer(p);
    checkOverlayIp((o.self as MapSelf).overlayIp);
    checkText((o.self as MapSelf).userCertPem, "self.userCertPem");
  } else {
    for (const k of ["upsert", "patch", "remove"] as const) if (o[k] !== undefined && !Array.isArray(o[k])) throw new FrameError(`delta ${k} is not a list`);
    for (const p of (o.upsert as unknown[] | undefined) ?? []) checkPeer(p);
    for (const p of (o.patch as unknown[] | undefined) ?? []) {
      if (!p || typeof (p as MapPeer).name !== "string") throw new FrameError("patch without a name");
      if ((p as MapPeer).services !== undefined) checkFrameServices((p as MapPeer).services);
      checkOverlayIp((p as MapPeer).overlayIp);
      checkText((p as MapPeer).userCertPem, "patch userCertPem");
    }
    if (o.self !== undefined && (o.self === null || typeof o.self !== "object")) throw new FrameError("delta self is not a map");
    checkText((o.self as MapSelf | undefined)?.userCertPem, "self.userCertPem");
    for (const n of (o.remove as unknown[] | undefined) ?? []) if (typeof n !== "string") throw new FrameError("remove entry is not a name");
  }
  if (o.revocation !== undefined && typeof o.revocation !== "string") throw new FrameError("revocation is not text");
  return o as unknown as MapFrame;
}

function checkPeer(p: unknown): void {
  const x = p as MapPeer;
  if (!x || typeof x.name !== "string" || typeof x.tenant !== "string" || !Array.isArray(x.groups) || typeof x.certPem !== "string" || !Array.isArray(x.endpoints)) {
    throw new FrameError("peer entry lacks name/tenant/groups/certPem/endpoints");
  }
  if (x.services !== undefined) checkFrameServices(x.services);
  checkOverlayIp(x.overlayIp);
  checkText(x.userCertPem, "userCertPem");
}

function checkText(x: unknown, what: string): void {
  if (x !== undefined && typeof x !== "string") throw new FrameError(`${what} is not text`);
}

/** A dotted-quad IPv4 address (the node's TUN routes and firewall key on it, so junk is refused here). */
export const OVERLAY_IP_PATTERN = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

function checkOverlayIp(x: unknown): void {
  if (x !== undefined && (typeof x !== "string" || !OVERLAY_IP_PATTERN.test(x))) throw new FrameError("overlayIp is not an IPv4 address");
}

function checkFrameServices(x: unknown): void {
  try { checkServices(x); } catch (err) { throw new FrameError(`peer services: ${(err as Error).message}`); }
}

/** Endpoint strings nodes report: host:port or [v6]:port. */
export const ENDPOINT_PATTERN = /^(?:\[[0-9a-fA-F:.]{2,45}\]|[0-9A-Za-z.-]{1,253}):\d{1,5}$/;
