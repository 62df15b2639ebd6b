// The node's connection to its home relay: ONE outbound TLS 1.3 connection, the node authenticated by its
// client certificate, the relay by its certificate (PKI verifier, role "relay", name if configured). Sends
// and receives opaque EmberNet datagrams addressed by identity name; reconnects with backoff until stop().
// Nothing is queued while disconnected or back-pressured: send() returns false and the caller's own
// retransmission (handshake retry, stream layer) takes over, as on a lossy UDP path.
import { EventEmitter } from "node:events";
import { connect, type TLSSocket } from "node:tls";
import { isIP } from "node:net";
import { verifyTlsPeer, type Verifier } from "../pki/index.js";
import { repeat, type RestClock } from "../clock/rest-clock.js";
import {
  encodeRelayFrame, MAX_RELAY_PAYLOAD, RELAY_CLIENT, RELAY_ERROR, RELAY_FRAME, RELAY_NAME_PATTERN, RELAY_ROLE,
  RelayFrameError, RelayFrameReader, idlePingWantsAnswer, relayAlpnProtocols, relayFrameName, relayProtocolOf, type RelayFrame,
} from "../wire/relay.js";
import { describeVersion, UNANNOUNCED_PROTOCOL } from "../wire/protocol.js";
import { UnknownTally } from "../wire/unknown.js";

export interface RelayClientOptions {
  host: string;
  port: number;
  /** Expected identity name of the relay (from the peer map); any relay-role certificate when omitted. */
  name?: string;
  certChainPem: string;
  keyPem: string;
  bundlePem: string;
  verifier: Verifier;
  log?: (msg: string, f?: object) => void;
  /** Overrides of RELAY_CLIENT timing and the local send-buffer bound (tests). */
  pingIntervalMs?: number;
  deadAfterMs?: number;
  activeForMs?: number;
  restDeadAfterMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  maxQueueBytes?: number;
  /** The node's rest clock: the keepalive check runs on its beat, with the node's other periodic work. */
  restClock?: RestClock;
  /** Local address to connect from (default: the kernel's choice); tests place clients on 127.0.0.x. */
  localAddress?: string;
}

export interface RelayClientStats {
  /** send() refusals: not connected, back-pressured, or invalid name/size (ember status shows them per relay). */
  sendRefused: number;
  connects: number;
  /** Every frame on the connection, keepalives included, and the frame bytes (before TLS): the node's traffic. */
  wireFramesOut: number;
  wireBytesOut: number;
  wireFramesIn: number;
  wireBytesIn: number;
}

/**
 * Events: "connected" (relayName: string), "disconnected" (reason: string), "packet" (fromName, payload: Buffer),
 * "unknown-peer" (name), "peer-gone" (name), "rtt" (ms: after each keepalive PONG; the first one follows
 * "connected" by one round trip, which is when home-relay choice by latency can run), "connect-failed" (reason: a connection attempt that never got WELCOME,
 * e.g. "revoked: ..." when the relay refused our certificate; the client keeps retrying with backoff).
 */
export class RelayClient extends EventEmitter {
  readonly stats: RelayClientStats = {
    sendRefused: 0, connects: 0, wireFramesOut: 0, wireBytesOut: 0, wireFramesIn: 0, wireBytesIn: 0,
  };
  /** The relay's identity name, known once connected. */
  relayName?: string;
  /** The protocol the connection negotiated (ALPN; 1 with a relay of release 0.1.0). */
  relayProtocol = UNANNOUNCED_PROTOCOL;
  /** Frame types this node does not know (a newer relay's), by type. */
  readonly unknownFrames = new UnknownTally();
  /** The reason the last connection ended, e.g. "revoked: serial ... is on revocation list #2". */
  lastError?: string;
  private socket?: TLSSocket;
  private welcomed = false;
  /** A "drain" listener is on the current socket (one at a time). */
  private drainWaiting = false;
  private stopped = true;
  private attempt = 0;
  private retryTimer?: NodeJS.Timeout;
  private stopPings?: () => void;
  private lastRx = 0;
  private connectedAt = 0;
  /** Last datagram sent or received through the relay: the connection is active within activeForMs of it. */
  private lastDataAt = 0;
  /** When the connection last became active after a rest (silence before it is not a dead relay). */
  private activeSince = 0;
  /** Set by reconnectNow until the next connection is welcomed or fails. */
  private renewing = false;
  /** The next connection attempt goes at once (reconnectNow), once. */
  private atOnce = false;
  private pingSentAt?: bigint;
  private rtt?: number;
  private readonly log: (msg: string, f?: object) => void;

