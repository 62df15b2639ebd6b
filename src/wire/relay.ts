// Relay frames: the node <-> relay TLS stream (relay/ and src/nat/relay-client.ts share everything here).
//
// Each frame on the stream:
//   0..1          2      3          4 .. 4+N-1        4+N ..
//   length (u16)  type   N (u8)     name (N bytes)    payload
//   length = bytes after the length field (type + N + name + payload), BIG-endian (network order on TCP).
// Names are identity names (lowercase DNS label, ASCII); the payload is opaque: an EmberNet datagram
// (handshake or DATA, already end-to-end encrypted) that the relay forwards unchanged and never parses.
// Binary and fixed, like the UDP data path: this is the relay's per-packet path, so no msgpack here.
//
// Versions: the protocol (src/wire/protocol.ts) is negotiated by TLS ALPN, "ember-relay/N": a node offers every
// version from its own down to the oldest it works with, the relay picks the highest it speaks. Release 0.1.0
// offers and accepts no ALPN at all: no ALPN means protocol 1. A frame type the reader does not know comes out
// as an unknown frame (RelayFrame.known false), which both ends count, log and skip (protocol 1 closed on it).
import { OLDEST_COMPATIBLE_PROTOCOL, PROTOCOL_VERSION, UNANNOUNCED_PROTOCOL } from "./protocol.js";

export const RELAY_FRAME = {
  /** node -> relay: deliver payload to the identity `name`. */
  SEND: 0x01,
  /** relay -> node: payload from the identity `name` (taken from the sender's verified certificate). */
  RECV: 0x02,
  /** relay -> node: `name` is not connected to this relay (or revoked); the SEND was dropped. */
  UNKNOWN_PEER: 0x03,
  /** relay -> node: `name`, which this node sent to recently, disconnected. */
  PEER_GONE: 0x04,
  /** relay -> node: name = machine-readable reason code, payload = UTF-8 detail; the relay then closes. */
  ERROR: 0x05,
  /** either direction: keepalive; the receiver answers PONG echoing the payload. */
  PING: 0x06,
  PONG: 0x07,
  /** relay -> node, first frame after the relay verified the node's certificate: name = the node's identity. */
  WELCOME: 0x08,
} as const;
export type RelayFrameType = (typeof RELAY_FRAME)[keyof typeof RELAY_FRAME];
const FRAME_NAMES = new Map<number, string>(Object.entries(RELAY_FRAME).map(([k, v]) => [v, k]));

const ALPN_PREFIX = "ember-relay/";

/** What a node offers and a relay accepts as ALPN: this protocol down to the oldest compatible, none below 2. */
export function relayAlpnProtocols(): string[] {
  const out: string[] = [];
  for (let p = PROTOCOL_VERSION; p >= Math.max(2, OLDEST_COMPATIBLE_PROTOCOL); p--) out.push(`${ALPN_PREFIX}${p}`);
  return out;
}

/**
 * From this protocol on, the relay's idle PING needs no answer: the node's TCP acknowledgement of it is enough
 * for the NAT, and a connection whose node vanished is closed by TCP itself (the unacknowledged ping is
 * retransmitted until the kernel gives up, ~15 minutes with Linux's tcp_retries2 = 15). A PONG cost a resting
 * node a second packet every idle period: its kernel acknowledges the ping at once after a rest, before the
 * daemon's answer (issue 26). The node still hears the relay's ping, which is how it finds a dead relay at rest.
 * Protocol 1 (release 0.1.0) answers, and the relay closes a protocol-1 connection that does not.
 */
export const QUIET_IDLE_PING_PROTOCOL = 2;

export function idlePingWantsAnswer(protocol: number): boolean {
  return protocol < QUIET_IDLE_PING_PROTOCOL;
}

