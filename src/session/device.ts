// The session device: every peer's Noise handshakes, transport keys, timers and counters. It is
// transport-agnostic: datagrams come in through receive(data, from) and go out through the send
// callback, so one device serves the UDP socket and the relay alike (the path is not the session).
import type { Identity } from "../pki/index.js";
import {
  DATA_HEADER_SIZE, INNER, MAX_DATAGRAM, MIN_DATA_PACKET, PACKET, TAG_SIZE,
  readCounter, readReceiverIndex, writeDataHeader, type LocalIdentity,
} from "./crypto-adapter.js";
import { describeEndpoint, endpointKey, sameEndpoint, type Endpoint } from "../addr/endpoint.js";
import { IndexTable } from "./index-table.js";
import { Keypair } from "./keypair.js";
import { Peer } from "./peer.js";
import { Handshaker } from "./handshaker.js";
import { Pinger } from "./pinger.js";
import type { DeviceOptions, HandshakeStats, PathOwner, SendResult } from "./device-types.js";
import { DEFAULT_TIMERS, isIdle, type SessionTimers } from "./timers.js";
import { InnerRegistry, innerName, isActivityKind } from "./inner.js";
import { AdaptiveTicker } from "./ticker.js";
import { tunKey } from "../crypto/tun-keys.js";
import { UnknownTally } from "../wire/unknown.js";
import { OLDEST_COMPATIBLE_PROTOCOL, describeVersion } from "../wire/protocol.js";
import type { PeerVersion } from "./crypto-adapter.js";

/** Datagrams held per peer while its handshake runs; sendTo() answers "full" beyond this. */
const MAX_QUEUE = 64;

/** Keypairs kept for receiving besides the current one (see Peer.retired). */
const MAX_RETIRED = 3;
const NOISE_DROP_LOG_INTERVAL_MS = 5_000;
const KEEPALIVE_PLAIN = Buffer.from([INNER.KEEPALIVE]);

export type { Logger, DeviceOptions, SessionMirror, SendResult, HandshakeStats, PathOwner } from "./device-types.js";

export class Device {
  readonly timers: SessionTimers;
  private readonly peerTable = new Map<string, Peer>();

  /** Every peer, read-only: addPeer and removePeer are the only ways in and out. */
  get peers(): ReadonlyMap<string, Peer> {
    return this.peerTable;
  }
  /** Handlers by inner kind: each layer above registers its own kinds (src/session/inner.ts). */
  readonly inner = new InnerRegistry();
  /** Inner kinds no layer here handles (a newer peer's), by kind: counted and logged with the peer's version. */
  readonly unknownInner = new UnknownTally();
  /**
   * Set once a path manager (src/nat/paths.ts) chooses between relay and direct paths: the session then
   * follows an authenticated packet to a new source only from direct to direct (a NAT rebinding).
   */
  private pathsManaged = false;
  private pathOwner?: PathOwner;
  /** Drop counters by reason: every discarded datagram increments one. */
  readonly drops = new Map<string, number>();
  private readonly keypairs = new IndexTable<{ peer: Peer; keypair: Keypair }>();
  private readonly pinger = new Pinger({ send: (peer, id) => this.sendInner(peer, INNER.PING, id), count: (r) => this.count(r) });
  private readonly ticker: AdaptiveTicker;
  /** Handshakes in both roles and what they hold for others (handshaker.ts). */
  private readonly handshaker: Handshaker;
  private lastDropLog = 0;
  private readonly now: () => number;
  private readonly scratch = Buffer.allocUnsafe(MAX_DATAGRAM);

  constructor(private readonly opts: DeviceOptions) {
    this.timers = { ...DEFAULT_TIMERS, ...opts.timers };
    this.now = opts.now ?? Date.now;
    this.handshaker = new Handshaker({
      opts, timers: this.timers, peers: this.peerTable, local: () => this.opts.local, now: this.now, count: (r) => this.count(r),
      send: (to, data) => this.opts.send(to, data),
      install: (peer, keypair, identity, from, keys) => this.install(peer, keypair, identity, from, keys),
      sendKeepalive: (peer) => this.sendKeepalive(peer),
    });
    this.ticker = new AdaptiveTicker(() => this.tick(), this.timers.tickMs, Math.max(this.timers.tickMs, this.timers.restTickMs), opts.restClock);
    this.inner.register(INNER.KEEPALIVE, () => {});
    // Answer on the path the ping came by: it works now, while our own choice may lag behind.
    this.inner.register(INNER.PING, (peer, from, payload) => this.sendVia(peer.name, from, INNER.PONG, payload));
    this.inner.register(INNER.PONG, (peer, _from, payload) => this.pinger.onPong(peer, payload));
  }