  constructor(private readonly opts: RelayClientOptions) {
    super();
    this.log = opts.log ?? (() => {});
  }

  get connected(): boolean {
    return this.welcomed && !!this.socket && !this.socket.destroyed;
  }

  get rttMs(): number | undefined {
    return this.rtt;
  }

  /** Started and not stopped: connected, connecting, or waiting to reconnect. */
  get running(): boolean {
    return !this.stopped;
  }

  /** Milliseconds since the last datagram either way, or since the connection came up if later (undefined: not connected). */
  get idleMs(): number | undefined {
    return this.connected ? Date.now() - Math.max(this.lastDataAt, this.connectedAt) : undefined;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.stopPings?.();
    const s = this.socket;
    if (!s || s.destroyed) return;
    await new Promise<void>((resolve) => {
      s.once("close", () => resolve());
      s.end();
      setTimeout(() => s.destroy(), 1_000).unref();
    });
  }

  /** A connection is being replaced on purpose (reconnectNow): not a relay that died. */
  get reconnecting(): boolean {
    return this.renewing;
  }

  /**
   * Our network changed under the connection (an address gone, a link down, a wake-up): its TCP state is of the
   * old network, and after an outage its retransmission timer may wait seconds more. A new connection now, no
   * backoff; the relay replaces the old one (a newer connection of the same identity wins).
   */
  reconnectNow(why: string): void {
    if (this.stopped) return;
    this.renewing = true;
    this.atOnce = true;
    this.attempt = 0;
    clearTimeout(this.retryTimer);
    const s = this.socket;
    if (s && !s.destroyed) return void s.destroy(new Error(why));
    this.atOnce = false;
    this.connect();
  }

  /**
   * Whether send() would take another datagram now: connected, and the local TLS buffer under its bound.
   * After a false on a full buffer, "drain" is emitted once it has emptied ("connected" after a reconnect).
   */
  writable(): boolean {
    const s = this.socket;
    if (!this.welcomed || !s || s.destroyed) return false;
    if (s.writableLength <= (this.opts.maxQueueBytes ?? RELAY_CLIENT.maxQueueBytes)) return true;
    if (!this.drainWaiting) {
      this.drainWaiting = true;
      s.once("drain", () => { this.drainWaiting = false; this.emit("drain"); });
    }
    return false;
  }

  /** Queues one datagram for peerName; false (dropped) if not connected, back-pressured, or invalid. */
  send(peerName: string, payload: Uint8Array): boolean {
    const s = this.socket;
    if (!this.writable() || payload.length > MAX_RELAY_PAYLOAD || !RELAY_NAME_PATTERN.test(peerName)) {
      this.stats.sendRefused++;
      return false;
    }
    this.noteData(true);
    this.write(s!, encodeRelayFrame(RELAY_FRAME.SEND, peerName, payload));
    return true;
  }

  // ---- connection life cycle -------------------------------------------------------------------------

