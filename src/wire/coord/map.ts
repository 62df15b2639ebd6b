// The peer-map stream: GET /v1/map?epoch=E&seq=N answers 200 with a streaming body of frames, each
//   [u32 big-endian length][msgpack body]   (msgpackr, useRecords:false, every body has v = MAP_PROTOCOL_VERSION)
// The first frame is a full map (or, on a resumable reconnect, the missing deltas in order); then deltas.
// The frame shapes, their encoders (the server's) and the checking decoder (the node's) live here together.
import { Packr } from "msgpackr";
import type { EdgeView } from "./edge.js";
import { OVERLAY_IP_PATTERN } from "./names.js";
import { checkServices, type MapService } from "./services.js";

export const MAP_PROTOCOL_VERSION = 1;

/** A single frame: a full map of 10,000 peers is ~8 MB; anything over this is junk or an attack. */
export const MAX_FRAME_BYTES = 32 * 1024 * 1024;
export const FRAME_HEADER_BYTES = 4;
/**
 * Server sends a ping frame this often; the client drops a stream silent for STREAM_IDLE_MS. At rest the ping and
 * its TCP acknowledgement are most of what the stream costs a node, so every two minutes (issue 26: a resting node
 * on a satellite link sends no more than WireGuard's 25 s keepalive). NATs keep an established TCP mapping idle
 * for 2 h 4 min at least (RFC 5382 REQ-5); home routers and carrier NATs seen in practice hold it for minutes
 * to hours, and a node that moves reconnects at once (network-watch.ts). 2.5 intervals tolerate one lost ping.
 */
export const PING_INTERVAL_MS = 120_000;
export const STREAM_IDLE_MS = 300_000;

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

/** A change to a peer already in the map: only the fields that changed. In a patch, userCertPem "" means: nobody is logged in on the node any more. */
export type PeerPatch = Pick<MapPeer, "name"> & Partial<Pick<MapPeer, "endpoints" | "homeRelay" | "online" | "lastSeen" | "certPem" | "services" | "overlayIp" | "userCertPem">>;

/** userCertPem: the person logged in on this node (in a delta, "" = logged out). */
export interface MapSelf { name: string; tenant: string; groups: string[]; overlayIp?: string; userCertPem?: string }

export interface FullFrame {
  v: number; t: "full"; seq: number; epoch: string;
  self: MapSelf; peers: MapPeer[]; rules: unknown; relays: MapRelay[]; revocation?: string;
  /** Nodes with role edge only: their publications (edge.ts), checked by the client. */
  edge?: EdgeView;
}
export interface DeltaFrame {
  v: number; t: "delta"; seq: number;
  upsert?: MapPeer[]; patch?: PeerPatch[]; remove?: string[]; rules?: unknown; relays?: MapRelay[]; revocation?: string;
  self?: Pick<MapSelf, "userCertPem">;
  edge?: EdgeView;
}
export interface PingFrame { v: number; t: "ping" }
/**
 * A frame of a kind this decoder does not know (a newer server's, protocol 2 on): handed on as this, so the client
 * counts it and logs it with the server's version instead of dropping the stream. The server sends such kinds
 * only to nodes whose protocol has them (src/wire/protocol.ts).
 */
export interface UnknownFrame { v: number; t: "unknown"; kind: string }
export type MapFrame = FullFrame | DeltaFrame | PingFrame;
/** What the decoder yields: a frame, or a frame of a kind it does not know. */
export type DecodedFrame = MapFrame | UnknownFrame;

const packr = new Packr({ useRecords: false, moreTypes: false });

/**
 * A frame's buffer, off Node's 8 KB Buffer pool: frames are written and dropped, and pool slices interleaved with
 * them (every TLS socket's ALPN copy, the hub's encoded peers) kept whole 8 KB slabs alive, ~3 KB a connected node.
 */
export const frameBuffer = (bytes: number): Buffer => Buffer.allocUnsafeSlow(bytes);

export function encodeFrame(frame: MapFrame): Buffer {
  const body = packr.pack(frame);
  const out = frameBuffer(FRAME_HEADER_BYTES + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, FRAME_HEADER_BYTES);
  return out;
}

/** What a delta says, without its envelope (v, t, seq). */
export type DeltaBody = Omit<DeltaFrame, "v" | "t" | "seq">;

