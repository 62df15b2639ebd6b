// The session device: every peer's Noise handshakes, transport keys, timers and counters. It is
// transport-agnostic: datagrams come in through receive(data, from) and go out through the send
// callback, so one device serves the UDP socket and the relay alike (the path is not the session).
import { parseCertificate, rawPublicKey, type Identity, type Verifier } from "../pki/index.js";
import {
  COOKIE_MAX_AGE_MS, DATA_HEADER_SIZE, HANDSHAKE_INIT_BURST, HANDSHAKE_INIT_BURST_PER_SOURCE, HANDSHAKE_INIT_RATE_PER_S,
  HANDSHAKE_INIT_RATE_PER_SOURCE_PER_S, INNER, MAX_DATAGRAM, MIN_DATA_PACKET, MIN_HANDSHAKE_FINAL_MESSAGE, MIN_HANDSHAKE_RESP_MESSAGE,
  PACKET, TAG_SIZE,
  CookieChecker, HandshakeError, Initiator, Responder, TimestampGuard, TransportCipher, claimSignatureHolds, encodeHandshake,
  encodeInitMessage, initMacs, mac1Key, nextTimestamp, openClaim, openCookieReply, parseCookieReply, parseHandshake, parseInitMessage,
  readCounter, readReceiverIndex, responderKey, sealClaim, signClaim, writeDataHeader, writeInitMacs, type InitClaim, type LocalIdentity,
} from "./crypto-adapter.js";
import { describeEndpoint, endpointKey, sameEndpoint, type Endpoint } from "../addr/endpoint.js";
import { IndexTable } from "./index-table.js";
import { Keypair } from "./keypair.js";
import { Peer } from "./peer.js";
import type { SessionEvent } from "./session-events.js";
import { MAX_PENDING_RESPONSES, type PendingResponse } from "./handshakes.js";
import { DEFAULT_TIMERS, isIdle, type SessionTimers } from "./timers.js";
import { HandshakeRateLimiter } from "./rate-limit.js";
import { InnerRegistry, innerName, isActivityKind } from "./inner.js";
import { Reassembler } from "./reassembly.js";
import { sourceKey } from "../addr/source-key.js";
import type { HandshakeFragment } from "../wire/handshake-frame.js";
import { AdaptiveTicker } from "./ticker.js";
import type { RestClock } from "../clock/rest-clock.js";
import { tunKey } from "../crypto/tun-keys.js";

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  /** Whether lines of that level are written (pino's); without it, every level counts as written. */
  isLevelEnabled?(level: string): boolean;
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
  /** Sessions confirmed and handshakes refused, for the node's event bus. */
  onEvent?: (e: SessionEvent) => void;
  /**
   * A peer's leaf certificate (DER) as the coordination server's peer map gives it. With it the node checks
   * a peer's INIT claim without the peer sending its certificate, and sends none in its own INITs to that peer
   * (the map gives the peer ours). Static peers have none: their INITs carry the certificate.
   */
  peerCertificate?: (name: string) => Uint8Array | undefined;
  /** Mirrors of the session state for the TUN data plane (src/node/native-plane.ts); absent without TUN. */
  mirror?: SessionMirror;
  now?: () => number;
  /** The node's one periodic timer: the rest tick runs on its beat, with the node's other periodic work. */
  restClock?: RestClock;
}

/**
 * What the TUN data plane mirrors from the device: keypairs (with their raw transport keys, from which it
 * derives its own) as they are installed and forgotten, each peer's path as it moves, and TUN_DATA packets
 * that reached the device (over the relay). The device stays the one owner of all of it.
 */
