// The handshakes of a device (src/session/device.ts): the responder's stages for INIT and FINAL, the initiator's
// INIT, RESP and cookie handling, the state they hold for others (pending responses, reassembly, rate limits,
// cookies, replay timestamps) and its bounds. It reaches the device through a narrow host: the peers, the
// counters, the send callback, and install() once keys are agreed.
import { parseCertificate, rawPublicKey, type Identity } from "../pki/index.js";
import {
  COOKIE_MAX_AGE_MS, HANDSHAKE_INIT_BURST, HANDSHAKE_INIT_BURST_PER_SOURCE, HANDSHAKE_INIT_RATE_PER_S, HANDSHAKE_INIT_RATE_PER_SOURCE_PER_S,
  MIN_HANDSHAKE_FINAL_MESSAGE, MIN_HANDSHAKE_RESP_MESSAGE, PACKET,
  CookieChecker, HandshakeError, Initiator, Responder, TimestampGuard, TransportCipher, claimSignatureHolds, encodeHandshake,
  encodeInitMessage, initMacs, mac1Key, nextTimestamp, openClaim, openCookieReply, parseCookieReply, parseHandshake, parseInitMessage,
  responderKey, sealClaim, signClaim, writeInitMacs, type InitClaim, type LocalIdentity, type PeerVersion,
} from "./crypto-adapter.js";
import { describeEndpoint, endpointKey, type Endpoint } from "../addr/endpoint.js";
import { sourceKey } from "../addr/source-key.js";
import type { HandshakeFragment } from "../wire/handshake-frame.js";
import type { DeviceOptions, HandshakeStats } from "./device-types.js";
import { MAX_PENDING_RESPONSES, type PendingResponse } from "./handshakes.js";
import { IndexTable } from "./index-table.js";
import { Keypair } from "./keypair.js";
import type { Peer } from "./peer.js";
import { HandshakeRateLimiter } from "./rate-limit.js";
import { Reassembler } from "./reassembly.js";
import type { SessionTimers } from "./timers.js";

/** Handshake failures that say nothing about the peer (garbled bytes): they never become a refusal. */
const TRANSPORT_FAILURES = new Set(["decrypt_failed", "malformed", "out_of_order"]);

interface Claimant { key: Uint8Array; reason?: string; detail?: string }

/** What the handshakes need of their device. */
export interface HandshakeHost {
  readonly opts: Pick<DeviceOptions, "verifier" | "peerCertificate" | "log" | "onEvent">;
  readonly timers: SessionTimers;
  readonly peers: ReadonlyMap<string, Peer>;
  /** Our identity now (a rotation replaces it). */
  local(): LocalIdentity;
  now(): number;
  count(reason: string): void;
  send(to: Endpoint, data: Uint8Array): void;
  /** Keys agreed: the device installs them (and the session starts on them). */
  install(peer: Peer, keypair: Keypair, identity: Identity, from: Endpoint, keys: { sendKey: Uint8Array; recvKey: Uint8Array; version: PeerVersion }): void;
  /** The responder confirms a FINAL at once, so the initiator knows it arrived. */
  sendKeepalive(peer: Peer): void;
}

export class Handshaker {
  private readonly initiations = new IndexTable<Peer>();
  private readonly responses = new IndexTable<PendingResponse>();
  private readonly responseOrder: number[] = [];
  private readonly timestamps = new TimestampGuard();
  /** Newest INIT claim timestamp accepted per identity: a replayed INIT gets no answer (docs/crypto.md). */
  private readonly initTimestamps = new TimestampGuard();
  /** mac1, the load meter and cookies: what runs on an INIT before anything else. */
  private readonly cookies: CookieChecker;
  private readonly reassembly: Reassembler;
  private readonly initLimiter: HandshakeRateLimiter;
  /** This node's name and the SHA-256 of the root CA its certificate chains to (the mac1 key of its INITs). */
  private ownName = "";
  private ownRoot: Uint8Array = new Uint8Array(32);
  /** Peers whose next INITs carry our whole chain whatever else we think they know (after our rotation). */
  private readonly chainOwed = new Set<string>();
  private readonly statsPeak = { pendingResponses: 0, reassembling: 0, reassemblyBytes: 0 };
  private lastStatsLog = 0;
  private lastStatsLine = "";