/** The protocol a relay connection negotiated (TLSSocket.alpnProtocol): none means the other side is release 0.1.0. */
export function relayProtocolOf(alpn: string | false | null | undefined): number {
  if (typeof alpn !== "string" || !alpn.startsWith(ALPN_PREFIX)) return UNANNOUNCED_PROTOCOL;
  const n = Number(alpn.slice(ALPN_PREFIX.length));
  return Number.isInteger(n) && n >= 1 ? n : UNANNOUNCED_PROTOCOL;
}

export const RELAY_LENGTH_BYTES = 2;
export const RELAY_FIXED_HEADER = 2;
export const MAX_RELAY_NAME = 63;
/** An EmberNet datagram is at most 1472 bytes (MAX_DATAGRAM); leave room for a future larger MTU, no more. */
export const MAX_RELAY_PAYLOAD = 2048;
export const MAX_RELAY_FRAME = RELAY_FIXED_HEADER + MAX_RELAY_NAME + MAX_RELAY_PAYLOAD;
export const MAX_PING_PAYLOAD = 32;
export const MAX_ERROR_DETAIL = 512;

/** Identity names and reason codes on the relay stream (same shape as PKI identity names). */
export const RELAY_NAME_PATTERN = /^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$/;
/** RELAY_NAME_PATTERN in words, for refusals. */
const NAME_RULE = "(lowercase letters, digits, '-' and '_'; starts and ends with a letter or digit)";

/** Reason codes sent in ERROR frames and logged. */
export const RELAY_ERROR = {
  FRAME_TOO_LARGE: "frame_too_large",
  BAD_FRAME: "bad_frame",
  UNEXPECTED_FRAME: "unexpected_frame",
  REPLACED: "replaced",
  IDLE: "idle",
  SHUTDOWN: "shutdown",
  TOO_MANY_CONNECTIONS: "too_many_connections",
  // Certificate reasons are the PKI verifier's (expired, revoked, unknown_ca, ...), plus:
  NOT_A_RELAY: "not_a_relay",
} as const;

/** The certificate role a relay's leaf must carry; nodes refuse a relay without it. */
export const RELAY_ROLE = "relay";
export const RELAY_DEFAULT_PORT = 443;
export const STUN_DEFAULT_PORT = 3478;

/** Relay limits; each is a flag of `ember relay`. */
export const RELAY_DEFAULTS = {
  /** Per-node token bucket over SEND payload bytes. */
  rateBytesPerSec: 4 * 1024 * 1024,
  burstBytes: 512 * 1024,
  /** A destination whose TLS write buffer holds more than this gets no more frames until it drains. */
  queueBytes: 256 * 1024,
  /** Every TCP connection counts, from accept to close, authenticated or not (clamped below `ulimit -n`). */
  maxConnections: 10_000,
  /** Connections whose TLS handshake and certificate check are not done yet: a budget of their own, oldest evicted first. */
  maxPending: 1_024,
  /** Unauthenticated connections from one source address (IPv6: one /64). */
  maxPendingPerSource: 16,
  /**
   * A connection silent this long gets a PING from the relay (a protocol-1 node silent as long again after it is
   * closed; QUIET_IDLE_PING_PROTOCOL). Nodes ping every RELAY_CLIENT.pingIntervalMs only while they pass traffic,
   * so at rest the relay's ping is the one keepalive of the connection, every two minutes as the coordination
   * stream's (PING_INTERVAL_MS in wire/coord/map.ts says why that is safe through NATs; docs/relay.md).
   */
  idleTimeoutMs: 120_000,
  /** TLS handshake + certificate check must finish within this, counted from accept; then the socket is destroyed. */
  handshakeTimeoutMs: 10_000,
  /** Revocation list poll interval from the coordination server. */
  revocationPollMs: 3_000,
  /** Re-verify every connected certificate this often (expiry while connected). */
  reverifyMs: 30_000,
  /** STUN answers per second, all sources together (CPU bound, no amplification: answer ~ request size). */
  stunPerSec: 20_000,
  /**
   * STUN answers per second to one source address (IPv6: one /64), and its burst: one flooding (or spoofed)
   * source can neither take the whole answer budget nor have the relay reflect more than this at a victim.
   * Generous for a NAT with many nodes behind it (each asks a few times a minute).
   */
  stunPerSourcePerSec: 200,
  stunPerSourceBurst: 100,
  /** The UDP receive buffer asked for (the kernel caps it at net.core.rmem_max): room for bursts of junk. */
  stunRecvBufferBytes: 4 * 1024 * 1024,
} as const;