export interface SessionMirror {
  /** A new keypair of the peer, with its TUN keys (Keypair.tunKeys) set. */
  keysInstalled(peer: Peer, keypair: Keypair): void;
  /** An initiator's keypair that the peer confirmed: from now on it sends (see usableKeypair). */
  keysConfirmed(peer: Peer, keypair: Keypair): void;
  keysForgotten(peer: Peer, localIndex: number): void;
  pathChanged(peer: Peer): void;
  tunData(data: Buffer, from: Endpoint): void;
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
/** Handshake refusals whose reason is about the peer (its certificate, its identity), not about garbled bytes. */
const TRANSPORT_FAILURES = new Set(["decrypt_failed", "malformed", "out_of_order"]);
const KEEPALIVE_PLAIN = Buffer.from([INNER.KEEPALIVE]);

/** A key an INIT claim may be signed with, and why its certificate is refused (if it is). */
interface Claimant { key: Uint8Array; reason?: string; detail?: string }

/** What the node holds for handshakes others started: now, and the most at any time (peak). */
export interface HandshakeStats {
  pendingResponses: number;
  reassembling: number;
  reassemblyBytes: number;
  underLoad: boolean;
  peak: { pendingResponses: number; reassembling: number; reassemblyBytes: number };
}

/** What the path layer learns from the device (src/nat/paths.ts owns the peers' paths once attached). */
export interface PathOwner {
  /**
   * The peer had been idle and application data now moves (sent or received). Called before the datagram
   * that woke it is sealed, so a shadow path set here already carries it.
   */
  onWake(peer: Peer): void;
  /**
   * An authenticated packet arrived from a direct address other than the current path. The path owner decides
   * (it learns the address as a candidate and probes it); the session never moves itself (one owner, one setter).
   */
  onDirectRx?(peer: Peer, from: Endpoint): void;
  /** A session came up from `from` while the peer has no path at all: the owner makes it the path (or not). */
  adoptPath?(peer: Peer, from: Endpoint): void;
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
  /** Newest INIT claim timestamp accepted per identity: a replayed INIT gets no answer (docs/crypto.md). */
  private readonly initTimestamps = new TimestampGuard();
  /** mac1, the load meter and cookies: what runs on an INIT before anything else. */
  private readonly cookies: CookieChecker;
  private readonly reassembly = new Reassembler(undefined, (why) => this.count(`handshake_fragment_${why}`));
  /** This node's name and the SHA-256 of the root CA its certificate chains to (the mac1 key of its INITs). */
  private ownName = "";
  /** Peers whose next INITs carry our whole chain whatever else we think they know (after our rotation). */
  private readonly chainOwed = new Set<string>();
  private ownRoot: Uint8Array = new Uint8Array(32);

  constructor(private readonly opts: DeviceOptions) {
    this.timers = { ...DEFAULT_TIMERS, ...opts.timers };
    this.now = opts.now ?? Date.now;
    this.cookies = new CookieChecker([], this.now(), this.timers.handshakeUnderLoadPerS);
    this.refreshLocal();
    this.ticker = new AdaptiveTicker(() => this.tick(), this.timers.tickMs, Math.max(this.timers.tickMs, this.timers.restTickMs), opts.restClock);
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
    this.refreshLocal();
    // Peers may still hold our previous certificate (the map follows a rotation a little later, and a renewal
    // brings a new key): our next INIT to each carries the new chain, until a session confirms it arrived.
    for (const name of this.peers.keys()) this.chainOwed.add(name);
  }

  /** Our name, our root, and the responder key of each root we trust (mac1 of INITs to us may use any). */
  private refreshLocal(): void {
    const { verifier, local } = this.opts;
    const roots = verifier.rootFingerprints();
    const r = verifier.verifyChain(local.certChainDer);
    if (r.ok) {
      this.ownName = r.identity.name;
      this.ownRoot = Buffer.from(r.chain[r.chain.length - 1].fingerprint, "hex");
    } else {
      // Our own certificate does not verify (expired, ...): peers will refuse it and say why; still name ourselves.
      try { this.ownName = parseCertificate(local.certChainDer[0]).commonName ?? ""; } catch { this.ownName = ""; }
      this.ownRoot = roots[0];
    }
    this.cookies.setResponders(roots.map((fp) => responderKey(fp, this.ownName)));
  }