/**
 * A delta's msgpack entries, encoded once for every stream it goes to: its frames differ only in seq. The server's
 * resume logs hold these shared bytes instead of a copy per stream (2,000 streams held 51k copies, 4.8 MB).
 * Immutable once made: the bytes are a copy, never the encoder's reused buffer.
 */
export interface EncodedDelta { readonly entries: Buffer; readonly count: number }

export function encodeDelta(delta: DeltaBody): EncodedDelta {
  const packed = packr.pack(delta);
  const head = mapHeader(packed);
  return { entries: Buffer.from(packed.subarray(head.bytes)), count: head.count };
}

/** "v": 1, "t": "delta", "seq": the keys encodeFrame writes first in a delta, in its order. */
const DELTA_PREFIX = Buffer.concat([packr.pack("v"), packr.pack(MAP_PROTOCOL_VERSION), packr.pack("t"), packr.pack("delta"), packr.pack("seq")].map((b) => Buffer.from(b)));
const DELTA_PREFIX_KEYS = 3;
/** msgpackr writes every map's header as map16 (it sets the count after the entries): so does deltaFrame. */
const MAP16_HEADER_BYTES = 3;

/** The bytes of deltaFrame(d, seq) without making them (the resume log's byte budget). */
export function deltaFrameLength(d: EncodedDelta, seq: number): number {
  return FRAME_HEADER_BYTES + MAP16_HEADER_BYTES + DELTA_PREFIX.length + packr.pack(seq).length + d.entries.length;
}

/** The frame encodeFrame({ v, t: "delta", seq, ...delta }) makes, byte for byte, from the delta's shared encoding. */
export function deltaFrame(d: EncodedDelta, seq: number): Buffer {
  const seqBytes = packr.pack(seq); // the encoder's buffer: copied below before anything else is packed
  const size = MAP16_HEADER_BYTES + DELTA_PREFIX.length + seqBytes.length + d.entries.length;
  const out = frameBuffer(FRAME_HEADER_BYTES + size);
  out.writeUInt32BE(size, 0);
  out[FRAME_HEADER_BYTES] = 0xde;
  out.writeUInt16BE(d.count + DELTA_PREFIX_KEYS, FRAME_HEADER_BYTES + 1);
  let at = FRAME_HEADER_BYTES + MAP16_HEADER_BYTES;
  at += DELTA_PREFIX.copy(out, at);
  out.set(seqBytes, at);
  at += seqBytes.length;
  d.entries.copy(out, at);
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
  const out = frameBuffer(FRAME_HEADER_BYTES + size);
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

/** A frame kind is a short word; anything longer is junk, not a newer kind. */
const MAX_KIND_CHARS = 32;

/** Incremental frame reader: push stream chunks, get decoded frames; throws FrameError on junk. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): DecodedFrame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: DecodedFrame[] = [];
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

export function decodeFrameBody(body: Buffer): DecodedFrame {
  let f: unknown;
  try { f = packr.unpack(body); } catch (err) { throw new FrameError(`frame is not msgpack: ${(err as Error).message}`); }
  if (f === null || typeof f !== "object" || Array.isArray(f)) throw new FrameError("frame is not a map");
  const o = f as Record<string, unknown>;
  if (o.v !== MAP_PROTOCOL_VERSION) throw new FrameError(`unsupported frame version ${String(o.v)}`);
  if (o.t === "ping") return o as unknown as PingFrame;
  if (o.t !== "full" && o.t !== "delta") {
    if (typeof o.t === "string" && o.t.length > 0 && o.t.length <= MAX_KIND_CHARS) return { v: o.v as number, t: "unknown", kind: o.t };
    throw new FrameError(`frame type ${typeof o.t === "string" ? `of ${o.t.length} characters` : String(o.t)} is not a frame kind`);
  }
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

function checkOverlayIp(x: unknown): void {
  if (x !== undefined && (typeof x !== "string" || !OVERLAY_IP_PATTERN.test(x))) throw new FrameError("overlayIp is not an IPv4 address");
}

function checkFrameServices(x: unknown): void {
  try { checkServices(x); } catch (err) { throw new FrameError(`peer services: ${(err as Error).message}`); }
}