/** Client side: keepalive interval, dead-relay timeout, reconnect backoff, local send buffer. */
export const RELAY_CLIENT = {
  /** Ping interval while the connection carries datagrams (and once at every wake-up from rest). */
  pingIntervalMs: 10_000,
  /** Active: nothing received for this long means the relay is gone. */
  deadAfterMs: 30_000,
  /** The connection is active while a datagram went either way within this (the session layer's idle bound). */
  activeForMs: 45_000,
  /** At rest the relay pings after RELAY_DEFAULTS.idleTimeoutMs of silence: nothing for 2.5 times that is dead. */
  restDeadAfterMs: 300_000,
  backoffMinMs: 250,
  backoffMaxMs: 30_000,
  maxQueueBytes: 256 * 1024,
  connectTimeoutMs: 10_000,
} as const;

/** How many senders a destination remembers, to tell them PEER_GONE when it leaves. */
export const PEER_GONE_MEMORY = 256;

export interface RelayFrame {
  /** One of RELAY_FRAME, unless `known` is false: then a newer party's type, with the name and payload unchecked. */
  type: RelayFrameType;
  known: boolean;
  name: string;
  /** A view into the read buffer: copy it if you keep it past the current event. */
  payload: Buffer;
}

export class RelayFrameError extends Error {
  constructor(readonly code: "frame_too_large" | "bad_frame", message: string) { super(message); }
}

export function relayFrameName(type: number): string {
  return FRAME_NAMES.get(type) ?? `0x${type.toString(16).padStart(2, "0")}`;
}

/** Encodes one frame; throws RelayFrameError on a name or payload outside the limits. */
export function encodeRelayFrame(type: RelayFrameType, name: string, payload: Uint8Array = EMPTY): Buffer {
  if (name.length > MAX_RELAY_NAME) throw new RelayFrameError("bad_frame", `invalid name: ${name.length} characters exceed the ${MAX_RELAY_NAME}-character limit of an identity name`);
  if (name.length > 0 && !RELAY_NAME_PATTERN.test(name)) throw new RelayFrameError("bad_frame", `invalid name "${name.replace(/[^\x20-\x7e]/g, "?")}": not an identity name ${NAME_RULE}`);
  if (payload.length > MAX_RELAY_PAYLOAD) throw new RelayFrameError("frame_too_large", `payload of ${payload.length} bytes exceeds the ${MAX_RELAY_PAYLOAD}-byte payload limit`);
  const body = RELAY_FIXED_HEADER + name.length + payload.length;
  const out = Buffer.allocUnsafe(RELAY_LENGTH_BYTES + body);
  out.writeUInt16BE(body, 0);
  out[2] = type;
  out[3] = name.length;
  out.write(name, 4, "latin1");
  out.set(payload, 4 + name.length);
  return out;
}

/** An ERROR frame; the detail is cut to MAX_ERROR_DETAIL bytes. */
export function encodeRelayError(code: string, detail: string): Buffer {
  const safe = RELAY_NAME_PATTERN.test(code) ? code : "error";
  return encodeRelayFrame(RELAY_FRAME.ERROR, safe, Buffer.from(detail, "utf8").subarray(0, MAX_ERROR_DETAIL));
}