  /** Handshake state held for others (now, and the most since start), for bounds in tests and logs. */
  handshakeStats(): HandshakeStats {
    const now = { pendingResponses: this.responses.size, reassembling: this.reassembly.size, reassemblyBytes: this.reassembly.bufferedBytes };
    const p = this.statsPeak;
    p.pendingResponses = Math.max(p.pendingResponses, now.pendingResponses);
    p.reassembling = Math.max(p.reassembling, now.reassembling);
    p.reassemblyBytes = Math.max(p.reassemblyBytes, now.reassemblyBytes);
    return { ...now, underLoad: this.cookies.underLoad(this.now()), peak: { ...p } };
  }

  private readonly statsPeak = { pendingResponses: 0, reassembling: 0, reassemblyBytes: 0 };
  private lastStatsLog = 0;
  private lastStatsLine = "";

  /** At most once a second, when it changed: what the node holds for handshakes others started (debug). */
  private logHandshakeStats(now: number): void {
    // At info level (the default) the line is never written: no stats object and no JSON on every tick.
    if (now - this.lastStatsLog < 1_000 || this.opts.log.isLevelEnabled?.("debug") === false) return;
    const stats = this.handshakeStats();
    const line = JSON.stringify(stats);
    if (line === this.lastStatsLine) return;
    this.lastStatsLine = line;
    this.lastStatsLog = now;
    this.opts.log.debug({ handshakes: stats }, "handshake state");
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
    this.chainOwed.delete(name);
  }

  private count(reason: string): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
    const now = this.now();
    if (now - this.lastDropLog > NOISE_DROP_LOG_INTERVAL_MS) {
      this.lastDropLog = now;
      this.opts.log.debug({ reason, drops: Object.fromEntries(this.drops), handshakes: this.handshakeStats() }, "dropped datagram");
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
      case PACKET.COOKIE_REPLY: return this.receiveCookieReply(data, from);
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
      }
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

  /**
   * An INIT datagram, in stage order (docs/crypto.md): frame -> mac1 -> under load, mac2 or a cookie reply
   * -> reassembly -> rate limit -> the claim (who asks, signed) -> replay check -> only then Diffie-Hellman
   * and a RESP. Every refusal before the RESP is silent: counted, never answered.
   */
  private receiveInit(data: Buffer, from: Endpoint): void {
    const f = parseHandshake(data);
    if (!f.ok) return this.count(`handshake_${f.reason}`);
    const which = this.cookies.checkMac1(data);
    if (which < 0) return this.count("handshake_bad_mac1");
    const now = this.now();
    const source = endpointKey(from);
    if (this.cookies.noteInit(now) && !this.cookies.checkMac2(data, source, now)) {
      this.count("handshake_under_load");
      if (f.fragIndex === 0) this.opts.send(from, this.cookies.reply(data, f.senderIndex, source, which, now));
      return;
    }
    const message = this.reassemble(f, `i/${source}/${f.senderIndex}`, from, now);
    if (message) {
      if (!this.initLimiter.allow(sourceHost(from), now)) return this.count("handshake_rate_limited");
      this.answerInit(message, f.senderIndex, which, from, now);
    }
    this.handshakeStats(); // keeps the peaks
  }

  /** The whole message of a fragment: at once for a message of one fragment, else when its last fragment arrives. */
  private reassemble(f: HandshakeFragment, key: string, from: Endpoint, now: number): Uint8Array | undefined {
    if (f.fragCount === 1) return f.chunk;
    const r = this.reassembly.add(key, sourceHost(from), f.fragIndex, f.fragCount, f.chunk, now);
    if (r === "pending") return undefined;
    if (typeof r === "string") {
      this.count(`handshake_fragment_${r}`);
      return undefined;
    }
    return r;
  }