  start(): void {
    this.ticker.start();
  }

  stop(): void {
    this.ticker.stop();
    this.pinger.clear();
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
    return !!kp && !kp.dueForRekey(this.now(), this.timers);
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

  /**
   * The TUN data plane moved IP packets for the peer on its own threads (native-plane.ts reads its counters): the
   * peer is active, and a received packet is as good as any for the dead-peer check.
   */
  noteTunTraffic(name: string, d: { rxPackets: number; txPackets: number; rxBytes: number; txBytes: number; relayRxPackets: number }): void {
    const peer = this.peers.get(name);
    if (!peer) return;
    const now = this.now();
    this.touch(peer, now);
    if (d.rxPackets > 0) peer.lastReceivedAt = now;
    // The addon read them from the socket: they came by the direct path (the path layer's evidence it works).
    if (d.rxPackets > d.relayRxPackets && peer.endpoint?.kind === "udp") { peer.lastDirectRxAt = now; peer.lastDirectRxFrom = peer.endpoint; }
    if (d.relayRxPackets > 0) peer.lastRelayRxAt = now;
    // The addon sends on the current path: as the path layer counts sends (a send not answered makes it suspect).
    if (d.txPackets > 0) { peer.lastSentAt = now; peer.lastPathSentAt = now; }
    peer.stats.rxPackets += d.rxPackets;
    peer.stats.txPackets += d.txPackets;
    peer.stats.rxBytes += d.rxBytes;
    peer.stats.txBytes += d.txBytes;
  }

  /** A packet from TUN waits for a session with the peer: start one now (the packet itself is dropped; TCP resends). */
  want(name: string): void {
    const peer = this.peers.get(name);
    if (!peer || peer.revoked) return;
    this.touch(peer, this.now());
    if (!peer.current && !peer.initiation && this.now() >= peer.nextAttemptAt) this.initiate(peer, "traffic waiting (tun)");
  }

  /** Rotation: later handshakes present the new certificate; live sessions keep their keys. */
  setLocalIdentity(local: LocalIdentity): void {
    this.opts.local = local;
    // Peers may still hold our previous certificate (the map follows a rotation a little later, and a renewal
    // brings a new key): our next INIT to each carries the new chain, until a session confirms it arrived.
    this.handshaker.localChanged();
  }

  /** Handshake state held for others (now, and the most since start), for bounds in tests and logs. */
  handshakeStats(): HandshakeStats {
    return this.handshaker.stats();
  }

  addPeer(name: string, endpoint?: Endpoint, persistent = true): Peer {
    let peer = this.peers.get(name);
    if (!peer) {
      peer = new Peer(name, endpoint, persistent, this.now());
      this.peerTable.set(name, peer);
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
    this.peerTable.delete(name);
    this.handshaker.chainDelivered(name);
  }

  private count(reason: string): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
    const now = this.now();
    if (now - this.lastDropLog > NOISE_DROP_LOG_INTERVAL_MS) {
      this.lastDropLog = now;
      this.opts.log.debug({ reason, drops: Object.fromEntries(this.drops), handshakes: this.handshaker.stats() }, "dropped datagram");
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
      case PACKET.HANDSHAKE_INIT:
      case PACKET.HANDSHAKE_RESP:
      case PACKET.HANDSHAKE_FINAL:
      case PACKET.COOKIE_REPLY: return this.handshaker.receive(data, from);
      case PACKET.TUN_DATA: return this.opts.mirror ? this.opts.mirror.tunData(data, from) : this.count("tun_data_without_tun");
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
    if (keypair.tooOld(now, this.timers)) return this.count("expired_key");
    const counter = readCounter(data);
    if (!keypair.replay.check(counter)) return this.count("replay");
    const plainLen = keypair.receiver.open(counter, data.subarray(DATA_HEADER_SIZE), this.scratch);
    if (plainLen < 0) return this.count("decrypt_failed");
    keypair.replay.update(counter);
    if (!keypair.confirmed) {
      if (!peer.confirmed) {
        this.opts.log.info({ peer: peer.name, endpoint: describeEndpoint(from) }, "session established (confirmed by the peer)");
        this.opts.onEvent?.({ type: "session_up", peer: peer.name, endpoint: describeEndpoint(from), initiator: true });
      }
      keypair.confirmed = true;
      this.confirmed(peer);
      this.opts.mirror?.keysConfirmed(peer, keypair);
    }
    peer.lastReceivedAt = now;
    if (from.kind === "udp") { peer.lastDirectRxAt = now; peer.lastDirectRxFrom = from; } else peer.lastRelayRxAt = now;
    peer.stats.rxPackets++;
    peer.stats.rxBytes += data.length;
    // Roaming: without a path manager the session follows an authenticated packet to a new source (a NAT
    // rebinding, a new port). With one, the path manager alone moves the path; it hears of the new source.
    if (!sameEndpoint(peer.endpoint, from)) {
      if (!this.pathsManaged) {
        this.opts.log.info({ peer: peer.name, from: describeEndpoint(peer.endpoint), to: describeEndpoint(from) }, "peer endpoint changed");
        this.moveTo(peer, from);
      } else if (from.kind === "udp") {
        this.pathOwner?.onDirectRx?.(peer, from);
      } else {
        this.pathOwner?.onRelayRx?.(peer);
      }
    }
    if (plainLen === 0) return this.count("empty_payload");
    const kind = this.scratch[0];
    if (isActivityKind(kind)) this.touch(peer, now);
    if (!this.inner.dispatch(kind, peer, from, this.scratch.subarray(1, plainLen))) this.unhandledInner(peer, kind);
  }

  /** Seals an inner message in the peer's session and sends it over exactly this endpoint (path probes). */
  sendVia(name: string, endpoint: Endpoint, innerType: number, payload: Uint8Array): boolean {
    const peer = this.peers.get(name);
    const kp = peer && this.usableKeypair(peer);
    if (!peer || !kp) return false;
    this.sealInner(peer, kp, innerType, payload, endpoint);
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
    this.moveTo(peer, endpoint);
    // No session yet: the handshake waiting out its backoff on the old path retries on the new one now.
    if (!peer.current) peer.nextAttemptAt = 0;
    this.unblock(peer);
  }

  /** The one place a peer's path changes (the TUN data plane follows it). */
  private moveTo(peer: Peer, endpoint: Endpoint): void {
    peer.followPath(endpoint);
    this.opts.mirror?.pathChanged(peer);
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

  // ---------------------------------------------------------------- handshake: responder

  // ---------------------------------------------------------------- handshake: initiator

  /** An inner kind nobody here handles: counted, and logged naming the peer's version (invariant 10). */
  private unhandledInner(peer: Peer, kind: number): void {
    const name = innerName(kind);
    this.count(`unhandled_inner_${name}`);
    const n = this.unknownInner.note(peer.name, name, this.now());
    if (n.log) {
      this.opts.log.warn({ peer: peer.name, kind: name, count: n.count, peerVersion: describeVersion(peer.version?.protocol ?? 1, peer.version?.software) },
        "dropped an inner message of a kind this node does not know (the peer is newer, or garbled)");
    }
  }

  private install(peer: Peer, keypair: Keypair, identity: Identity, from: Endpoint, keys: { sendKey: Uint8Array; recvKey: Uint8Array; version: PeerVersion }): void {
    if (this.opts.mirror) keypair.tunKeys = { send: tunKey(keys.sendKey), recv: tunKey(keys.recvKey) };
    const wasUp = !!peer.current;
    if (peer.current) peer.retired.unshift(peer.current);
    for (const old of peer.retired.splice(MAX_RETIRED)) this.forgetKeypair(peer, old.localIndex);
    peer.current = keypair;
    this.keypairs.set(keypair.localIndex, { peer, keypair });
    peer.identity = identity;
    if (keys.version.protocol < OLDEST_COMPATIBLE_PROTOCOL && peer.version?.protocol !== keys.version.protocol) {
      this.opts.log.warn({ peer: peer.name, peerVersion: describeVersion(keys.version.protocol, keys.version.software) },
        "peer speaks a protocol older than this release's compatibility window (N-1): upgrade it");
    }
    peer.version = keys.version;
    // Without a path manager the handshake's source is the path. With one, it decides: a peer with no path at all
    // is offered the source; a peer it does not track (a static peer) takes it here.
    if (!this.pathsManaged) this.moveTo(peer, from);
    else if (!peer.endpoint) this.pathOwner?.adoptPath?.(peer, from);
    else if (from.kind === "udp" && !sameEndpoint(peer.endpoint, from)) this.pathOwner?.onDirectRx?.(peer, from);
    if (!peer.endpoint) this.moveTo(peer, from);
    peer.revoked = false;
    if (!keypair.isInitiator) this.confirmed(peer);
    const now = this.now();
    peer.lastReceivedAt = now;
    if (from.kind === "udp") { peer.lastDirectRxAt = now; peer.lastDirectRxFrom = from; } else peer.lastRelayRxAt = now;
    peer.stats.handshakes++;
    peer.stats.lastHandshakeAt = now;
    if (!wasUp) peer.stats.sessionSince = now;
    // An initiator's keys are confirmed only when something authenticates under them (the responder may still
    // refuse our final message): until then the peer is "handshaking", not "connected".
    const msg = wasUp ? "session rekeyed" : keypair.isInitiator ? "handshake answered: session keys installed, waiting for the peer to confirm" : "session established";
    this.opts.log.info({ peer: peer.name, identity: identity.spiffeId, endpoint: describeEndpoint(from), rekey: wasUp, initiator: keypair.isInitiator,
      peerVersion: describeVersion(keys.version.protocol, keys.version.software) }, msg);
    this.opts.mirror?.keysInstalled(peer, keypair);
    if (!wasUp && !keypair.isInitiator) this.opts.onEvent?.({ type: "session_up", peer: peer.name, endpoint: describeEndpoint(from), initiator: false });
    const queued = peer.queue.splice(0);
    for (const p of queued) this.sendSealed(peer, keypair, p);
    this.unblock(peer);
  }

  /** The peer holds the same keys as we do: the handshake is over, whatever happened before it. */
  private confirmed(peer: Peer): void {
    this.handshaker.chainDelivered(peer.name);
    peer.attempts = 0;
    peer.unanswered = 0;
    peer.refusal = undefined;
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
    if (kp) {
      this.sendInnerSealed(peer, kp, innerType, payload);
      return "sent";
    }
    const plain = Buffer.allocUnsafe(1 + payload.length);
    plain[0] = innerType;
    plain.set(payload, 1);
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

  /**
   * The keypair to seal with: the newest, except that an initiator's new keys wait for the peer's confirmation
   * while the previous ones still work. The responder has the new keys only once our final message arrived,
   * and data may overtake it (final through a relay, data direct); it answers the final at once.
   */
  private usableKeypair(peer: Peer): Keypair | undefined {
    const kp = peer.current;
    if (!kp || !peer.endpoint) return undefined;
    const previous = peer.retired[0];
    if (!kp.confirmed && previous?.confirmed && this.canSealWith(previous)) return previous;
    return this.canSealWith(kp) ? kp : undefined;
  }

  private canSealWith(kp: Keypair): boolean {
    return kp.canSeal(this.now(), this.timers);
  }

  private sendSealed(peer: Peer, kp: Keypair, plain: Uint8Array): void {
    if (!peer.endpoint) return;
    const out = Buffer.allocUnsafe(DATA_HEADER_SIZE + plain.length + TAG_SIZE);
    out.set(plain, DATA_HEADER_SIZE);
    this.sealedOnPath(peer, this.sealInPlace(peer, kp, out, plain.length, peer.endpoint));
  }

  /** Data on the peer's current path: kind and payload written once into the datagram buffer, sealed there. */
  private sendInnerSealed(peer: Peer, kp: Keypair, kind: number, payload: Uint8Array): void {
    if (!peer.endpoint) return;
    this.sealedOnPath(peer, this.sealInner(peer, kp, kind, payload, peer.endpoint));
  }

  /** After a datagram went out on the current path: the same ciphertext on the shadow path too. */
  private sealedOnPath(peer: Peer, out: Buffer): void {
    peer.lastPathSentAt = peer.lastSentAt;
    // The receiver's replay window takes the first copy.
    if (peer.shadow) {
      this.opts.send(peer.shadow, out);
      peer.stats.txPackets++;
      peer.stats.txBytes += out.length;
    }
  }

  /** Kind byte and payload written once into the datagram buffer and sealed there: one buffer per packet. */
  private sealInner(peer: Peer, kp: Keypair, kind: number, payload: Uint8Array, endpoint: Endpoint): Buffer {
    const out = Buffer.allocUnsafe(DATA_HEADER_SIZE + 1 + payload.length + TAG_SIZE);
    out[DATA_HEADER_SIZE] = kind;
    out.set(payload, DATA_HEADER_SIZE + 1);
    return this.sealInPlace(peer, kp, out, 1 + payload.length, endpoint);
  }

  /** out holds the plaintext (plainLen bytes) after the header; every AEAD backend seals exactly in place. */
  private sealInPlace(peer: Peer, kp: Keypair, out: Buffer, plainLen: number, endpoint: Endpoint): Buffer {
    const counter = kp.sendCounter++;
    writeDataHeader(out, kp.remoteIndex, counter);
    kp.sender.seal(counter, out.subarray(DATA_HEADER_SIZE, DATA_HEADER_SIZE + plainLen), out, DATA_HEADER_SIZE);
    this.opts.send(endpoint, out);
    const now = this.now();
    peer.lastSentAt = now;
    peer.stats.txPackets++;
    peer.stats.txBytes += out.length;
    // At rest (a hold, or the answer to one) no send starts a handshake: keys may expire instead.
    if (kp.isInitiator && !peer.initiation && kp.dueForRekey(now, this.timers) && !isIdle(peer.lastDataAt, now, this.timers)) {
      this.initiate(peer, "rekey");
    }
    return out;
  }

  /** Starts (or restarts) a handshake with the peer, as initiator (handshaker.ts). */
  initiate(peer: Peer, why: string): void {
    this.handshaker.initiate(peer, why);
  }

  private forgetKeypair(peer: Peer, localIndex: number): void {
    this.keypairs.delete(localIndex);
    this.opts.mirror?.keysForgotten(peer, localIndex);
  }

  private dropKeys(peer: Peer, why: string): void {
    const wasUp = !!peer.current;
    for (const kp of [peer.current, ...peer.retired]) if (kp) this.forgetKeypair(peer, kp.localIndex);
    peer.current = undefined;
    peer.retired = [];
    this.handshaker.abandon(peer);
    if (wasUp) {
      this.opts.log.info({ peer: peer.name, why }, "session closed");
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
      while (peer.retired.length && peer.retired[peer.retired.length - 1].tooOld(now, t)) {
        this.forgetKeypair(peer, peer.retired.pop()!.localIndex);
      }
      // At rest (no application data for idleAfterMs) no timer sends anything: no keepalive, no dead-peer
      // check, no time-based rekey, no reconnect. Keys may expire; the next datagram starts a handshake.
      const idle = isIdle(peer.lastDataAt, now, t);
      const kp = peer.current;
      // Silence is counted from the wake-up at the earliest: a rest is not a dead peer.
      const heardAt = Math.max(peer.lastReceivedAt, peer.activeSince);
      if (kp && kp.tooOld(now, t)) this.dropKeys(peer, idle ? "keys expired at rest" : "keys expired");
      else if (kp && !idle && now - heardAt > t.deadAfterMs) this.dropKeys(peer, `no authenticated packet for ${Math.round((now - peer.lastReceivedAt) / 1000)}s`);
      else if (kp && !kp.confirmed && now - kp.createdAt > t.handshakeTimeoutMs && !peer.initiation) {
        // Our final message may have been lost, or the responder refused it (silently): it never confirmed.
        peer.unanswered++;
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
      // An INIT of ours that went unanswered while a session came up the other way (both sides started at once)
      // or while the peer went to rest is over: left pending, it kept the timers fast at rest for good.
      if (peer.initiation && now - peer.initiation.startedAt >= t.handshakeTimeoutMs && (idle || peer.current?.confirmed)) {
        if (!peer.current) peer.unanswered++;
        this.handshaker.abandon(peer);
      }
      busy ||= !idle || !!peer.initiation || peer.queue.length > 0 || (!!peer.current && !peer.current.confirmed);
    }
    // Responses nobody finished within the handshake timeout are forgotten (and reassembly expires).
    const responding = this.handshaker.tick(now);
    return busy || responding;
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
    return this.pinger.ping(peer, timeoutMs);
  }
}