  private connect(): void {
    if (this.stopped) return;
    this.attempt++;
    const { host, port } = this.opts;
    const socket = connect({
      host, port, cert: this.opts.certChainPem, key: this.opts.keyPem, ca: this.opts.bundlePem,
      minVersion: "TLSv1.3", rejectUnauthorized: false, // the PKI verifier judges the relay below
      ALPNProtocols: relayAlpnProtocols(), // the protocol versions we speak (src/wire/relay.ts "Versions")
      ...(isIP(host) ? {} : { servername: host }),
      ...(this.opts.localAddress ? { localAddress: this.opts.localAddress } : {}),
      timeout: RELAY_CLIENT.connectTimeoutMs,
    });
    this.socket = socket;
    this.welcomed = false;
    this.drainWaiting = false;
    const reader = new RelayFrameReader();
    let reason = "connection closed";
    const fail = (r: string) => { reason = r; socket.destroy(); };

    socket.on("timeout", () => fail(this.welcomed ? "relay connection timed out" : `no answer from relay ${host}:${port} within ${RELAY_CLIENT.connectTimeoutMs} ms`));
    socket.on("error", (err) => { reason = err.message; });
    socket.once("secureConnect", () => {
      const v = verifyTlsPeer(socket, this.opts.verifier, { usage: "server" });
      if (!v.ok) return fail(`relay certificate refused (${v.reason}): ${v.detail}`);
      if (!v.identity.roles.includes(RELAY_ROLE)) return fail(`${RELAY_ERROR.NOT_A_RELAY}: "${v.identity.name}" is a mesh identity without role "${RELAY_ROLE}"`);
      if (this.opts.name && v.identity.name !== this.opts.name) return fail(`${RELAY_ERROR.NOT_A_RELAY}: expected relay "${this.opts.name}", the certificate names "${v.identity.name}"`);
      this.relayName = v.identity.name;
      this.relayProtocol = relayProtocolOf(socket.alpnProtocol);
      socket.setNoDelay(true);
      socket.setTimeout(0);
      this.lastRx = Date.now();
    });
    socket.on("data", (chunk: Buffer) => {
      this.lastRx = Date.now();
      this.stats.wireBytesIn += chunk.length;
      reader.push(chunk);
      try {
        for (let f = reader.next(); f; f = reader.next()) this.onFrame(f, fail);
      } catch (err) {
        if (!(err instanceof RelayFrameError)) throw err;
        fail(`relay sent a bad frame (${err.code}): ${err.message}`);
      }
    });
    socket.on("close", () => {
      // Superseded: stop() and start() again before this socket finished closing (a relay reopened on demand).
      if (this.socket !== socket) return;
      this.stopPings?.();
      const wasUp = this.welcomed;
      this.welcomed = false;
      this.socket = undefined;
      this.lastError = reason;
      this.log("relay disconnected", { relay: `${host}:${port}`, reason });
      this.emit(wasUp ? "disconnected" : "connect-failed", reason);
      if (!wasUp) this.renewing = false;
      this.scheduleReconnect();
    });
  }

  private onFrame(f: RelayFrame, fail: (r: string) => void): void {
    this.stats.wireFramesIn++;
    if (!f.known) {
      const n = this.unknownFrames.note(this.relayName ?? "?", relayFrameName(f.type), Date.now());
      if (n.log) this.log("relay sent a frame type this node does not know: skipped", { relay: this.relayName, frame: relayFrameName(f.type), count: n.count, relayVersion: describeVersion(this.relayProtocol) });
      return;
    }
    switch (f.type) {
      case RELAY_FRAME.WELCOME:
        this.welcomed = true;
        this.renewing = false;
        this.connectedAt = Date.now();
        this.attempt = 0;
        this.stats.connects++;
        this.lastError = undefined;
        this.startPings();
        this.log("relay connected", { relay: this.relayName, as: f.name });
        this.emit("connected", this.relayName);
        return;
      case RELAY_FRAME.RECV:
        if (!this.welcomed) return fail("relay sent data before WELCOME");
        this.noteData(false);
        // Copy: the frame is a view into the reader's buffer, and listeners may keep it.
        this.emit("packet", f.name, Buffer.from(f.payload));
        return;
      case RELAY_FRAME.UNKNOWN_PEER: this.emit("unknown-peer", f.name); return;
      case RELAY_FRAME.PEER_GONE: this.emit("peer-gone", f.name); return;
      case RELAY_FRAME.PING:
        // The relay pings only a silent connection; from protocol 2 on our TCP acknowledgement answers it.
        if (this.socket && idlePingWantsAnswer(this.relayProtocol)) this.write(this.socket, encodeRelayFrame(RELAY_FRAME.PONG, "", f.payload));
        return;
      case RELAY_FRAME.PONG:
        if (this.pingSentAt !== undefined && f.payload.length === 8 && f.payload.readBigUInt64BE(0) === this.pingSentAt) {
          this.rtt = Number(process.hrtime.bigint() - this.pingSentAt) / 1e6;
          this.pingSentAt = undefined;
          this.emit("rtt", this.rtt);
        }
        return;
      case RELAY_FRAME.ERROR:
        return fail(`${f.name}: ${f.payload.toString("utf8")}`);
      default:
        return fail(`relay sent an unexpected ${relayFrameName(f.type)} frame`);
    }
  }

