// The relay server: nodes hold one outbound TLS 1.3 connection, authenticated by their client certificate
// (the PKI verifier decides, before any frame is read). Frames are addressed by identity name; the sender's
// name comes from its verified certificate, never from the frame. Payloads are opaque ciphertext: the relay
// holds no session keys and forwards the bytes unchanged. Per-node rate limit, per-destination queue
// limit, frame size limit; revoked or expired identities are disconnected and refused.
import { createServer, type Server, type TLSSocket } from "node:tls";
import type { Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { tlsContextOptions, verifyTlsPeer, type TlsCredentials, type Verifier } from "../src/pki/index.js";
import { ConnectionGuard, DropLog } from "../src/net/conn-guard.js";
import {
  encodeRelayError, encodeRelayFrame, RELAY_DEFAULTS, RELAY_ERROR, RELAY_FRAME, RELAY_ROLE, RelayFrameError,
  idlePingWantsAnswer, relayAlpnProtocols, relayFrameName, relayProtocolOf, type RelayFrame,
} from "../src/wire/relay.js";
import { describeVersion } from "../src/wire/protocol.js";
import { UnknownTally } from "../src/wire/unknown.js";
import { NodeConnection } from "./connection.js";
import { RelayCounters, startMetricsServer } from "./metrics.js";
import { RevocationSource } from "./revocation-source.js";
import { StunResponder } from "./stun-server.js";
import { bindAnyFamily } from "../src/net/any-address.js";
import { TokenBucket } from "./token-bucket.js";

/** The payload of the relay's own keepalive PING to a silent node (nodes echo it; the relay ignores PONGs). */
const IDLE_PING = Buffer.alloc(8);

export type { HostPort } from "./options.js";
import type { HostPort } from "./options.js";

export interface RelayLimits {
  rateBytesPerSec: number;
  burstBytes: number;
  queueBytes: number;
  maxConnections: number;
  maxPending: number;
  maxPendingPerSource: number;
  idleTimeoutMs: number;
  handshakeTimeoutMs: number;
  revocationPollMs: number;
  reverifyMs: number;
  stunPerSec: number;
  stunPerSourcePerSec: number;
  stunPerSourceBurst: number;
  stunRecvBufferBytes: number;
}

export interface RelayServerOptions {
  listen: HostPort;
  /** STUN over UDP; omit to run without. */
  stun?: HostPort;
  /** Plain-HTTP /status and /metrics; omit to run without. */
  metrics?: HostPort;
  /** Must equal the relay certificate's identity name when given. */
  name?: string;
  creds: TlsCredentials;
  verifier: Verifier;
  log: Logger;
  limits?: Partial<RelayLimits>;
  revocationFile?: string;
  coordUrl?: string;
}

export interface RelayAddresses {
  name: string;
  listen: { address: string; port: number };
  stun?: { address: string; port: number };
  metrics?: { address: string; port: number };
}

export class RelayServer {
  readonly counters = new RelayCounters();
  readonly limits: RelayLimits;
  readonly name: string;
  private readonly byName = new Map<string, NodeConnection>();
  private readonly all = new Set<NodeConnection>();
  private readonly corked: NodeConnection[] = [];
  /** Frame types this relay does not know, by node and type: counted, logged with the node's protocol, skipped. */
  readonly unknownFrames = new UnknownTally();
  private server?: Server;
  private stun?: StunResponder;
  private metrics?: HttpServer;
  private revocation?: RevocationSource;
  private reverifyTimer?: NodeJS.Timeout;
  private readonly log: Logger;
  /** Admission control on raw TCP sockets: totals, the unauthenticated budget, per-source limits, the handshake deadline. */
  readonly guard: ConnectionGuard;
  private readonly dropLog: DropLog;

  constructor(private readonly o: RelayServerOptions) {
    this.limits = { ...RELAY_DEFAULTS, ...o.limits };
    for (const [k, v] of Object.entries(this.limits)) {
      if (!Number.isFinite(v) || v <= 0) throw new Error(`relay limit ${k} must be a positive number, got ${v}`);
    }
    // The relay's own certificate must be valid and carry the relay role, or every node would refuse it.
    const self = o.verifier.verifyPem(o.creds.certChainPem, { usage: "server" });
    if (!self.ok) throw new Error(`relay certificate refused (${self.reason}): ${self.detail}`);
    if (!self.identity.roles.includes(RELAY_ROLE)) {
      throw new Error(`relay certificate "${self.identity.name}" lacks role "${RELAY_ROLE}" (issue it with --roles ${RELAY_ROLE}); nodes would refuse it`);
    }
    if (o.name !== undefined && o.name !== self.identity.name) {
      throw new Error(`--name "${o.name}" differs from the certificate's identity "${self.identity.name}"; nodes check the name against the certificate`);
    }
    this.name = self.identity.name;
    this.log = o.log.child({ relay: this.name });
    this.dropLog = new DropLog((fields, msg) => this.log.warn(fields, msg));
    this.guard = new ConnectionGuard({
      maxConnections: this.limits.maxConnections, maxPending: this.limits.maxPending,
      maxPendingPerSource: this.limits.maxPendingPerSource, pendingDeadlineMs: this.limits.handshakeTimeoutMs,
    }, (event, source) => {
      this.counters.bump(this.counters.refused, event);
      this.dropLog.note(event, source);
    });
  }

  async start(): Promise<RelayAddresses> {
    this.revocation = new RevocationSource({
      verifier: this.o.verifier, log: this.log, file: this.o.revocationFile, coordUrl: this.o.coordUrl,
      certChainPem: this.o.creds.certChainPem, keyPem: this.o.creds.keyPem, pollMs: this.limits.revocationPollMs,
      onUpdate: (n) => { this.counters.revocationListNumber = n; this.reverifyAll("revocation list"); },
    });
    this.revocation.start();

    // ALPN: the protocol versions this relay speaks; a node of release 0.1.0 offers none and is served as protocol 1.
    const server = createServer({ ...tlsContextOptions(this.o.creds), handshakeTimeout: this.limits.handshakeTimeoutMs, ALPNProtocols: relayAlpnProtocols() });
    this.server = server;
    this.guard.attach(server);
    const lim = this.guard.limits;
    if (lim.clampedBy) {
      this.log.warn({ event: "limits_clamped", maxConnections: lim.maxConnections, maxPending: lim.maxPending, by: lim.clampedBy },
        `connection limit lowered to ${lim.maxConnections}: ${lim.clampedBy}`);
    }
    server.on("secureConnection", (s) => this.onConnection(s));
    server.on("tlsClientError", (err, s) => {
      // Node's tls.Server leaves the socket open after a failed or timed-out handshake: close it here.
      s.destroy();
      this.counters.bump(this.counters.refused, "tls_error");
      this.log.debug({ event: "refused", reason: "tls_error", detail: err.message, remote: s.remoteAddress }, "TLS handshake failed");
    });
    await bindAnyFamily(this.o.listen.host, (host) => new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.o.listen.port, host, () => { server.off("error", reject); resolve(); });
    }));
    const la = server.address() as AddressInfo;
    const out: RelayAddresses = { name: this.name, listen: { address: la.address, port: la.port } };
    if (this.o.stun) {
      this.stun = new StunResponder(this.counters, {
        perSec: this.limits.stunPerSec, perSourcePerSec: this.limits.stunPerSourcePerSec, perSourceBurst: this.limits.stunPerSourceBurst,
        recvBufferBytes: this.limits.stunRecvBufferBytes,
      });
      const sa = await this.stun.listen(this.o.stun.host, this.o.stun.port);
      out.stun = { address: sa.address, port: sa.port };
    }
    if (this.o.metrics) {
      const m = await startMetricsServer(this.o.metrics.host, this.o.metrics.port, this.counters, this.name, () => ({
        nodes: [...this.byName.keys()].sort(), revocationListNumber: this.o.verifier.revocation.number, connections: this.guard.snapshot(),
      }), () => this.guard.snapshot());
      this.metrics = m.server;
      out.metrics = { address: m.address.address, port: m.address.port };
    }
    this.reverifyTimer = setInterval(() => this.reverifyAll("periodic"), this.limits.reverifyMs);
    this.reverifyTimer.unref();
    this.log.info({ event: "listening", ...out }, "relay listening");
    return out;
  }

  /** Re-reads the revocation file (SIGHUP). */
  reload(): void {
    this.revocation?.reload();
  }

  connectedNames(): string[] {
    return [...this.byName.keys()];
  }

  async close(): Promise<void> {
    clearInterval(this.reverifyTimer);
    this.revocation?.stop();
    this.dropLog.stop();
    this.guard.close();
    for (const c of this.all) c.close(RELAY_ERROR.SHUTDOWN, "relay shutting down");
    const closing = [
      this.server ? new Promise<void>((r) => this.server!.close(() => r())) : undefined,
      this.stun?.close(),
      this.metrics ? new Promise<void>((r) => { this.metrics!.closeAllConnections(); this.metrics!.close(() => r()); }) : undefined,
    ];
    for (const c of this.all) c.socket.destroy();
    await Promise.all(closing);
  }

  // ---- connections ---------------------------------------------------------------------------------

  private onConnection(socket: TLSSocket): void {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.on("error", (err) => this.log.debug({ event: "socket_error", remote, detail: err.message }));
    this.counters.connectionsAccepted++;
    const refuse = (reason: string, detail: string, extra: object = {}) => {
      this.counters.bump(this.counters.refused, reason);
      this.log.warn({ event: "refused", reason, detail, remote, ...extra }, "node refused");
      socket.end(encodeRelayError(reason, detail));
      setTimeout(() => socket.destroy(), 2_000).unref();
    };
    // Invariant 1: nothing of this connection is read before its certificate is verified.
    const v = verifyTlsPeer(socket, this.o.verifier, { usage: "client" });
    // A refused connection stays in the unauthenticated budget until it closes (at the latest at its deadline).
    if (!v.ok) return refuse(v.reason, v.detail);
    // The guard already closed it (evicted, or past its deadline while the handshake completed).
    if (!this.guard.authenticate(socket)) return void socket.destroy();

    const conn = new NodeConnection(socket, v.identity, new TokenBucket(this.limits.rateBytesPerSec, this.limits.burstBytes), remote);
    this.all.add(conn);
    const old = this.byName.get(conn.name);
    this.byName.set(conn.name, conn); // first, so closing the old one does not announce PEER_GONE
    if (old) {
      this.log.info({ event: "replaced", identity: conn.name, old: old.remote, remote }, "a newer connection of the same identity replaces the old one");
      this.closeConn(old, RELAY_ERROR.REPLACED, `replaced by a newer connection of "${conn.name}" from ${remote}`);
    }
    this.counters.connectedNodes = this.byName.size;
    socket.setNoDelay(true);
    // on(), not setTimeout's callback (registered once): a connection at rest gets a ping per idle period.
    socket.setTimeout(this.limits.idleTimeoutMs);
    socket.on("timeout", () => this.onIdle(conn));
    socket.on("data", (chunk: Buffer) => this.onData(conn, chunk));
    socket.on("close", () => this.onClose(conn));
    socket.write(encodeRelayFrame(RELAY_FRAME.WELCOME, conn.name, Buffer.from(this.name, "utf8")));
    this.log.info({ event: "connected", identity: conn.name, tenant: v.identity.tenant, serial: v.identity.serial, remote,
      protocol: relayProtocolOf(socket.alpnProtocol) }, "node connected");
  }

  /**
   * Silent for idleTimeoutMs: ping (writing re-arms the timer). A protocol-1 node answers, and one silent as long
   * again is closed; from protocol 2 on the ping needs no answer and TCP closes a connection whose node vanished
   * (QUIET_IDLE_PING_PROTOCOL).
   */
  private onIdle(conn: NodeConnection): void {
    if (conn.closed) return;
    const wantsAnswer = idlePingWantsAnswer(relayProtocolOf(conn.socket.alpnProtocol));
    if (wantsAnswer && conn.idlePinged) return this.closeConn(conn, RELAY_ERROR.IDLE, `no frame for ${2 * this.limits.idleTimeoutMs} ms (pinged after ${this.limits.idleTimeoutMs} ms)`);
    conn.idlePinged = wantsAnswer;
    conn.socket.write(encodeRelayFrame(RELAY_FRAME.PING, "", IDLE_PING));
  }

  private onData(conn: NodeConnection, chunk: Buffer): void {
    if (conn.closed) return;
    conn.idlePinged = false;
    conn.reader.push(chunk);
    try {
      for (let f = conn.reader.next(); f && !conn.closed; f = conn.reader.next()) this.onFrame(conn, f);
    } catch (err) {
      if (!(err instanceof RelayFrameError)) throw err;
      this.counters.drop("frame_error", conn.reader.pending);
      this.log.warn({ event: "bad_frame", identity: conn.name, remote: conn.remote, reason: err.code, detail: err.message }, "closing connection on a bad frame");
      this.closeConn(conn, err.code, err.message);
    } finally {
      // Frames forwarded from one read go out as one TLS write per destination.
      for (const d of this.corked.splice(0)) if (d.corked) { d.corked = false; d.socket.uncork(); }
    }
  }

  private onFrame(conn: NodeConnection, f: RelayFrame): void {
    const size = 4 + f.name.length + f.payload.length;
    if (!f.known) {
      this.counters.drop("unknown_frame", size);
      const n = this.unknownFrames.note(conn.name, relayFrameName(f.type), Date.now());
      if (n.log) {
        this.log.warn({ event: "unknown_frame", identity: conn.name, frame: relayFrameName(f.type), count: n.count,
          nodeVersion: describeVersion(relayProtocolOf(conn.socket.alpnProtocol)) }, "node sent a frame type this relay does not know: skipped");
      }
      return;
    }
    switch (f.type) {
      case RELAY_FRAME.SEND: return this.forward(conn, f, size);
      case RELAY_FRAME.PING:
        if (conn.bucket.take(size) && conn.socket.writableLength <= this.limits.queueBytes) conn.socket.write(encodeRelayFrame(RELAY_FRAME.PONG, "", f.payload));
        return;
      case RELAY_FRAME.PONG: return;
      default:
        this.counters.drop("frame_error", size);
        this.log.warn({ event: "bad_frame", identity: conn.name, reason: RELAY_ERROR.UNEXPECTED_FRAME, frame: relayFrameName(f.type) }, "node sent a relay-only frame");
        this.closeConn(conn, RELAY_ERROR.UNEXPECTED_FRAME, `${relayFrameName(f.type)} frames go from the relay to nodes only`);
    }
  }

  private forward(from: NodeConnection, f: RelayFrame, size: number): void {
    if (!from.bucket.take(size)) return this.counters.drop("rate_limited", f.payload.length);
    const to = this.byName.get(f.name);
    if (!to || to.closed) {
      this.counters.drop("unknown_peer", f.payload.length);
      if (from.socket.writableLength <= this.limits.queueBytes) from.socket.write(encodeRelayFrame(RELAY_FRAME.UNKNOWN_PEER, f.name));
      return;
    }
    if (to.socket.writableLength > this.limits.queueBytes) return this.counters.drop("queue_full", f.payload.length);
    if (!to.corked) { to.corked = true; to.socket.cork(); this.corked.push(to); }
    // The payload is forwarded byte for byte; only the name changes, to the sender's verified identity.
    to.socket.write(encodeRelayFrame(RELAY_FRAME.RECV, from.name, f.payload));
    to.noteSender(from.name);
    this.counters.framesForwarded++;
    this.counters.bytesForwarded += f.payload.length;
  }

  private closeConn(conn: NodeConnection, code: string, detail: string): void {
    if (conn.closed) return;
    this.counters.bump(this.counters.closedByReason, code);
    conn.close(code, detail);
    this.detach(conn);
  }

  private onClose(conn: NodeConnection): void {
    conn.closed = true;
    this.all.delete(conn);
    if (this.detach(conn) || conn.closeReason) {
      this.log.info({ event: "disconnected", identity: conn.name, remote: conn.remote, reason: conn.closeReason ?? "closed_by_node" }, "node disconnected");
    }
  }

  /** Removes the connection from the name table (if it is still the current one) and tells its recent senders. */
  private detach(conn: NodeConnection): boolean {
    if (this.byName.get(conn.name) !== conn) return false;
    this.byName.delete(conn.name);
    this.counters.connectedNodes = this.byName.size;
    for (const s of conn.recentSenders) {
      const peer = this.byName.get(s);
      if (peer && !peer.closed && peer.socket.writableLength <= this.limits.queueBytes) peer.socket.write(encodeRelayFrame(RELAY_FRAME.PEER_GONE, conn.name));
    }
    return true;
  }

  /** Re-runs the verifier on every connected certificate: revoked or expired identities are disconnected. */
  private reverifyAll(why: string): void {
    for (const conn of [...this.byName.values()]) {
      const v = verifyTlsPeer(conn.socket, this.o.verifier, { usage: "client" });
      if (v.ok) continue;
      this.counters.bump(this.counters.refused, v.reason);
      this.log.warn({ event: "disconnected", identity: conn.name, remote: conn.remote, reason: v.reason, detail: v.detail, trigger: why }, "connected node no longer verifies");
      this.closeConn(conn, v.reason, v.detail);
    }
  }
}
