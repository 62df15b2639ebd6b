// The session device: every peer's Noise handshakes, transport keys, timers and counters. It is
// transport-agnostic: datagrams come in through receive(data, from) and go out through the send
// callback, so one device serves the UDP socket and the relay alike (the path is not the session).
import type { Identity, Verifier } from "../pki/index.js";
import {
  DATA_HEADER_SIZE, INNER, MAX_DATAGRAM, MIN_DATA_PACKET, PACKET, TAG_SIZE, HANDSHAKE_INIT_BURST, HANDSHAKE_INIT_BURST_PER_SOURCE,
  HANDSHAKE_INIT_RATE_PER_S, HANDSHAKE_INIT_RATE_PER_SOURCE_PER_S,
  HandshakeError, Initiator, Responder, TimestampGuard, TransportCipher, encodeHandshake, parseHandshake,
  readCounter, readReceiverIndex, writeDataHeader, type LocalIdentity,
} from "./crypto-adapter.js";
import { describeEndpoint, endpointKey, sameEndpoint, type Endpoint } from "./endpoint.js";
import { IndexTable } from "./index-table.js";
import { Keypair } from "./keypair.js";
import { Peer } from "./peer.js";
import { MAX_PENDING_RESPONSES, type PendingResponse } from "./handshakes.js";
import { DEFAULT_TIMERS, isIdle, type SessionTimers } from "./timers.js";
import { HandshakeRateLimiter } from "./rate-limit.js";
import { InnerRegistry, innerName, isActivityKind } from "./inner.js";
import { AdaptiveTicker } from "./ticker.js";

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface DeviceOptions {
  local: LocalIdentity;
  verifier: Verifier;
  send: (to: Endpoint, data: Uint8Array) => void;
  /**
   * Whether the layer below has room for another datagram towards `to` (the UDP socket's send queue, the
   * relay connection's TLS buffer). Without it every path always has room.
   */
  canSend?: (to: Endpoint) => boolean;
  /** A peer that sendTo() answered "full" can take datagrams again (see Device.writableChanged). */
  onWritable?: (peer: Peer) => void;
  log: Logger;
  timers?: Partial<SessionTimers>;
  /** A peer's session came up or went away. */
  onSession?: (peer: Peer, up: boolean) => void;
  now?: () => number;
}

/** Datagrams held per peer while its handshake runs; sendTo() answers "full" beyond this. */
const MAX_QUEUE = 64;

/**
 * What became of a datagram handed to sendTo(). "full" means nothing was sent or queued: the caller holds
 * the datagram and waits for onWritable (back-pressure, never a silent drop reported as success).
 */
export type SendResult = "sent" | "queued" | "full" | "unknown_peer" | "revoked";
/** Keypairs kept for receiving besides the current one (see Peer.retired). */
const MAX_RETIRED = 3;
const NOISE_DROP_LOG_INTERVAL_MS = 5_000;
const KEEPALIVE_PLAIN = Buffer.from([INNER.KEEPALIVE]);

/** What the path layer learns from the device (src/nat/paths.ts owns the peers' paths once attached). */
export interface PathOwner {
  /**
   * The peer had been idle and application data now moves (sent or received). Called before the datagram
   * that woke it is sealed, so a shadow path set here already carries it.
   */
  onWake(peer: Peer): void;
}

/** Ping payload: 8-byte id; the pong echoes it. */
interface PingWaiter { sentAt: number; resolve: (rttMs: number) => void; timer: NodeJS.Timeout }

export class Device {
  readonly timers: SessionTimers;
  readonly peers = new Map<string, Peer>();
  /** Handlers by inner kind: each layer above registers its own kinds (src/session/inner.ts). */
  readonly inner = new InnerRegistry();
  /**
   * Set once a path manager (src/nat/paths.ts) chooses between relay and direct paths: the session then
   * follows an authenticated packet to a new source only from direct to direct (a NAT rebinding).
   */
  private pathsManaged = false;
  private pathOwner?: PathOwner;
  /** Drop counters by reason: every discarded datagram increments one. */
  readonly drops = new Map<string, number>();
  private readonly keypairs = new IndexTable<{ peer: Peer; keypair: Keypair }>();
  private readonly initiations = new IndexTable<Peer>();
  private readonly responses = new IndexTable<PendingResponse>();
  private readonly responseOrder: number[] = [];
  private readonly timestamps = new TimestampGuard();
  private readonly pings = new Map<string, PingWaiter>();
  private pingSeq = 0;
  private readonly ticker: AdaptiveTicker;
  private lastDropLog = 0;
  private readonly now: () => number;
  private readonly scratch = Buffer.allocUnsafe(MAX_DATAGRAM);
  private readonly initLimiter: HandshakeRateLimiter;