  private answerInit(message: Uint8Array, senderIndex: number, which: number, from: Endpoint, now: number): void {
    const init = parseInitMessage(message);
    if (!init) return this.count("handshake_malformed");
    const claim = openClaim(this.cookies.responderKey(which), init.e, init.sealedClaim);
    if (!claim) return this.count("handshake_bad_claim");
    const peer = this.peers.get(claim.name);
    if (!peer) return this.count("handshake_unknown_peer");
    if (from.kind === "relay" && from.peer !== claim.name) return this.count("handshake_relay_mismatch");
    if (peer.revoked) return this.count("handshake_revoked");
    // A replay is refused before the signature check (which it would pass): no public-key work for it at all.
    if ((this.initTimestamps.latest(claim.name) ?? -1) >= claim.ts) return this.count("handshake_stale_init");
    const candidates = this.claimants(peer, claim);
    if (!Array.isArray(candidates)) return this.count(`handshake_${candidates.reason}`);
    const who = candidates.find((c) => claimSignatureHolds(c.key, this.ownName, init.e, claim));
    if (!who) return this.count("handshake_bad_claim_signature");
    if (who.reason) {
      // The peer itself asked (its certificate key signed), and its certificate is not acceptable.
      this.refused(peer, who.reason, who.detail ?? "", from);
      return;
    }
    if (!this.initTimestamps.accept(claim.name, claim.ts)) return this.count("handshake_stale_init");
    if (this.responses.size >= MAX_PENDING_RESPONSES) this.expireOldestResponse();
    const responder = new Responder(this.opts.local, this.opts.verifier);
    let resp: Uint8Array;
    try {
      responder.readInit(init.e);
      resp = responder.writeResp();
    } catch (err) {
      return this.handshakeFailed(err, from, peer);
    }
    const pending: PendingResponse = { localIndex: 0, remoteIndex: senderIndex, responder, startedAt: now, from, claimed: claim.name };
    pending.localIndex = this.responses.allocate(pending);
    this.responseOrder.push(pending.localIndex);
    for (const frag of encodeHandshake(PACKET.HANDSHAKE_RESP, pending.localIndex, senderIndex, resp)) this.opts.send(from, frag);
  }

  /**
   * The public keys a claim's signature may be checked with, best first: the chain the claim carries (checked by
   * the verifier); else the peer map's certificate and the certificate of our last session with the peer (after
   * a peer's renewal the map may lag behind, or lead). `reason` when that certificate is not acceptable: the
   * claim is checked all the same, so that a refusal is recorded only when the peer itself asked.
   */
  private claimants(peer: Peer, claim: InitClaim): Claimant[] | { reason: string } {
    const { verifier } = this.opts;
    if (claim.chain) {
      const r = verifier.verifyChain(claim.chain);
      if (r.ok) return r.identity.name === claim.name ? [{ key: r.identity.publicKey }] : { reason: "claim_mismatch" };
      const key = leafKey(claim.chain[0], claim.name);
      return key ? [{ key, reason: r.reason, detail: r.detail }] : { reason: r.reason };
    }
    const out: Claimant[] = [];
    const der = this.opts.peerCertificate?.(claim.name);
    if (der) {
      const r = verifier.verifyChain([der]);
      if (r.ok && r.identity.name === claim.name) out.push({ key: r.identity.publicKey });
      else if (!r.ok && (r.reason === "revoked" || r.reason === "expired" || r.reason === "not_yet_valid")) {
        const key = leafKey(der, claim.name);
        if (key) out.push({ key, reason: r.reason, detail: r.detail });
      }
    }
    const id = peer.identity;
    if (id) {
      if (verifier.revocation.isRevoked(id.serial)) out.push({ key: id.publicKey, reason: "revoked", detail: `serial ${id.serial} is on revocation list #${verifier.revocation.number}` });
      else if (this.now() > id.notAfter.getTime() + verifier.skewMs) out.push({ key: id.publicKey, reason: "expired", detail: `certificate expired at ${id.notAfter.toISOString()}` });
      else out.push({ key: id.publicKey });
    }
    return out.length ? out : { reason: "no_certificate" };
  }

  private expireOldestResponse(): void {
    const idx = this.responseOrder.shift();
    if (idx !== undefined) this.responses.delete(idx);
    this.count("handshake_pending_overflow");
  }