  /** Whether datagrams went through this connection recently (RELAY_CLIENT.activeForMs). */
  get active(): boolean {
    return Date.now() - this.lastDataAt < (this.opts.activeForMs ?? RELAY_CLIENT.activeForMs);
  }

  /** A datagram went through: after a rest, ping at once (the connection is checked when it is needed again). */
  private noteData(sending: boolean): void {
    const now = Date.now();
    const wasActive = this.active;
    this.lastDataAt = now;
    if (wasActive) return;
    this.activeSince = now;
    if (sending) this.ping();
  }

  private ping(): void {
    const s = this.socket;
    if (!s || s.destroyed || !this.welcomed) return;
    this.pingSentAt = process.hrtime.bigint();
    const p = Buffer.allocUnsafe(8);
    p.writeBigUInt64BE(this.pingSentAt, 0);
    this.write(s, encodeRelayFrame(RELAY_FRAME.PING, "", p));
  }

  private write(s: TLSSocket, frame: Buffer): void {
    this.stats.wireFramesOut++;
    this.stats.wireBytesOut += frame.length;
    s.write(frame);
  }

  /**
   * Keepalive: while active, a ping every pingIntervalMs and a dead relay found within deadAfterMs; at rest no
   * ping from us (the relay pings a connection silent for its idle timeout, and we answer), and a relay silent
   * for restDeadAfterMs is dead. One ping at connect measures the round trip for the home-relay choice.
   */
  private startPings(): void {
    this.stopPings?.();
    const interval = this.opts.pingIntervalMs ?? RELAY_CLIENT.pingIntervalMs;
    const check = () => {
      const s = this.socket;
      if (!s || s.destroyed) return;
      const active = this.active;
      const deadAfter = active ? this.opts.deadAfterMs ?? RELAY_CLIENT.deadAfterMs : this.opts.restDeadAfterMs ?? RELAY_CLIENT.restDeadAfterMs;
      const silentMs = Date.now() - Math.max(this.lastRx, active ? this.activeSince : 0);
      if (silentMs > deadAfter) { s.destroy(new Error(`relay silent for ${deadAfter} ms`)); return; }
      if (active) this.ping();
    };
    this.ping();
    this.stopPings = repeat(this.opts.restClock, interval, check);
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const min = this.opts.backoffMinMs ?? RELAY_CLIENT.backoffMinMs;
    const max = this.opts.backoffMaxMs ?? RELAY_CLIENT.backoffMaxMs;
    const base = Math.min(max, min * 2 ** Math.min(this.attempt, 16));
    // Jitter: a relay restart is not met by a thundering herd. A reconnect on purpose goes at once.
    const delay = this.atOnce ? 0 : base / 2 + Math.random() * (base / 2);
    this.atOnce = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}