  constructor(private readonly opts: DeviceOptions) {
    this.timers = { ...DEFAULT_TIMERS, ...opts.timers };
    this.now = opts.now ?? Date.now;
    this.ticker = new AdaptiveTicker(() => this.tick(), this.timers.tickMs, Math.max(this.timers.tickMs, this.timers.restTickMs));
    this.initLimiter = new HandshakeRateLimiter({
      ratePerS: HANDSHAKE_INIT_RATE_PER_S, burst: HANDSHAKE_INIT_BURST,
      perSourceRatePerS: HANDSHAKE_INIT_RATE_PER_SOURCE_PER_S, perSourceBurst: HANDSHAKE_INIT_BURST_PER_SOURCE,
    }, this.now());
    this.inner.register(INNER.KEEPALIVE, () => {});
    // Answer on the path the ping came by: it works now, while our own choice may lag behind.
    this.inner.register(INNER.PING, (peer, from, payload) => this.sendVia(peer.name, from, INNER.PONG, payload));
    this.inner.register(INNER.PONG, (peer, _from, payload) => this.onPong(peer, payload));
  }

  start(): void {
    this.ticker.start();
  }

  stop(): void {
    this.ticker.stop();
    for (const w of this.pings.values()) clearTimeout(w.timer);
    this.pings.clear();
  }

  get local(): LocalIdentity {
    return this.opts.local;
  }

  /** A path manager now decides moves between relay and direct paths (see pathsManaged) and hears of wake-ups. */
  setPathsManaged(managed: boolean, owner?: PathOwner): void {
    this.pathsManaged = managed;
    this.pathOwner = managed ? owner : undefined;
  }

  /** Whether the peer is at rest (no application data for idleAfterMs; see timers.ts). */
  isIdle(peer: Peer, now = this.now()): boolean {
    return isIdle(peer.lastDataAt, now, this.timers);
  }

  /**
   * Whether the peer's keys are fresh: usable, and younger than rekeyAfterTime, so both sides still hold them
   * for a good while. The path layer's holds at rest are sealed (and answered) only then; a rest never costs a
   * handshake, and a sealed packet never reaches a peer whose copy of the keys just expired.
   */
  sessionFresh(name: string): boolean {
    const peer = this.peers.get(name);
    const kp = peer && this.usableKeypair(peer);
    return !!kp && kp.ageMs(this.now()) < this.timers.rekeyAfterTimeMs && kp.sendCounter < this.timers.rekeyAfterMessages;
  }

  /** Application data moved: a peer at rest wakes (its path owner revalidates the path), then is active. */
  private touch(peer: Peer, now: number): void {
    if (isIdle(peer.lastDataAt, now, this.timers)) {
      peer.activeSince = now;
      peer.lastDataAt = now;
      this.ticker.poke();
      this.pathOwner?.onWake(peer);
    }
    peer.lastDataAt = now;
  }

  /** Rotation: later handshakes present the new certificate; live sessions keep their keys. */
  setLocalIdentity(local: LocalIdentity): void {
    this.opts.local = local;
  }

  addPeer(name: string, endpoint?: Endpoint, persistent = true): Peer {
    let peer = this.peers.get(name);
    if (!peer) {
      peer = new Peer(name, endpoint, persistent, this.now());
      this.peers.set(name, peer);
      this.ticker.poke();
    } else if (endpoint && !peer.current) {
      this.setPath(name, endpoint);
    }
    return peer;
  }

  removePeer(name: string): void {
    const peer = this.peers.get(name);
    if (!peer) return;
    this.dropKeys(peer, "peer removed");
    this.peers.delete(name);
  }