  constructor(private readonly host: HandshakeHost) {
    const now = host.now();
    this.cookies = new CookieChecker([], now, host.timers.handshakeUnderLoadPerS);
    this.reassembly = new Reassembler(undefined, (why) => host.count(`handshake_fragment_${why}`));
    this.initLimiter = new HandshakeRateLimiter({
      ratePerS: HANDSHAKE_INIT_RATE_PER_S, burst: HANDSHAKE_INIT_BURST,
      perSourceRatePerS: HANDSHAKE_INIT_RATE_PER_SOURCE_PER_S, perSourceBurst: HANDSHAKE_INIT_BURST_PER_SOURCE,
    }, now);
    this.refreshLocal();
  }

  /** A handshake datagram, by its type. */
  receive(data: Buffer, from: Endpoint): void {
    switch (data[0]) {
      case PACKET.HANDSHAKE_INIT: return this.receiveInit(data, from);
      case PACKET.HANDSHAKE_RESP: return this.receiveResp(data, from);
      case PACKET.HANDSHAKE_FINAL: return this.receiveFinal(data, from);
      case PACKET.COOKIE_REPLY: return this.receiveCookieReply(data, from);
    }
  }

  /** Rotation: later handshakes present the new certificate; every peer gets our whole chain until it confirms. */
  localChanged(): void {
    this.refreshLocal();
    for (const name of this.host.peers.keys()) this.chainOwed.add(name);
  }

  /** The peer holds the same keys as we do (or is gone): it has our chain. */
  chainDelivered(name: string): void {
    this.chainOwed.delete(name);
  }

  /** Once per device tick: reassembly and responses nobody finished expire; true while responses are pending. */
  tick(now: number): boolean {
    this.reassembly.expire(now);
    this.logStats(now);
    while (this.responseOrder.length) {
      const idx = this.responseOrder[0];
      const r = this.responses.get(idx);
      if (r && now - r.startedAt < this.host.timers.handshakeTimeoutMs * 2) break;
      this.responseOrder.shift();
      this.responses.delete(idx);
    }
    return this.responseOrder.length > 0;
  }

  /**
   * An INIT datagram, in stage order (docs/crypto.md): frame -> mac1 -> under load, mac2 or a cookie reply
   * -> reassembly -> rate limit -> the claim (who asks, signed) -> replay check -> only then Diffie-Hellman
   * and a RESP. Every refusal before the RESP is silent: counted, never answered.
   */
  private receiveInit(data: Buffer, from: Endpoint): void {
    const f = parseHandshake(data);
    if (!f.ok) return this.host.count(`handshake_${f.reason}`);
    const which = this.cookies.checkMac1(data);
    if (which < 0) return this.host.count("handshake_bad_mac1");
    const now = this.host.now();
    const source = endpointKey(from);
    if (this.cookies.noteInit(now) && !this.cookies.checkMac2(data, source, now)) {
      this.host.count("handshake_under_load");
      if (f.fragIndex === 0) this.host.send(from, this.cookies.reply(data, f.senderIndex, source, which, now));
      return;
    }
    const message = this.reassemble(f, `i/${source}/${f.senderIndex}`, from, now);
    if (message) {
      if (!this.initLimiter.allow(sourceHost(from), now)) return this.host.count("handshake_rate_limited");
      this.answerInit(message, f.senderIndex, which, from, now);
    }
    this.stats(); // keeps the peaks
  }

  /** The whole message of a fragment: at once for a message of one fragment, else when its last fragment arrives. */
  private reassemble(f: HandshakeFragment, key: string, from: Endpoint, now: number): Uint8Array | undefined {
    if (f.fragCount === 1) return f.chunk;
    const r = this.reassembly.add(key, sourceHost(from), f.fragIndex, f.fragCount, f.chunk, now);
    if (r === "pending") return undefined;
    if (typeof r === "string") {
      this.host.count(`handshake_fragment_${r}`);
      return undefined;
    }
    return r;
  }