const EMPTY = new Uint8Array(0);

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? "" : "s"}`;
}
const NAMED = new Set<number>([RELAY_FRAME.SEND, RELAY_FRAME.RECV, RELAY_FRAME.UNKNOWN_PEER, RELAY_FRAME.PEER_GONE, RELAY_FRAME.ERROR, RELAY_FRAME.WELCOME]);

/**
 * Incremental reader for a TLS stream: push() chunks, then next() until it returns undefined.
 * Throws RelayFrameError on the first bad frame; the stream is then unusable (close the connection).
 * Buffered bytes never exceed one maximal frame plus the last chunk.
 */
export class RelayFrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private off = 0;

  push(chunk: Buffer): void {
    const rest = this.buf.length - this.off;
    this.buf = rest === 0 ? chunk : Buffer.concat([this.buf.subarray(this.off), chunk]);
    this.off = 0;
  }

  next(): RelayFrame | undefined {
    const avail = this.buf.length - this.off;
    if (avail < RELAY_LENGTH_BYTES) return undefined;
    const len = this.buf.readUInt16BE(this.off);
    // Check the length before waiting for the body, so an oversized frame is refused at once. Each refusal
    // names the rule that was broken (the first one, in the order of the fields).
    if (len > MAX_RELAY_FRAME) {
      throw new RelayFrameError("frame_too_large", `frame length ${len} exceeds the ${MAX_RELAY_FRAME}-byte maximum (type, name length, a ${MAX_RELAY_NAME}-byte name and a ${MAX_RELAY_PAYLOAD}-byte payload)`);
    }
    if (len < RELAY_FIXED_HEADER) throw new RelayFrameError("bad_frame", `frame length ${len} is below the ${RELAY_FIXED_HEADER}-byte minimum (type and name length)`);
    if (avail < RELAY_LENGTH_BYTES + len) return undefined;
    const start = this.off + RELAY_LENGTH_BYTES;
    this.off = start + len;
    const type = this.buf[start];
    const nameLen = this.buf[start + 1];
    const typeName = relayFrameName(type);
    // A newer party's frame type: its layout beyond the header is its own, so nothing more is checked here.
    if (!FRAME_NAMES.has(type)) return { type: type as RelayFrameType, known: false, name: "", payload: this.buf.subarray(start + 2, start + len) };
    if (!NAMED.has(type) && nameLen !== 0) throw new RelayFrameError("bad_frame", `${typeName} frames carry no name (got ${plural(nameLen, "byte")})`);
    if (nameLen > MAX_RELAY_NAME) throw new RelayFrameError("bad_frame", `${typeName} name of ${nameLen} bytes exceeds the ${MAX_RELAY_NAME}-character limit of an identity name`);
    if (RELAY_FIXED_HEADER + nameLen > len) throw new RelayFrameError("bad_frame", `name length ${nameLen} runs past the end of the ${len}-byte frame`);
    const name = this.buf.toString("latin1", start + 2, start + 2 + nameLen);
    if (NAMED.has(type) && nameLen === 0) throw new RelayFrameError("bad_frame", `${typeName} frame without a name`);
    if (NAMED.has(type) && !RELAY_NAME_PATTERN.test(name)) {
      throw new RelayFrameError("bad_frame", `${typeName} frame names "${name.replace(/[^\x20-\x7e]/g, "?")}", which is not an identity name ${NAME_RULE}`);
    }
    const payload = this.buf.subarray(start + 2 + nameLen, start + len);
    if ((type === RELAY_FRAME.PING || type === RELAY_FRAME.PONG) && payload.length > MAX_PING_PAYLOAD) {
      throw new RelayFrameError("bad_frame", `${typeName} payload of ${payload.length} bytes exceeds the ${MAX_PING_PAYLOAD}-byte keepalive limit`);
    }
    if (payload.length > MAX_RELAY_PAYLOAD) {
      throw new RelayFrameError("frame_too_large", `${typeName} payload of ${payload.length} bytes exceeds the ${MAX_RELAY_PAYLOAD}-byte payload limit`);
    }
    return { type: type as RelayFrameType, known: true, name, payload };
  }

  /** Bytes received but not yet returned as frames. */
  get pending(): number {
    return this.buf.length - this.off;
  }
}