  private receiveFinal(data: Buffer, from: Endpoint): void {
    const f = parseHandshake(data);
    if (!f.ok) return this.count(`handshake_${f.reason}`);
    const pending = this.responses.get(f.receiverIndex!);
    if (!pending || pending.remoteIndex !== f.senderIndex) return this.count("handshake_unknown_index");
    const message = this.reassemble(f, `f/${f.receiverIndex}/${f.senderIndex}`, from, this.now());
    if (!message) return;
    if (message.length < MIN_HANDSHAKE_FINAL_MESSAGE) return this.count("handshake_truncated");
    this.responses.delete(pending.localIndex);
    const claimed = this.peers.get(pending.claimed);
    let result;
    try {
      pending.responder.readFinal(message);
      result = pending.responder.result();
    } catch (err) {
      return this.handshakeFailed(err, from, claimed);
    }
    const identity = result.identity;
    if (identity.name !== pending.claimed) {
      this.count("handshake_claim_mismatch");
      this.opts.log.warn({ claimed: pending.claimed, identity: identity.spiffeId, from: describeEndpoint(from) }, "handshake refused: the final message is not from the identity the INIT claimed");
      return;
    }
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
    this.install(peer, keypair, identity, from, result);
    // Confirm at once so the initiator knows its final message arrived.
    this.sendKeepalive(peer);
  }

  // ---------------------------------------------------------------- handshake: initiator

  private receiveResp(data: Buffer, from: Endpoint): void {
    const f = parseHandshake(data);
    if (!f.ok) return this.count(`handshake_${f.reason}`);
    const peer = this.initiations.get(f.receiverIndex!);
    const pending = peer?.initiation;
    if (!peer || !pending || pending.localIndex !== f.receiverIndex) return this.count("handshake_unknown_index");
    const message = this.reassemble(f, `r/${f.receiverIndex}/${f.senderIndex}`, from, this.now());
    if (!message) return;
    if (message.length < MIN_HANDSHAKE_RESP_MESSAGE) return this.count("handshake_truncated");
    let final: Uint8Array;
    let identity: Identity;
    let result;
    try {
      pending.initiator.readResp(message);
      final = pending.initiator.writeFinal();
      result = pending.initiator.result();
      identity = result.identity;
    } catch (err) {
      // Garbled bytes leave the initiation waiting for the genuine answer (the Noise state is untouched);
      // a refused certificate ends it.
      if (!(err instanceof HandshakeError && TRANSPORT_FAILURES.has(err.reason))) this.abandonInitiation(peer);
      return this.handshakeFailed(err, from, peer);
    }
    if (identity.name !== peer.name) {
      this.abandonInitiation(peer);
      this.refused(peer, "wrong_peer", `the responder is ${identity.name}`, from);
      return;
    }
    for (const frag of encodeHandshake(PACKET.HANDSHAKE_FINAL, pending.localIndex, f.senderIndex, final)) this.opts.send(from, frag);
    this.initiations.delete(pending.localIndex);
    peer.initiation = undefined;
    const keypair = new Keypair(pending.localIndex, f.senderIndex, new TransportCipher(result.sendKey), new TransportCipher(result.recvKey), true, this.now());
    this.install(peer, keypair, identity, from, result);
  }

  /** The responder is under load: take its cookie and send the same INIT again, now with mac2 (once per INIT). */
  private receiveCookieReply(data: Buffer, from: Endpoint): void {
    const c = parseCookieReply(data);
    if (!c.ok) return this.count(`cookie_${c.reason}`);
    const peer = this.initiations.get(c.receiverIndex);
    const pending = peer?.initiation;
    if (!peer || !pending || pending.localIndex !== c.receiverIndex) return this.count("cookie_unknown_index");
    if (pending.cookieTaken) return this.count("cookie_unexpected");
    const cookie = openCookieReply(c, pending.responderKey, pending.mac1);
    if (!cookie) return this.count("cookie_decrypt_failed");
    pending.cookieTaken = true;
    peer.cookie = { value: cookie, receivedAt: this.now() };
    this.opts.log.debug({ peer: peer.name, from: describeEndpoint(from) }, "handshake cookie received: the peer is under load; sending the INIT again with mac2");
    const key = mac1Key(pending.responderKey);
    for (const frag of pending.fragments) {
      const again = Buffer.from(frag);
      writeInitMacs(again, key, cookie);
      this.opts.send(from, again);
    }
  }