  private answerInit(message: Uint8Array, senderIndex: number, which: number, from: Endpoint, now: number): void {
    const init = parseInitMessage(message);
    if (!init) return this.host.count("handshake_malformed");
    const claim = openClaim(this.cookies.responderKey(which), init.e, init.sealedClaim);
    if (!claim) return this.host.count("handshake_bad_claim");
    const peer = this.host.peers.get(claim.name);
    if (!peer) return this.host.count("handshake_unknown_peer");
    if (from.kind === "relay" && from.peer !== claim.name) return this.host.count("handshake_relay_mismatch");
    if (peer.revoked) return this.host.count("handshake_revoked");
    // A replay is refused before the signature check (which it would pass): no public-key work for it at all.
    if ((this.initTimestamps.latest(claim.name) ?? -1) >= claim.ts) return this.host.count("handshake_stale_init");
    const candidates = this.claimants(peer, claim);
    if (!Array.isArray(candidates)) return this.host.count(`handshake_${candidates.reason}`);
    const who = candidates.find((c) => claimSignatureHolds(c.key, this.ownName, init.e, claim));
    if (!who) return this.host.count("handshake_bad_claim_signature");
    if (who.reason) {
      // The peer itself asked (its certificate key signed), and its certificate is not acceptable.
      this.refused(peer, who.reason, who.detail ?? "", from);
      return;
    }
    if (!this.initTimestamps.accept(claim.name, claim.ts)) return this.host.count("handshake_stale_init");
    if (this.responses.size >= MAX_PENDING_RESPONSES) this.expireOldestResponse();
    const responder = new Responder(this.host.local(), this.host.opts.verifier);
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
    for (const frag of encodeHandshake(PACKET.HANDSHAKE_RESP, pending.localIndex, senderIndex, resp)) this.host.send(from, frag);
  }