  private count(reason: string): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
    const now = this.now();
    if (now - this.lastDropLog > NOISE_DROP_LOG_INTERVAL_MS) {
      this.lastDropLog = now;
      this.opts.log.debug({ reason, drops: Object.fromEntries(this.drops) }, "dropped datagram");
    }
  }

  // ---------------------------------------------------------------- receive

  /** Entry point for every EmberNet datagram (STUN is split off before this). Never throws. */
  receive(data: Buffer, from: Endpoint): void {
    try {
      this.receiveUnsafe(data, from);
    } catch (err) {
      // A bug must not kill the daemon; count it so tests and operators see it.
      this.count("internal_error");
      this.opts.log.warn({ err: (err as Error).message, from: describeEndpoint(from) }, "internal error while handling a datagram");
    }
  }

  private receiveUnsafe(data: Buffer, from: Endpoint): void {
    if (data.length < 4) return this.count("too_short");
    if (data.length > MAX_DATAGRAM) return this.count("too_big");
    switch (data[0]) {
      case PACKET.DATA: return this.receiveData(data, from);
      case PACKET.HANDSHAKE_INIT: return this.receiveInit(data, from);
      case PACKET.HANDSHAKE_RESP: return this.receiveResp(data, from);
      case PACKET.HANDSHAKE_FINAL: return this.receiveFinal(data, from);
      default: return this.count("unknown_type");
    }
  }

  private receiveData(data: Buffer, from: Endpoint): void {
    if (data.length < MIN_DATA_PACKET) return this.count("too_short");
    const entry = this.keypairs.get(readReceiverIndex(data));
    if (!entry) {
      this.count("unknown_index");
      this.maybeRestartFrom(from);
      return;
    }
    const { peer, keypair } = entry;
    const now = this.now();
    if (keypair.ageMs(now) > this.timers.rejectAfterTimeMs) return this.count("expired_key");
    const counter = readCounter(data);
    if (!keypair.replay.check(counter)) return this.count("replay");
    const plainLen = keypair.receiver.open(counter, data.subarray(DATA_HEADER_SIZE), this.scratch);
    if (plainLen < 0) return this.count("decrypt_failed");
    keypair.replay.update(counter);
    keypair.receivedPackets++;
    if (!keypair.confirmed) {
      keypair.confirmed = true;
      peer.attempts = 0;
    }
    peer.lastReceivedAt = now;
    if (from.kind === "udp") { peer.lastDirectRxAt = now; peer.lastDirectRxFrom = from; } else peer.lastRelayRxAt = now;
    peer.stats.rxPackets++;
    peer.stats.rxBytes += data.length;
    // Roaming: the session follows an authenticated packet to a new direct source (a NAT rebinding, a new
    // port). Moves between relay and direct paths are the path manager's decision, made on probe replies.
    if (!sameEndpoint(peer.endpoint, from) && (!this.pathsManaged || (from.kind === "udp" && peer.endpoint?.kind === "udp"))) {
      this.opts.log.info({ peer: peer.name, from: describeEndpoint(peer.endpoint), to: describeEndpoint(from) }, "peer endpoint changed");
      peer.endpoint = from;
    }
    if (plainLen === 0) return this.count("empty_payload");
    const kind = this.scratch[0];
    if (isActivityKind(kind)) this.touch(peer, now);
    if (!this.inner.dispatch(kind, peer, from, this.scratch.subarray(1, plainLen))) this.count(`unhandled_inner_${innerName(kind)}`);
  }

  /** Seals an inner message in the peer's session and sends it over exactly this endpoint (path probes). */
  sendVia(name: string, endpoint: Endpoint, innerType: number, payload: Uint8Array): boolean {
    const peer = this.peers.get(name);
    const kp = peer && this.usableKeypair(peer);
    if (!peer || !kp) return false;
    const plain = Buffer.allocUnsafe(1 + payload.length);
    plain[0] = innerType;
    plain.set(payload, 1);
    this.sealTo(peer, kp, plain, endpoint);
    return true;
  }

  /**
   * Moves a peer's traffic to another path; the session (keys, counters) is unchanged. With a shadow, data
   * packets go to both paths until a later setPath without one (see Peer.shadow).
   */
  setPath(name: string, endpoint: Endpoint, shadow?: Endpoint): void {
    const peer = this.peers.get(name);
    if (!peer) return;
    peer.shadow = shadow && !sameEndpoint(shadow, endpoint) ? shadow : undefined;
    if (sameEndpoint(peer.endpoint, endpoint)) return;
    peer.endpoint = endpoint;
    // No session yet: the handshake waiting out its backoff on the old path retries on the new one now.
    if (!peer.current) peer.nextAttemptAt = 0;
    this.unblock(peer);
  }

  /** A packet for keys we do not have, from a known peer's address: it lost our session (e.g. we restarted). */
  private maybeRestartFrom(from: Endpoint): void {
    const key = endpointKey(from);
    for (const peer of this.peers.values()) {
      if (peer.endpoint && endpointKey(peer.endpoint) === key && !peer.initiation && !peer.revoked && this.now() >= peer.nextAttemptAt) {
        this.initiate(peer, "peer sent data for unknown keys");
      }
    }
  }

  private receiveInit(data: Buffer, from: Endpoint): void {
    const hs = parseHandshake(data);
    if (!hs.ok) return this.count(`handshake_${hs.reason}`);
    if (!this.initLimiter.allow(from.kind === "udp" ? from.host : endpointKey(from), this.now())) return this.count("handshake_rate_limited");
    if (this.responses.size >= MAX_PENDING_RESPONSES) this.expireOldestResponse();
    const responder = new Responder(this.opts.local, this.opts.verifier);
    let resp: Uint8Array;
    try {
      responder.readInit(hs.message);
      resp = responder.writeResp();
    } catch (err) {
      return this.handshakeFailed(err, from);
    }
    const pending: PendingResponse = { localIndex: 0, remoteIndex: hs.senderIndex, responder, startedAt: this.now(), from };
    pending.localIndex = this.responses.allocate(pending);
    this.responseOrder.push(pending.localIndex);
    this.opts.send(from, encodeHandshake(PACKET.HANDSHAKE_RESP, pending.localIndex, hs.senderIndex, resp));
  }

  private expireOldestResponse(): void {
    const idx = this.responseOrder.shift();
    if (idx !== undefined) this.responses.delete(idx);
    this.count("handshake_pending_overflow");
  }

  private receiveResp(data: Buffer, from: Endpoint): void {
    const hs = parseHandshake(data);
    if (!hs.ok) return this.count(`handshake_${hs.reason}`);
    const peer = this.initiations.get(hs.receiverIndex!);
    const pending = peer?.initiation;
    if (!peer || !pending || pending.localIndex !== hs.receiverIndex) return this.count("handshake_unknown_index");
    let final: Uint8Array;
    let identity: Identity;
    let result;
    try {
      pending.initiator.readResp(hs.message);
      final = pending.initiator.writeFinal();
      result = pending.initiator.result();
      identity = result.identity;
    } catch (err) {
      this.abandonInitiation(peer);
      return this.handshakeFailed(err, from, peer.name);
    }
    if (identity.name !== peer.name) {
      this.abandonInitiation(peer);
      this.count("handshake_wrong_peer");
      this.opts.log.warn({ expected: peer.name, got: identity.name, from: describeEndpoint(from) }, "handshake refused: responder is not the peer we dialled");
      return;
    }
    this.opts.send(from, encodeHandshake(PACKET.HANDSHAKE_FINAL, pending.localIndex, hs.senderIndex, final));
    this.initiations.delete(pending.localIndex);
    peer.initiation = undefined;
    const keypair = new Keypair(pending.localIndex, hs.senderIndex, new TransportCipher(result.sendKey), new TransportCipher(result.recvKey), true, this.now());
    this.install(peer, keypair, identity, from);
  }

  private receiveFinal(data: Buffer, from: Endpoint): void {
    const hs = parseHandshake(data);
    if (!hs.ok) return this.count(`handshake_${hs.reason}`);
    const pending = this.responses.get(hs.receiverIndex!);
    if (!pending || pending.remoteIndex !== hs.senderIndex) return this.count("handshake_unknown_index");
    this.responses.delete(pending.localIndex);
    let result;
    try {
      pending.responder.readFinal(hs.message);
      result = pending.responder.result();
    } catch (err) {
      return this.handshakeFailed(err, from);
    }
    const identity = result.identity;
    const peer = this.peers.get(identity.name);
    if (!peer) {
      this.count("handshake_unknown_peer");
      this.opts.log.warn({ identity: identity.spiffeId, from: describeEndpoint(from) }, "handshake refused: identity is not a peer of this node");
      return;
    }
    if (!this.timestamps.accept(identity.name, result.timestamp)) {
      this.count("handshake_stale_timestamp");
      this.opts.log.warn({ peer: identity.name, from: describeEndpoint(from) }, "handshake refused: replayed or older than the last one");
      return;
    }
    const keypair = new Keypair(pending.localIndex, pending.remoteIndex, new TransportCipher(result.sendKey), new TransportCipher(result.recvKey), false, this.now());
    this.install(peer, keypair, identity, from);
    // Confirm at once so the initiator knows its final message arrived.
    this.sendKeepalive(peer);
  }

  private handshakeFailed(err: unknown, from: Endpoint, peerName?: string): void {
    const reason = err instanceof HandshakeError ? err.reason : "malformed";
    this.count(`handshake_${reason}`);
    this.opts.log.warn({ reason, detail: (err as Error).message, peer: peerName, from: describeEndpoint(from) }, "handshake refused");
  }

  private install(peer: Peer, keypair: Keypair, identity: Identity, from: Endpoint): void {
    const wasUp = !!peer.current;
    if (peer.current) peer.retired.unshift(peer.current);
    for (const old of peer.retired.splice(MAX_RETIRED)) this.keypairs.delete(old.localIndex);
    peer.current = keypair;
    this.keypairs.set(keypair.localIndex, { peer, keypair });
    peer.identity = identity;
    peer.endpoint = from;
    peer.revoked = false;
    if (!keypair.isInitiator) peer.attempts = 0;
    const now = this.now();
    peer.lastReceivedAt = now;
    if (from.kind === "udp") { peer.lastDirectRxAt = now; peer.lastDirectRxFrom = from; } else peer.lastRelayRxAt = now;
    peer.stats.handshakes++;
    peer.stats.lastHandshakeAt = now;
    this.opts.log.info({ peer: peer.name, identity: identity.spiffeId, endpoint: describeEndpoint(from), rekey: wasUp, initiator: keypair.isInitiator }, wasUp ? "session rekeyed" : "session established");
    if (!wasUp) this.opts.onSession?.(peer, true);
    const queued = peer.queue.splice(0);
    for (const p of queued) this.sendSealed(peer, keypair, p);
    this.unblock(peer);
  }

  // ---------------------------------------------------------------- send

  /**
   * Sends an inner message to a peer by name over its current path; queues it and starts a handshake when
   * there is no session. "full" when the queue or the layer below has no room: see SendResult.
   */
  sendTo(name: string, innerType: number, payload: Uint8Array): SendResult {
    const peer = this.peers.get(name);
    if (!peer) return "unknown_peer";
    if (peer.revoked) return "revoked";
    return this.sendInner(peer, innerType, payload);
  }

  private sendInner(peer: Peer, innerType: number, payload: Uint8Array): SendResult {
    if (isActivityKind(innerType)) this.touch(peer, this.now());
    const kp = this.usableKeypair(peer);
    if (kp ? !this.roomOn(peer.endpoint!) : peer.queue.length >= MAX_QUEUE) {
      peer.blocked = true;
      this.count(kp ? "send_backpressure" : "queue_full");
      return "full";
    }
    const plain = Buffer.allocUnsafe(1 + payload.length);
    plain[0] = innerType;
    plain.set(payload, 1);
    if (kp) {
      this.sendSealed(peer, kp, plain);
      return "sent";
    }
    peer.queue.push(plain);
    if (!peer.initiation && this.now() >= peer.nextAttemptAt) this.initiate(peer, "traffic waiting");
    return "queued";
  }

  /** One byte, past any back-pressure: it holds the session and the NAT mapping that everything else needs. */
  private sendKeepalive(peer: Peer): void {
    const kp = this.usableKeypair(peer);
    if (kp) this.sendSealed(peer, kp, KEEPALIVE_PLAIN);
  }

  private roomOn(endpoint: Endpoint): boolean {
    return this.opts.canSend?.(endpoint) ?? true;
  }

  /** The layer below drained (socket queue, relay buffer): peers that were told "full" may send again. */
  writableChanged(): void {
    for (const peer of this.peers.values()) if (peer.blocked) this.unblock(peer);
  }

  private unblock(peer: Peer): void {
    if (!peer.blocked) return;
    if (peer.current ? !peer.endpoint || !this.roomOn(peer.endpoint) : peer.queue.length >= MAX_QUEUE) return;
    peer.blocked = false;
    this.opts.onWritable?.(peer);
  }

  private usableKeypair(peer: Peer): Keypair | undefined {
    const kp = peer.current;
    if (!kp || !peer.endpoint) return undefined;
    if (kp.ageMs(this.now()) > this.timers.rejectAfterTimeMs || kp.sendCounter >= this.timers.rejectAfterMessages) return undefined;
    return kp;
  }

  private sendSealed(peer: Peer, kp: Keypair, plain: Uint8Array): void {
    if (!peer.endpoint) return;
    const out = this.sealTo(peer, kp, plain, peer.endpoint);
    peer.lastPathSentAt = peer.lastSentAt;
    // The same ciphertext on the shadow path too: the receiver's replay window takes the first copy.
    if (peer.shadow) {
      this.opts.send(peer.shadow, out);
      peer.stats.txPackets++;
      peer.stats.txBytes += out.length;
    }
  }

  private sealTo(peer: Peer, kp: Keypair, plain: Uint8Array, endpoint: Endpoint): Buffer {
    const out = Buffer.allocUnsafe(DATA_HEADER_SIZE + plain.length + TAG_SIZE);
    const counter = kp.sendCounter++;
    writeDataHeader(out, kp.remoteIndex, counter);
    kp.sender.seal(counter, plain, out, DATA_HEADER_SIZE);
    this.opts.send(endpoint, out);
    const now = this.now();
    peer.lastSentAt = now;
    peer.stats.txPackets++;
    peer.stats.txBytes += out.length;
    // At rest (a hold, or the answer to one) no send starts a handshake: keys may expire instead.
    if (kp.isInitiator && !peer.initiation && (kp.sendCounter >= this.timers.rekeyAfterMessages || kp.ageMs(now) >= this.timers.rekeyAfterTimeMs) && !isIdle(peer.lastDataAt, now, this.timers)) {
      this.initiate(peer, "rekey");
    }
    return out;
  }

  initiate(peer: Peer, why: string): void {
    if (peer.revoked || !peer.endpoint) return;
    if (peer.initiation) this.abandonInitiation(peer);
    const initiator = new Initiator(this.opts.local, this.opts.verifier);
    let msg: Uint8Array;
    try {
      msg = initiator.writeInit();
    } catch (err) {
      this.opts.log.warn({ peer: peer.name, err: (err as Error).message }, "cannot start handshake");
      return;
    }
    const now = this.now();
    const localIndex = this.initiations.allocate(peer);
    peer.initiation = { localIndex, initiator, startedAt: now, peerName: peer.name };
    peer.attempts++;
    const backoff = Math.min(this.timers.handshakeTimeoutMs * 2 ** Math.min(peer.attempts - 1, 10), this.timers.handshakeBackoffMaxMs);
    peer.nextAttemptAt = now + backoff;
    this.opts.log.debug({ peer: peer.name, why, attempt: peer.attempts, endpoint: describeEndpoint(peer.endpoint) }, "handshake initiation");
    this.opts.send(peer.endpoint, encodeHandshake(PACKET.HANDSHAKE_INIT, localIndex, undefined, msg));
  }

  private abandonInitiation(peer: Peer): void {
    if (peer.initiation) this.initiations.delete(peer.initiation.localIndex);
    peer.initiation = undefined;
  }

  private dropKeys(peer: Peer, why: string): void {
    const wasUp = !!peer.current;
    for (const kp of [peer.current, ...peer.retired]) if (kp) this.keypairs.delete(kp.localIndex);
    peer.current = undefined;
    peer.retired = [];
    this.abandonInitiation(peer);
    if (wasUp) {
      this.opts.log.info({ peer: peer.name, why }, "session closed");
      this.opts.onSession?.(peer, false);
    }
  }

  // ---------------------------------------------------------------- timers

  /** Runs every timer once; true while anything is in progress (an active peer, a handshake, queued data). */
  tick(): boolean {
    const now = this.now();
    const t = this.timers;
    let busy = false;
    for (const peer of this.peers.values()) {
      if (peer.revoked) continue;
      while (peer.retired.length && peer.retired[peer.retired.length - 1].ageMs(now) > t.rejectAfterTimeMs) {
        this.keypairs.delete(peer.retired.pop()!.localIndex);
      }
      // At rest (no application data for idleAfterMs) no timer sends anything: no keepalive, no dead-peer
      // check, no time-based rekey, no reconnect. Keys may expire; the next datagram starts a handshake.
      const idle = isIdle(peer.lastDataAt, now, t);
      const kp = peer.current;
      // Silence is counted from the wake-up at the earliest: a rest is not a dead peer.
      const heardAt = Math.max(peer.lastReceivedAt, peer.activeSince);
      if (kp && kp.ageMs(now) > t.rejectAfterTimeMs) this.dropKeys(peer, idle ? "keys expired at rest" : "keys expired");
      else if (kp && !idle && now - heardAt > t.deadAfterMs) this.dropKeys(peer, `no authenticated packet for ${Math.round((now - peer.lastReceivedAt) / 1000)}s`);
      else if (kp && !kp.confirmed && now - kp.createdAt > t.handshakeTimeoutMs && !peer.initiation) {
        // Our final message may have been lost: the responder never got the keys we are using.
        this.initiate(peer, "session not confirmed");
      }
      const cur = peer.current;
      if (cur && !peer.initiation && !idle) {
        const age = cur.ageMs(now);
        // The initiator rekeys first; the responder waits longer, with jitter, so both rarely start at once.
        const due = cur.isInitiator ? t.rekeyAfterTimeMs : t.rekeyAfterTimeMs + t.handshakeTimeoutMs * (1 + (cur.localIndex % 1000) / 2000);
        if (age >= due) this.initiate(peer, "rekey (time)");
      }
      if (!peer.current && ((peer.persistent && !idle) || peer.queue.length) && now >= peer.nextAttemptAt) {
        this.initiate(peer, peer.initiation ? "retry" : "connect");
      }
      if (peer.current && !idle && now - peer.lastSentAt >= t.keepaliveMs) this.sendKeepalive(peer);
      busy ||= !idle || !!peer.initiation || peer.queue.length > 0 || (!!peer.current && !peer.current.confirmed);
    }
    // Responses nobody finished within the handshake timeout are forgotten.
    while (this.responseOrder.length) {
      const idx = this.responseOrder[0];
      const r = this.responses.get(idx);
      if (r && now - r.startedAt < t.handshakeTimeoutMs * 2) break;
      this.responseOrder.shift();
      this.responses.delete(idx);
    }
    return busy || this.responseOrder.length > 0;
  }

  // ---------------------------------------------------------------- revocation

  /** Drops sessions of every peer whose certificate the verifier now reports as revoked. */
  enforceRevocations(): string[] {
    const dropped: string[] = [];
    for (const peer of this.peers.values()) {
      if (peer.identity && this.opts.verifier.revocation.isRevoked(peer.identity.serial)) {
        this.dropKeys(peer, "certificate revoked");
        peer.revoked = true;
        peer.queue.length = 0;
        dropped.push(peer.name);
        this.opts.log.warn({ peer: peer.name, serial: peer.identity.serial }, "peer revoked: session dropped");
      }
    }
    return dropped;
  }

  // ---------------------------------------------------------------- ping

  /** Round trip over the encrypted session (starting one if needed), in milliseconds. */
  ping(name: string, timeoutMs = 5_000): Promise<number> {
    const peer = this.peers.get(name);
    if (!peer) return Promise.reject(new Error(`unknown peer "${name}"`));
    if (peer.revoked) return Promise.reject(new Error(`peer "${name}" is revoked`));
    const id = Buffer.allocUnsafe(8);
    id.writeUInt32BE(process.pid & 0xffffffff, 0);
    id.writeUInt32BE(++this.pingSeq >>> 0, 4);
    const key = `${name}/${id.toString("hex")}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(key);
        reject(new Error(`no pong from ${name} within ${timeoutMs} ms (state: ${peer.state})`));
      }, timeoutMs);
      this.pings.set(key, { sentAt: performance.now(), resolve, timer });
      if (this.sendInner(peer, INNER.PING, id) === "full") {
        clearTimeout(timer);
        this.pings.delete(key);
        reject(new Error(`cannot ping ${name}: its send queue is full (state: ${peer.state})`));
      }
    });
  }

  private onPong(peer: Peer, payload: Uint8Array): void {
    const key = `${peer.name}/${Buffer.from(payload).toString("hex")}`;
    const w = this.pings.get(key);
    if (!w) return this.count("unexpected_pong");
    this.pings.delete(key);
    clearTimeout(w.timer);
    const rtt = performance.now() - w.sentAt;
    peer.stats.lastRttMs = rtt;
    w.resolve(rtt);
  }
}