  /** This node refused a peer's handshake: counted, logged with the reason, and shown as the peer's state. */
  private refused(peer: Peer, reason: string, detail: string, from: Endpoint): void {
    this.count(`handshake_${reason}`);
    peer.refusal = { reason, detail, at: this.now() };
    this.opts.log.warn({ reason, detail, peer: peer.name, from: describeEndpoint(from) }, "handshake refused");
    this.opts.onEvent?.({ type: "handshake_refused", peer: peer.name, reason, detail, from: describeEndpoint(from) });
  }

  private handshakeFailed(err: unknown, from: Endpoint, peer?: Peer): void {
    const reason = err instanceof HandshakeError ? err.reason : "malformed";
    const detail = err instanceof HandshakeError ? err.detail : (err as Error).message;
    if (peer && !TRANSPORT_FAILURES.has(reason)) return this.refused(peer, reason, detail, from);
    this.count(`handshake_${reason}`);
    this.opts.log.warn({ reason, detail, peer: peer?.name, from: describeEndpoint(from) }, "handshake refused");
    this.opts.onEvent?.({ type: "handshake_refused", peer: peer?.name, reason, detail, from: describeEndpoint(from) });
  }

  private install(peer: Peer, keypair: Keypair, identity: Identity, from: Endpoint, keys: { sendKey: Uint8Array; recvKey: Uint8Array }): void {
    if (this.opts.mirror) keypair.tunKeys = { send: tunKey(keys.sendKey), recv: tunKey(keys.recvKey) };
    const wasUp = !!peer.current;
    if (peer.current) peer.retired.unshift(peer.current);
    for (const old of peer.retired.splice(MAX_RETIRED)) this.forgetKeypair(peer, old.localIndex);
    peer.current = keypair;
    this.keypairs.set(keypair.localIndex, { peer, keypair });
    peer.identity = identity;
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
    // An initiator's keys are confirmed only when something authenticates under them (the responder may still
    // refuse our final message): until then the peer is "handshaking", not "connected".
    const msg = wasUp ? "session rekeyed" : keypair.isInitiator ? "handshake answered: session keys installed, waiting for the peer to confirm" : "session established";
    this.opts.log.info({ peer: peer.name, identity: identity.spiffeId, endpoint: describeEndpoint(from), rekey: wasUp, initiator: keypair.isInitiator }, msg);
    this.opts.mirror?.keysInstalled(peer, keypair);
    if (!wasUp && !keypair.isInitiator) this.opts.onEvent?.({ type: "session_up", peer: peer.name, endpoint: describeEndpoint(from), initiator: false });
    const queued = peer.queue.splice(0);
    for (const p of queued) this.sendSealed(peer, keypair, p);
    this.unblock(peer);
  }