  /**
   * The public keys a claim's signature may be checked with, best first: the chain the claim carries (checked by
   * the verifier); else the peer map's certificate and the certificate of our last session with the peer (after
   * a peer's renewal the map may lag behind, or lead). `reason` when that certificate is not acceptable: the
   * claim is checked all the same, so that a refusal is recorded only when the peer itself asked.
   */
  private claimants(peer: Peer, claim: InitClaim): Claimant[] | { reason: string } {
    const { verifier } = this.host.opts;
    if (claim.chain) {
      const r = verifier.verifyChain(claim.chain);
      if (r.ok) return r.identity.name === claim.name ? [{ key: r.identity.publicKey }] : { reason: "claim_mismatch" };
      const key = leafKey(claim.chain[0], claim.name);
      return key ? [{ key, reason: r.reason, detail: r.detail }] : { reason: r.reason };
    }
    const out: Claimant[] = [];
    const der = this.host.opts.peerCertificate?.(claim.name);
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
      else if (this.host.now() > id.notAfter.getTime() + verifier.skewMs) out.push({ key: id.publicKey, reason: "expired", detail: `certificate expired at ${id.notAfter.toISOString()}` });
      else out.push({ key: id.publicKey });
    }
    return out.length ? out : { reason: "no_certificate" };
  }

  private expireOldestResponse(): void {
    const idx = this.responseOrder.shift();
    if (idx !== undefined) this.responses.delete(idx);
    this.host.count("handshake_pending_overflow");
  }

  private receiveFinal(data: Buffer, from: Endpoint): void {
    const f = parseHandshake(data);
    if (!f.ok) return this.host.count(`handshake_${f.reason}`);
    const pending = this.responses.get(f.receiverIndex!);
    if (!pending || pending.remoteIndex !== f.senderIndex) return this.host.count("handshake_unknown_index");
    const message = this.reassemble(f, `f/${f.receiverIndex}/${f.senderIndex}`, from, this.host.now());
    if (!message) return;
    if (message.length < MIN_HANDSHAKE_FINAL_MESSAGE) return this.host.count("handshake_truncated");
    this.responses.delete(pending.localIndex);
    const claimed = this.host.peers.get(pending.claimed);
    let result;
    try {
      pending.responder.readFinal(message);
      result = pending.responder.result();
    } catch (err) {
      return this.handshakeFailed(err, from, claimed);
    }
    const identity = result.identity;
    if (identity.name !== pending.claimed) {
      this.host.count("handshake_claim_mismatch");
      this.host.opts.log.warn({ claimed: pending.claimed, identity: identity.spiffeId, from: describeEndpoint(from) }, "handshake refused: the final message is not from the identity the INIT claimed");
      return;
    }
    const peer = this.host.peers.get(identity.name);
    if (!peer) {
      this.host.count("handshake_unknown_peer");
      this.host.opts.log.warn({ identity: identity.spiffeId, from: describeEndpoint(from) }, "handshake refused: identity is not a peer of this node");
      return;
    }
    if (!this.timestamps.accept(identity.name, result.timestamp)) {
      this.host.count("handshake_stale_timestamp");
      this.host.opts.log.warn({ peer: identity.name, from: describeEndpoint(from) }, "handshake refused: replayed or older than the last one");
      return;
    }
    const keypair = new Keypair(pending.localIndex, pending.remoteIndex, new TransportCipher(result.sendKey), new TransportCipher(result.recvKey), false, this.host.now());
    this.host.install(peer, keypair, identity, from, result);
    // Confirm at once so the initiator knows its final message arrived.
    this.host.sendKeepalive(peer);
  }

  private receiveResp(data: Buffer, from: Endpoint): void {
    const f = parseHandshake(data);
    if (!f.ok) return this.host.count(`handshake_${f.reason}`);
    const peer = this.initiations.get(f.receiverIndex!);
    const pending = peer?.initiation;
    if (!peer || !pending || pending.localIndex !== f.receiverIndex) return this.host.count("handshake_unknown_index");
    const message = this.reassemble(f, `r/${f.receiverIndex}/${f.senderIndex}`, from, this.host.now());
    if (!message) return;
    if (message.length < MIN_HANDSHAKE_RESP_MESSAGE) return this.host.count("handshake_truncated");
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
      if (!(err instanceof HandshakeError && TRANSPORT_FAILURES.has(err.reason))) this.abandon(peer);
      return this.handshakeFailed(err, from, peer);
    }
    if (identity.name !== peer.name) {
      this.abandon(peer);
      this.refused(peer, "wrong_peer", `the responder is ${identity.name}`, from);
      return;
    }
    for (const frag of encodeHandshake(PACKET.HANDSHAKE_FINAL, pending.localIndex, f.senderIndex, final)) this.host.send(from, frag);
    this.initiations.delete(pending.localIndex);
    peer.initiation = undefined;
    const keypair = new Keypair(pending.localIndex, f.senderIndex, new TransportCipher(result.sendKey), new TransportCipher(result.recvKey), true, this.host.now());
    this.host.install(peer, keypair, identity, from, result);
  }

  /** The responder is under load: take its cookie and send the same INIT again, now with mac2 (once per INIT). */
  private receiveCookieReply(data: Buffer, from: Endpoint): void {
    const c = parseCookieReply(data);
    if (!c.ok) return this.host.count(`cookie_${c.reason}`);
    const peer = this.initiations.get(c.receiverIndex);
    const pending = peer?.initiation;
    if (!peer || !pending || pending.localIndex !== c.receiverIndex) return this.host.count("cookie_unknown_index");
    if (pending.cookieTaken) return this.host.count("cookie_unexpected");
    const cookie = openCookieReply(c, pending.responderKey, pending.mac1);
    if (!cookie) return this.host.count("cookie_decrypt_failed");
    pending.cookieTaken = true;
    peer.cookie = { value: cookie, receivedAt: this.host.now() };
    this.host.opts.log.debug({ peer: peer.name, from: describeEndpoint(from) }, "handshake cookie received: the peer is under load; sending the INIT again with mac2");
    const key = mac1Key(pending.responderKey);
    for (const frag of pending.fragments) {
      const again = Buffer.from(frag);
      writeInitMacs(again, key, cookie);
      this.host.send(from, again);
    }
  }

  /** This node refused a peer's handshake: counted, logged with the reason, and shown as the peer's state. */
  private refused(peer: Peer, reason: string, detail: string, from: Endpoint): void {
    this.host.count(`handshake_${reason}`);
    peer.refusal = { reason, detail, at: this.host.now() };
    this.host.opts.log.warn({ reason, detail, peer: peer.name, from: describeEndpoint(from) }, "handshake refused");
    this.host.opts.onEvent?.({ type: "handshake_refused", peer: peer.name, reason, detail, from: describeEndpoint(from) });
  }

  private handshakeFailed(err: unknown, from: Endpoint, peer?: Peer): void {
    const reason = err instanceof HandshakeError ? err.reason : "malformed";
    const detail = err instanceof HandshakeError ? err.detail : (err as Error).message;
    if (peer && !TRANSPORT_FAILURES.has(reason)) return this.refused(peer, reason, detail, from);
    this.host.count(`handshake_${reason}`);
    this.host.opts.log.warn({ reason, detail, peer: peer?.name, from: describeEndpoint(from) }, "handshake refused");
    this.host.opts.onEvent?.({ type: "handshake_refused", peer: peer?.name, reason, detail, from: describeEndpoint(from) });
  }

  /**
   * Sends an INIT: e, and the claim (our name, a timestamp, our certificate key's signature over the
   * responder's name, e and the timestamp; our certificate when the responder may lack it), sealed and MACed
   * for the responder (docs/crypto.md). A retry carries the whole chain; a cookie the peer gave us recently
   * goes in mac2.
   */
  initiate(peer: Peer, why: string): void {
    if (peer.revoked || !peer.endpoint) return;
    const now = this.host.now();
    if (peer.initiation) {
      if (now - peer.initiation.startedAt >= this.host.timers.handshakeTimeoutMs) peer.unanswered++;
      this.abandon(peer);
    }
    const local = this.host.local();
    const initiator = new Initiator(local, this.host.opts.verifier);
    const retry = peer.attempts > 0;
    let fragments: Buffer[];
    let rk: Uint8Array;
    const localIndex = this.initiations.allocate(peer);
    try {
      const e = initiator.writeInit();
      rk = responderKey(this.ownRoot, peer.name);
      const ts = nextTimestamp();
      const known = this.host.opts.peerCertificate?.(peer.name) !== undefined;
      const chain = retry || this.chainOwed.has(peer.name) ? local.certChainDer : known ? undefined : [local.certChainDer[0]];
      const claim: InitClaim = { name: this.ownName, ts, sig: signClaim(local.certPrivateKey, peer.name, e, ts), chain };
      fragments = encodeHandshake(PACKET.HANDSHAKE_INIT, localIndex, undefined, encodeInitMessage(e, sealClaim(rk, e, claim)));
    } catch (err) {
      this.initiations.delete(localIndex);
      this.host.opts.log.warn({ peer: peer.name, err: (err as Error).message }, "cannot start handshake");
      return;
    }
    const cookie = peer.cookie && now - peer.cookie.receivedAt < COOKIE_MAX_AGE_MS ? peer.cookie.value : undefined;
    const key = mac1Key(rk);
    for (const frag of fragments) writeInitMacs(frag, key, cookie);
    peer.initiation = {
      localIndex, initiator, startedAt: now, peerName: peer.name, fragments, mac1: Buffer.from(initMacs(fragments[0]).mac1), responderKey: rk, cookieTaken: false,
    };
    peer.attempts++;
    const backoff = Math.min(this.host.timers.handshakeTimeoutMs * 2 ** Math.min(peer.attempts - 1, 10), this.host.timers.handshakeBackoffMaxMs);
    peer.nextAttemptAt = now + backoff;
    this.host.opts.log.debug({ peer: peer.name, why, attempt: peer.attempts, endpoint: describeEndpoint(peer.endpoint), fragments: fragments.length }, "handshake initiation");
    for (const frag of fragments) this.host.send(peer.endpoint, frag);
  }

  abandon(peer: Peer): void {
    if (peer.initiation) this.initiations.delete(peer.initiation.localIndex);
    peer.initiation = undefined;
  }

  /** Our name, our root, and the responder key of each root we trust (mac1 of INITs to us may use any). */
  private refreshLocal(): void {
    const { verifier } = this.host.opts;
    const local = this.host.local();
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
  stats(): HandshakeStats {
    const now = { pendingResponses: this.responses.size, reassembling: this.reassembly.size, reassemblyBytes: this.reassembly.bufferedBytes };
    const p = this.statsPeak;
    p.pendingResponses = Math.max(p.pendingResponses, now.pendingResponses);
    p.reassembling = Math.max(p.reassembling, now.reassembling);
    p.reassemblyBytes = Math.max(p.reassemblyBytes, now.reassemblyBytes);
    return { ...now, underLoad: this.cookies.underLoad(this.host.now()), peak: { ...p } };
  }

  /** At most once a second, when it changed: what the node holds for handshakes others started (debug). */
  private logStats(now: number): void {
    // At info level (the default) the line is never written: no stats object and no JSON on every tick.
    if (now - this.lastStatsLog < 1_000 || this.host.opts.log.isLevelEnabled?.("debug") === false) return;
    const stats = this.stats();
    const line = JSON.stringify(stats);
    if (line === this.lastStatsLine) return;
    this.lastStatsLine = line;
    this.lastStatsLog = now;
    this.host.opts.log.debug({ handshakes: stats }, "handshake state");
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