  /** The peer holds the same keys as we do: the handshake is over, whatever happened before it. */
  private confirmed(peer: Peer): void {
    this.chainOwed.delete(peer.name);
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

  /**
   * Sends an INIT: e, and the claim (our name, a timestamp, our certificate key's signature over the
   * responder's name, e and the timestamp; our certificate when the responder may lack it), sealed and MACed
   * for the responder (docs/crypto.md). A retry carries the whole chain; a cookie the peer gave us recently
   * goes in mac2.
   */
  initiate(peer: Peer, why: string): void {
    if (peer.revoked || !peer.endpoint) return;
    const now = this.now();
    if (peer.initiation) {
      if (now - peer.initiation.startedAt >= this.timers.handshakeTimeoutMs) peer.unanswered++;
      this.abandonInitiation(peer);
    }
    const { local } = this.opts;
    const initiator = new Initiator(local, this.opts.verifier);
    const retry = peer.attempts > 0;
    let fragments: Buffer[];
    let rk: Uint8Array;
    const localIndex = this.initiations.allocate(peer);
    try {
      const e = initiator.writeInit();
      rk = responderKey(this.ownRoot, peer.name);
      const ts = nextTimestamp();
      const known = this.opts.peerCertificate?.(peer.name) !== undefined;
      const chain = retry || this.chainOwed.has(peer.name) ? local.certChainDer : known ? undefined : [local.certChainDer[0]];
      const claim: InitClaim = { name: this.ownName, ts, sig: signClaim(local.certPrivateKey, peer.name, e, ts), chain };
      fragments = encodeHandshake(PACKET.HANDSHAKE_INIT, localIndex, undefined, encodeInitMessage(e, sealClaim(rk, e, claim)));
    } catch (err) {
      this.initiations.delete(localIndex);
      this.opts.log.warn({ peer: peer.name, err: (err as Error).message }, "cannot start handshake");
      return;
    }
    const cookie = peer.cookie && now - peer.cookie.receivedAt < COOKIE_MAX_AGE_MS ? peer.cookie.value : undefined;
    const key = mac1Key(rk);
    for (const frag of fragments) writeInitMacs(frag, key, cookie);
    peer.initiation = {
      localIndex, initiator, startedAt: now, peerName: peer.name, fragments, mac1: Buffer.from(initMacs(fragments[0]).mac1), responderKey: rk, cookieTaken: false,
    };
    peer.attempts++;
    const backoff = Math.min(this.timers.handshakeTimeoutMs * 2 ** Math.min(peer.attempts - 1, 10), this.timers.handshakeBackoffMaxMs);
    peer.nextAttemptAt = now + backoff;
    this.opts.log.debug({ peer: peer.name, why, attempt: peer.attempts, endpoint: describeEndpoint(peer.endpoint), fragments: fragments.length }, "handshake initiation");
    for (const frag of fragments) this.opts.send(peer.endpoint, frag);
  }

  private forgetKeypair(peer: Peer, localIndex: number): void {
    this.keypairs.delete(localIndex);
    this.opts.mirror?.keysForgotten(peer, localIndex);
  }

  private abandonInitiation(peer: Peer): void {
    if (peer.initiation) this.initiations.delete(peer.initiation.localIndex);
    peer.initiation = undefined;
  }

  private dropKeys(peer: Peer, why: string): void {
    const wasUp = !!peer.current;
    for (const kp of [peer.current, ...peer.retired]) if (kp) this.forgetKeypair(peer, kp.localIndex);
    peer.current = undefined;
    peer.retired = [];
    this.abandonInitiation(peer);
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
        this.abandonInitiation(peer);
      }
      busy ||= !idle || !!peer.initiation || peer.queue.length > 0 || (!!peer.current && !peer.current.confirmed);
    }
    this.reassembly.expire(now);
    this.logHandshakeStats(now);
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
        reject(new Error(`no pong from ${name} within ${timeoutMs} ms (state: ${peer.describeState()})`));
      }, timeoutMs);
      this.pings.set(key, { sentAt: performance.now(), resolve, timer });
      if (this.sendInner(peer, INNER.PING, id) === "full") {
        clearTimeout(timer);
        this.pings.delete(key);
        reject(new Error(`cannot ping ${name}: its send queue is full (state: ${peer.describeState()})`));
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

/**
 * What rate limits and reassembly bounds count per: the source address (an IPv4 address, the /64 of an IPv6
 * one: the connection guard's rule), not the port; on a relay, the relay path (its sender is authenticated).
 */
function sourceHost(from: Endpoint): string {
  return from.kind === "udp" ? sourceKey(from.host) : endpointKey(from);
}

/** The raw Ed25519 key of a leaf certificate named `name`, without verifying it (undefined if it is not one). */
function leafKey(der: Uint8Array, name: string): Uint8Array | undefined {
  try {
    const c = parseCertificate(der);
    return c.commonName === name ? rawPublicKey(c.native.publicKey) : undefined;
  } catch {
    return undefined;
  }
}
