// Path selection per peer (Tailscale's magicsock idea, explicit state): every peer has a relay path and
// zero or more direct candidates. Probes are PATH_PROBE/PATH_PROBE_REPLY messages sealed in the peer's session, so a path
// is proven by authenticated traffic, never by an address claim. The best answering direct path wins by
// latency; the relay stays warm as fallback; a direct path that stops answering is dropped within seconds.
//
// Work is proportional to use (docs/nat.md "At rest"): while a peer is active (application data within the
// session layer's idle bound) its candidates are probed and its current direct path is checked whenever we sent
// without hearing back; at rest nothing is probed, and only one side of the pair sends one small hold packet
// per measured NAT timeout to keep a direct path's mappings (hold.ts). The first datagram after a rest goes out
// at once on the last path that worked, with a copy over the relay until that path answers again.
import { describeEndpoint, endpointKey, parseEndpointString, sameEndpoint, type Endpoint } from "../addr/endpoint.js";
import { HOLD, holdInterval, isHolder, lapsed, newHoldEvidence, survived, type HoldEvidence } from "./hold.js";
import { isOverlayAddress } from "../wire/constants.js";
import { betterPath, type ScoredPath } from "./better-path.js";

/**
 * Linux nf_conntrack_udp_timeout: an UNREPLIED UDP entry lives this long after its last packet (measured in the
 * NAT lab: an entry refreshed by the peer's probes kept the remap; 30 s of silence cleared it, docs/nat.md).
 */
export const CONNTRACK_UDP_UNREPLIED_MS = 30_000;
/**
 * A candidate that answered this recently runs through NAT entries still alive on both sides (Linux keeps a
 * replied UDP entry 120 s): probing it again after a cut needs no punch, cannot clash, and is not held back by
 * a quiet. Below the shortest hold interval (25 s, hold.ts), so a mapping found lapsed at rest is punched again.
 */
export const PROVEN_PATH_MS = 20_000;

export interface PathTimers {
  /** Probe interval of candidates while the peer runs over the relay (looking for a direct path). */
  probeWhileRelayedMs: number;
  /**
   * Active and direct: the current path is probed when we sent something and heard nothing back on it for this
   * long, and again every heartbeatMs until it answers (no probes while the peer's own packets keep coming).
   */
  heartbeatMs: number;
  /** Active and direct: other candidates that answered before are probed this often (a clearly better one wins). */
  otherCandidatesMs: number;
  /** A direct path that stays unanswered this long after a send (or after a wake-up) is dead: the relay takes over. */
  pathTimeoutMs: number;
  /** Resend call-me-maybe through the relay at most this often. */
  callMeMaybeMs: number;
  /**
   * Full-TTL probes to a not-yet-answering candidate start this long after our low-TTL punch (and the
   * call-me-maybe that makes the peer punch too): both NATs must hold their mapping before any packet
   * reaches the other one, or a Linux NAT's conntrack clash remaps the port (docs/nat.md).
   */
  punchLeadMs: number;
  /** Spray (port prediction + random ports) only after the candidates have been silent this long. */
  sprayAfterMs: number;
  /** Probes per spray attempt towards one peer address, and the pause before another attempt. */
  sprayBudget: number;
  sprayEveryMs: number;
  /**
   * Punch rounds (clash recovery): a round whose candidates all stay unanswered this long ends; the side then
   * goes quiet towards the peer's candidates so that any UNREPLIED conntrack entry expires, and punches again.
   */
  roundMs: number;
  /** First quiet after a failed round; doubled per further failed round up to quietMaxMs. */
  quietMs: number;
  quietMaxMs: number;
  /** Rounds this side leads before it stays on the relay (until a wake-up or new candidates). */
  maxRounds: number;
}

export const DEFAULT_PATH_TIMERS: PathTimers = {
  probeWhileRelayedMs: 1_000,
  heartbeatMs: 1_000,
  otherCandidatesMs: 5_000,
  pathTimeoutMs: 3_000,
  callMeMaybeMs: 5_000,
  punchLeadMs: 250,
  sprayAfterMs: 3_000,
  sprayBudget: 256,
  sprayEveryMs: 60_000,
  roundMs: 4_000,
  quietMs: CONNTRACK_UDP_UNREPLIED_MS + 5_000,
  quietMaxMs: 4 * (CONNTRACK_UDP_UNREPLIED_MS + 5_000),
  maxRounds: 5,
};

/**
 * The bounded spray towards a peer behind an endpoint-dependent NAT (run by the side whose own mapping is
 * endpoint-independent: only its one stable port can match the peer's mapping). Ports next to the peer's
 * reflexive port first (sequential allocators), then random ones, within sprayBudget probes.
 */
export interface SprayState {
  attempts: number;
  probes: number;
  lastAt: number;
  /** The endpoint that answered a spray probe, if any. */
  hit?: string;
}

const SPRAY_NEIGHBOURS = 16;
const SPRAY_PER_TICK = 64;

export interface Candidate {
  endpoint: Endpoint;
  /** Last low-TTL punch towards it (0: never). */
  punchedAt: number;
  lastProbeAt: number;
  /** Last reply to one of our probes on it: a proven round trip. */
  lastPongAt: number;
  /** Last authenticated packet of any kind from it (replies, the peer's probes, data). */
  lastHeardAt: number;
  rttMs?: number;
  probes: number;
  pongs: number;
  /** Learned from an authenticated packet from an address the peer never advertised (ICE peer-reflexive). */
  prflx?: boolean;
}

/**
 * One punch round towards a peer (clash recovery, docs/nat.md): started by our punch or by joining the peer's,
 * ended by an answer or by roundMs of silence; a failed round is followed by a quiet long enough for an
 * UNREPLIED conntrack entry at either NAT to expire.
 */
export interface PunchRound {
  /** Failed rounds so far (reset by an answer, a wake-up or new candidates). */
  failed: number;
  startedAt: number;
  /** No probes, punches or call-me-maybe towards the peer's candidates until then. */
  quietUntil: number;
  quietSince: number;
}

/** Why a peer's traffic is not on a direct path (ember peers), or undefined when it is. */
export type NotDirectReason = "no candidate answered" | "mapping clash suspected" | "endpoint-dependent NAT" | "udp blocked" | "no candidates" | "no session";

/** A hold at rest (hold.ts): the pair's NAT evidence, and the measured hold waiting for its answer. */
export interface HoldState {
  evidence: HoldEvidence;
  /** Last hold sent (0: none yet in this rest). */
  lastAt: number;
  holds: number;
  /** Unauthenticated holds (STUN indications) among them. */
  indications: number;
  pending?: { firstAt: number; lastAt: number; silenceMs: number; tries: number };
}

export interface PeerPaths {
  name: string;
  relay?: Endpoint;
  candidates: Map<string, Candidate>;
  /** The path traffic uses now: set only by switchTo (the session's copy follows through host.usePath). */
  path?: Endpoint;
  lastCallMeMaybeAt: number;
  /** When the first direct pong arrived, for "time to direct" reporting. */
  directSince?: number;
  switches: number;
  /** When probing began without any direct answer (for the spray trigger). */
  silentSince?: number;
  spray?: SprayState;
  /** Spray probes still to send in this attempt, paced over several ticks. */
  sprayQueue?: Endpoint[];
  /** After a wake-up on a direct path: since when it is being revalidated (data also goes over the relay). */
  revalidateSince?: number;
  /** Active and direct: since when we have sent without hearing back on the current path. */
  suspectSince?: number;
  /** Probes of the current path when suspicion (or revalidation) began: death needs DEAD_AFTER_PROBES more. */
  probesAtSuspect?: number;
  /** Discovery runs until then even at rest (a lapsed hold is recovered at once). */
  recoverUntil?: number;
  /**
   * At rest, the peer's call-me-maybe asked us to punch: until then our candidates' probes follow the punch, but
   * we send no call-me-maybe of our own and no spray (the peer leads the round; two resting peers must not keep
   * each other awake by answering each other's call-me-maybe).
   */
  joinUntil?: number;
  hold: HoldState;
  /** What the peer's last probe or reply said of its side (hold.ts HoldSide.noNat); undefined until one came. */
  peerNoNat?: boolean;
  wakes: number;
  /** Last call-me-maybe (or its acknowledgement) from the peer: it has just punched towards our candidates. */
  peerPunchedAt: number;
  round: PunchRound;
}

/** What the session layer knows about a peer's traffic (src/session/device.ts owns it). */
export interface PeerActivity {
  /** No application data either way for the session layer's idle bound. */
  idle: boolean;
  /** Last sealed packet of any kind sent to the peer. */
  lastSentAt: number;
  /** Last authenticated packet from a direct address, and that address. */
  lastDirectRxAt: number;
  lastDirectRxFrom?: Endpoint;
}

export interface PathHost {
  /** Sends a sealed inner message to the peer over exactly this endpoint (not moving the session). */
  sendVia(peer: string, endpoint: Endpoint, kind: PathMessageKind, payload: Uint8Array): void;
  /** Moves the peer's session traffic to this endpoint; with a shadow, data also goes there (revalidation). */
  usePath(peer: string, endpoint: Endpoint, shadow?: Endpoint): void;
  /** The chosen path changed (to a direct path, or to the relay): for the node's event bus. */
  pathChanged?(change: { peer: string; from: string; to: string; direct: boolean; rttMs?: number }): void;
  /** Whether a session exists (probes need keys). */
  hasSession(peer: string): boolean;
  /** Our own candidate endpoints, sent in call-me-maybe. */
  localCandidates(): Endpoint[];
  /** Low-TTL punch towards a candidate before full-TTL probes (see docs/nat.md). */
  punch?(endpoint: Endpoint): void;
  /**
   * True while our own packets must not go first towards a peer (a port mapping behind an endpoint-dependent
   * NAT): we only ask the peer to punch (call-me-maybe) until its first probe reaches us, then probe back.
   */
  letPeerComeFirst?(): boolean;
  /** False until the punch TTL is known (our NAT depth, measured by netcheck): no round starts before. */
  punchReady?(): boolean;
  /** Our own mapping behaviour (netcheck): only an endpoint-independent side sprays. */
  mapping?(): string | undefined;
  /** The session layer's view of the peer's traffic; without it every peer counts as active. */
  activity?(peer: string): PeerActivity | undefined;
  /** Whether a sealed message can go now without starting a handshake (holds at rest must not cost one). */
  sessionFresh?(peer: string): boolean;
  /** One unauthenticated NAT keepalive towards a direct path (a STUN Binding Indication). */
  hold?(endpoint: Endpoint): void;
  /** Our own identity name: it decides which side of a pair holds (hold.ts isHolder). */
  selfName?: string;
  /** Whether our side sits behind no NAT (STUN saw our own address and port): then we hold nothing. */
  noNat?(): boolean;
  log: { info(o: object, m?: string): void; debug(o: object, m?: string): void };
  now(): number;
}

/** The sealed messages path discovery sends; each is its own inner kind (src/wire/constants.ts INNER). */
export type PathMessageKind = "probe" | "probe-reply" | "call-me-maybe";

/**
 * A call-me-maybe that answers one (the receiver has punched too): marked by this token among the candidates, which
 * older decoders skip. It is never answered itself, so two peers cannot keep each other busy.
 */
const CMM_ACK = "ack";

/**
 * A probe's payload: 8 bytes naming it (pid, sequence), then one byte saying whether the sender sits behind no
 * NAT (1) or not / not known (0), for the hold decision (hold.ts). The reply echoes the 8 bytes and adds its own.
 */
const PROBE_ID_BYTES = 8;
const PROBE_PAYLOAD_BYTES = PROBE_ID_BYTES + 1;
/** Outstanding probes remembered (oldest forgotten first): every candidate of many peers, plus a spray. */
const MAX_OUTSTANDING = 8192;

/**
 * Probes of the current direct path that must go unanswered before it is dropped (with pathTimeoutMs passed):
 * the wake-up probe plus two heartbeats. With a 2-core host under load a timer alone fired on stalls, not deaths.
 */
const DEAD_AFTER_PROBES = 2;

const ACTIVE: PeerActivity = { idle: false, lastSentAt: 0, lastDirectRxAt: 0 };

interface Outstanding { peer: string; key: string; sentAt: number; spray?: Endpoint; hold?: boolean }

export class PathManager {
  readonly peers = new Map<string, PeerPaths>();
  private probeSeq = 0;
  private readonly outstanding = new Map<string, Outstanding>();

  constructor(private readonly host: PathHost, readonly timers: PathTimers = DEFAULT_PATH_TIMERS) {}

  private state(name: string): PeerPaths {
    let s = this.peers.get(name);
    if (!s) {
      s = { name, candidates: new Map(), lastCallMeMaybeAt: 0, switches: 0, wakes: 0, hold: { evidence: newHoldEvidence(), lastAt: 0, holds: 0, indications: 0 },
        peerPunchedAt: 0, round: { failed: 0, startedAt: 0, quietUntil: 0, quietSince: 0 } };
      this.peers.set(name, s);
    }
    return s;
  }

  /** From the peer map: the peer's direct candidates and its home relay. */
  setPeer(name: string, candidates: Endpoint[], relay?: Endpoint, relayPending = false): void {
    const s = this.state(name);
    s.relay = relay;
    if (this.mergeCandidates(s, candidates)) s.round.failed = 0;
    // Until a direct path has answered, the relay (which always works) is the path; a guessed direct
    // candidate is only a stopgap while no relay is known, and gives way as soon as one is.
    if (!this.provenDirect(s)) {
      const next = relay ?? s.path ?? (relayPending ? undefined : candidates[0]);
      if (next && !sameEndpoint(next, s.path)) return this.switchTo(s, next);
    }
    // Unchanged: the session's copy is told again (a peer the session layer has just added starts on it).
    if (s.path) this.host.usePath(name, s.path, this.shadowOf(s));
  }

  /**
   * The first authenticated packet from a peer with no path yet (no relay in the mesh, nothing proven): its source
   * becomes the path, as the handshake's source did before there was a path manager.
   */
  adoptPath(name: string, from: Endpoint): void {
    const s = this.peers.get(name);
    if (!s || s.path) return;
    this.host.log.info({ peer: name, to: describeEndpoint(from) }, "path: the handshake's source");
    this.switchTo(s, from);
  }

  /** The second path data also goes to while the current direct one is revalidated after a wake-up. */
  private shadowOf(s: PeerPaths): Endpoint | undefined {
    return s.revalidateSince !== undefined && s.path?.kind === "udp" ? s.relay : undefined;
  }

  /**
   * The peer's relay path changed (another relay of the fleet: its home relay moved, or ours died): traffic on the
   * relay moves at once; a proven direct path stays, with the new relay as its fallback. The session is untouched.
   */
  setRelay(name: string, relay: Endpoint | undefined): void {
    const s = this.peers.get(name);
    if (!s || sameEndpoint(relay, s.relay)) return;
    s.relay = relay;
    if (relay && !this.provenDirect(s) && !sameEndpoint(relay, s.path)) {
      this.host.log.info({ peer: name, from: describeEndpoint(s.path), to: describeEndpoint(relay) }, "path: relay moved");
      this.host.pathChanged?.({ peer: name, from: describeEndpoint(s.path), to: describeEndpoint(relay), direct: false });
      s.switches++;
      this.switchTo(s, relay);
    }
  }

  private provenDirect(s: PeerPaths): boolean {
    if (s.path?.kind !== "udp") return false;
    const c = s.candidates.get(endpointKey(s.path));
    // Hysteresis: a direct path that answered stays until it is known dead (probed and unanswered); a quiet
    // moment between two packets, or a map delta arriving then, never demotes it. At rest it is held.
    return !!c && c.pongs > 0 && !this.directDead(s, this.host.now());
  }

  removePeer(name: string): void {
    this.peers.delete(name);
  }

  /** Adds candidates not known yet; true when any was new. */
  private mergeCandidates(s: PeerPaths, candidates: Endpoint[], prflx = false): boolean {
    let added = false;
    for (const ep of candidates) {
      // An overlay address reaches the peer through our own tunnel: never a path (see isOverlayAddress).
      if (ep.kind !== "udp" || isOverlayAddress(ep.host)) continue;
      const key = endpointKey(ep);
      if (!s.candidates.has(key)) {
        s.candidates.set(key, { endpoint: ep, punchedAt: 0, lastProbeAt: 0, lastPongAt: 0, lastHeardAt: 0, probes: 0, pongs: 0, ...(prflx ? { prflx } : {}) });
        added = true;
      }
    }
    return added;
  }

  /** The path the peer's traffic uses now: this manager owns it, the session follows (switchTo). */
  currentPath(name: string): Endpoint | undefined {
    return this.peers.get(name)?.path;
  }

  /**
   * An authenticated packet from a direct address (the session layer calls this; it never moves the path itself).
   * An address the peer never advertised is learned as a peer-reflexive candidate (RFC 8445 7.3.1.3): the peer's
   * NAT mapped its port differently for us (a conntrack clash, or its own NAT's choice). While we are not direct,
   * it is probed back at once: its packet came in, so our NAT holds the entry our probe goes out by, and the
   * answer makes this direction direct too.
   */
  onDirectRx(peer: string, from: Endpoint): void {
    if (from.kind !== "udp" || isOverlayAddress(from.host)) return;
    const s = this.peers.get(peer);
    if (!s) return;
    const now = this.host.now();
    const key = endpointKey(from);
    if (this.mergeCandidates(s, [from], true)) {
      this.host.log.info({ peer, endpoint: describeEndpoint(from) }, "peer-reflexive candidate learned");
    }
    const c = s.candidates.get(key)!;
    c.lastHeardAt = now;
    if (s.path?.kind === "udp" || !this.host.hasSession(peer)) return;
    if (now - c.lastProbeAt >= this.timers.heartbeatMs) this.sendProbe(s, c, key, now);
  }

  private activity(s: PeerPaths): PeerActivity {
    return this.host.activity?.(s.name) ?? ACTIVE;
  }

  /** Last authenticated packet from a candidate: our probes' replies, the peer's probes, or its data. */
  private heardAt(s: PeerPaths, c: Candidate): number {
    const a = this.activity(s);
    const viaData = a.lastDirectRxFrom && sameEndpoint(a.lastDirectRxFrom, c.endpoint) ? a.lastDirectRxAt : 0;
    return Math.max(c.lastPongAt, c.lastHeardAt, viaData);
  }

  /** Whether the peer reached us directly yet (an authenticated packet from one of its addresses). */
  private peerReachedUs(s: PeerPaths): boolean {
    for (const c of s.candidates.values()) if (c.lastHeardAt > 0) return true;
    return false;
  }

  private mustWaitForPeer(s: PeerPaths): boolean {
    return !!this.host.letPeerComeFirst?.() && !this.peerReachedUs(s);
  }

  private probe(s: PeerPaths, key: string, coordinate = true): void {
    const c = s.candidates.get(key);
    if (!c) return;
    const now = this.host.now();
    if (this.mustWaitForPeer(s)) {
      if (coordinate) this.callMeMaybe(s, now);
      return;
    }
    const answering = now - c.lastPongAt <= this.timers.pathTimeoutMs;
    // A peer-reflexive candidate was opened by the peer's own packet: probing it needs no punch.
    const heardRecently = now - c.lastHeardAt <= this.timers.pathTimeoutMs;
    const proven = c.pongs > 0 && now - c.lastPongAt <= PROVEN_PATH_MS;
    if (!answering && !heardRecently && !proven && this.host.punch) {
      if (now < s.round.quietUntil || this.host.punchReady?.() === false) return;
      // Not (or no longer) answering: punch with a low TTL first, ask the peer to punch too, probe later.
      if (now - c.punchedAt >= this.timers.probeWhileRelayedMs) {
        if (!this.inRound(s, now)) s.round.startedAt = now;
        c.punchedAt = now;
        this.host.punch(c.endpoint);
        if (coordinate) this.callMeMaybe(s, now);
      }
      if (!punchDone(c.punchedAt, s.peerPunchedAt, !!s.relay, now, this.timers)) return;
    }
    this.sendProbe(s, c, key, now);
  }

  private inRound(s: PeerPaths, now: number): boolean {
    return s.round.startedAt > 0 && now - s.round.startedAt < this.timers.roundMs;
  }

  private sendProbe(s: PeerPaths, c: Candidate, key: string, now: number, hold = false): void {
    const id = this.probeId();
    c.lastProbeAt = now;
    c.probes++;
    this.remember(id, { peer: s.name, key, sentAt: performance.now(), hold });
    this.host.sendVia(s.name, c.endpoint, "probe", this.probePayload(id));
  }

  /** A probe id (or the id a reply echoes) followed by our side's NAT byte. */
  private probePayload(id: Uint8Array): Buffer {
    const p = Buffer.allocUnsafe(PROBE_PAYLOAD_BYTES);
    p.set(id.subarray(0, PROBE_ID_BYTES), 0);
    p[PROBE_ID_BYTES] = this.host.noNat?.() ? 1 : 0;
    return p;
  }

  /** Our side and the peer's, for isHolder (hold.ts). */
  private holds(s: PeerPaths): boolean {
    if (!this.host.selfName) return false;
    return isHolder({ name: this.host.selfName, noNat: this.host.noNat?.() }, { name: s.name, noNat: s.peerNoNat });
  }

  private remember(id: Buffer, o: Outstanding): void {
    this.outstanding.set(id.toString("hex"), o);
    if (this.outstanding.size > MAX_OUTSTANDING) this.outstanding.delete(this.outstanding.keys().next().value!);
  }

  private probeId(): Buffer {
    const id = Buffer.allocUnsafe(PROBE_ID_BYTES);
    id.writeUInt32BE(process.pid >>> 0, 0);
    id.writeUInt32BE(++this.probeSeq >>> 0, 4);
    return id;
  }

  private callMeMaybe(s: PeerPaths, now: number, ack = false): void {
    if (!s.relay || now - s.lastCallMeMaybeAt < this.timers.punchLeadMs) return;
    // A call-me-maybe tells the peer we punched (its full-TTL probes start on it): none before our punch TTL is
    // measured, since no punch went out. Behind NAT444 the peers' probes otherwise reached the carrier NAT
    // before our first packet and it remapped our port (the clash the round was meant to avoid). A node that
    // lets the peer come first (a port mapping behind an endpoint-dependent NAT) never punches: it asks anyway.
    if (!ack && this.host.punch && this.host.punchReady?.() === false && !this.host.letPeerComeFirst?.()) return;
    const mine = this.host.localCandidates();
    if (!mine.length) return;
    s.lastCallMeMaybeAt = now;
    this.host.sendVia(s.name, s.relay, "call-me-maybe", encodeCandidates(mine, ack));
  }

  /** A probe from the peer arrived (authenticated) on `from`: answer on the same path, learn the path. */
  onProbe(peer: string, from: Endpoint, payload: Uint8Array): void {
    const s = this.state(peer);
    if (payload.length !== PROBE_PAYLOAD_BYTES) return;
    s.peerNoNat = payload[PROBE_ID_BYTES] === 1;
    this.host.sendVia(peer, from, "probe-reply", this.probePayload(payload));
    // Learned (peer-reflexive) and probed back after the reply went out: both directions go direct together.
    this.onDirectRx(peer, from);
  }

  onProbeReply(peer: string, from: Endpoint, payload: Uint8Array): void {
    if (payload.length !== PROBE_PAYLOAD_BYTES) return;
    const key = Buffer.from(payload.subarray(0, PROBE_ID_BYTES)).toString("hex");
    const o = this.outstanding.get(key);
    if (!o || o.peer !== peer) return;
    this.outstanding.delete(key);
    const s = this.state(peer);
    s.peerNoNat = payload[PROBE_ID_BYTES] === 1;
    const now = this.host.now();
    if (o.spray) {
      // A sprayed port answered: it becomes a proven candidate.
      if (!sameEndpoint(o.spray, from)) return;
      if (s.spray) s.spray.hit = describeEndpoint(from);
      this.host.log.info({ peer, endpoint: describeEndpoint(from), probes: s.spray?.probes }, "spray hit: direct path through an endpoint-dependent NAT");
      const k = endpointKey(from);
      s.candidates.set(k, { endpoint: from, punchedAt: 0, lastProbeAt: now, lastPongAt: now, lastHeardAt: now, probes: 1, pongs: 1, rttMs: performance.now() - o.sentAt });
      s.sprayQueue = undefined;
      this.choose(s);
      return;
    }
    const c = s.candidates.get(o.key);
    if (!c || !sameEndpoint(c.endpoint, from)) return;
    c.lastPongAt = now;
    c.lastHeardAt = now;
    c.pongs++;
    s.round = { failed: 0, startedAt: 0, quietUntil: 0, quietSince: 0 };
    c.rttMs = performance.now() - o.sentAt;
    if (o.hold && s.hold.pending) {
      // A measured hold came back: the pair's NATs kept the mapping through that silence.
      s.hold.evidence = survived(s.hold.evidence, s.hold.pending.silenceMs);
      s.hold.pending = undefined;
    }
    this.choose(s);
  }

  /** The peer told us (through the relay) where it can be reached: punch there now, probe after the lead. */
  onCallMeMaybe(peer: string, candidates: Endpoint[], ack = false): void {
    const s = this.state(peer);
    const now = this.host.now();
    if (this.mergeCandidates(s, candidates)) s.round.failed = 0;
    // The peer punched before it sent this: its NAT holds mappings towards our candidates.
    s.peerPunchedAt = now;
    // Quiet after a failed round: join only once our own side has been silent long enough for an UNREPLIED entry
    // at our NAT to expire (the peer, leading, has been quiet as long); before that our punch would be wasted.
    if (now < s.round.quietUntil) {
      if (now - s.round.quietSince < CONNTRACK_UDP_UNREPLIED_MS) return;
      s.round.quietUntil = now;
    }
    // Our punch TTL is not measured yet: no punch and no acknowledgement, so the peer sends no full-TTL packet.
    if (this.host.punch && this.host.punchReady?.() === false) return;
    // The peer is looking for a direct path: join its round even if we are at rest (probes, no call-me-maybe).
    s.joinUntil = now + this.timers.pathTimeoutMs * 2;
    if (this.mustWaitForPeer(s)) return; // the peer's punch comes through our mapping; ours would spoil it
    if (!this.inRound(s, now)) s.round.startedAt = now;
    for (const c of s.candidates.values()) {
      if (now - c.lastPongAt <= this.timers.pathTimeoutMs) continue;
      // An acknowledgement answers our own punch: only candidates not punched in this round are punched now.
      if (ack && now - c.punchedAt < this.timers.roundMs) continue;
      c.punchedAt = now;
      this.host.punch?.(c.endpoint);
    }
    // Tell the leader we punched too: its full-TTL probes wait for this (punchDone), never for a guess.
    if (!ack) { s.lastCallMeMaybeAt = 0; this.callMeMaybe(s, now, true); }
  }

  /**
   * Application data moved again after a rest (the session layer calls this before the datagram is sealed).
   * A direct path is kept and revalidated: a probe goes now, and data also goes over the relay until the direct
   * path answers, so a mapping that lapsed during the rest loses nothing. On the relay, discovery resumes.
   */
  onWake(peer: string): void {
    const s = this.peers.get(peer);
    if (!s) return;
    const now = this.host.now();
    s.wakes++;
    s.hold.pending = undefined;
    s.suspectSince = undefined;
    s.round.failed = 0;
    if (s.path?.kind !== "udp") return;
    s.revalidateSince = now;
    s.probesAtSuspect = s.candidates.get(endpointKey(s.path))?.probes;
    if (s.relay) this.host.usePath(s.name, s.path, s.relay);
    const key = endpointKey(s.path);
    const c = s.candidates.get(key);
    if (c && this.host.hasSession(s.name)) this.sendProbe(s, c, key, now);
  }

  private switchTo(s: PeerPaths, next: Endpoint): void {
    s.path = next;
    s.revalidateSince = undefined;
    s.suspectSince = undefined;
    this.host.usePath(s.name, next);
  }

  private choose(s: PeerPaths): void {
    const now = this.host.now();
    // The current direct path stays eligible while it is not known dead (the peer's own packets prove it, or
    // nothing was sent that it failed to answer); any other candidate needs a recent reply to our probe.
    const currentAlive = s.path?.kind === "udp" && !this.directDead(s, now);
    let best: Candidate | undefined;
    let bestScore: ScoredPath | undefined;
    for (const c of s.candidates.values()) {
      if (c.rttMs === undefined) continue;
      const isCurrent = sameEndpoint(c.endpoint, s.path);
      if (now - c.lastPongAt > this.timers.pathTimeoutMs && !(isCurrent && currentAlive && c.pongs > 0)) continue;
      const score = { endpoint: c.endpoint, rttMs: c.rttMs, current: isCurrent };
      if (betterPath(score, bestScore)) { best = c; bestScore = score; }
    }
    const next = best?.endpoint ?? s.relay;
    if (!next) return;
    if (sameEndpoint(next, s.path)) {
      // Revalidated after a wake-up: the copy over the relay stops.
      if (s.revalidateSince !== undefined && best && this.heardAt(s, best) >= s.revalidateSince) {
        s.revalidateSince = undefined;
        this.host.usePath(s.name, next);
      }
      return;
    }
    this.host.log.info({ peer: s.name, from: describeEndpoint(s.path), to: describeEndpoint(next), rttMs: best?.rttMs }, best ? "path: direct" : "path: relay");
    this.host.pathChanged?.({ peer: s.name, from: describeEndpoint(s.path), to: describeEndpoint(next), direct: !!best, ...(best?.rttMs !== undefined ? { rttMs: best.rttMs } : {}) });
    if (best && s.directSince === undefined) s.directSince = now;
    if (!best) s.directSince = undefined;
    s.switches++;
    this.switchTo(s, next);
  }

  /** The current direct path is dead: unanswered for pathTimeoutMs after a wake-up or after a send. */
  private directDead(s: PeerPaths, now: number): boolean {
    if (s.path?.kind !== "udp") return false;
    const c = s.candidates.get(endpointKey(s.path));
    if (!c) return true;
    const since = s.revalidateSince ?? s.suspectSince;
    // Hysteresis: dead only when unanswered for pathTimeoutMs AND after DEAD_AFTER_PROBES probes (a loaded host
    // may stall longer than the timeout; a lost probe or two is not a dead path).
    // (Without keys no probe can go: the timeout alone decides.)
    return since !== undefined && this.heardAt(s, c) < since && now - since >= this.timers.pathTimeoutMs &&
      (!this.host.hasSession(s.name) || c.probes - (s.probesAtSuspect ?? 0) >= DEAD_AFTER_PROBES);
  }

  /** Runs one round of probes, holds and choices; true while any peer needs the fast tick (not at rest). */
  tick(): boolean {
    const now = this.host.now();
    let busy = false;
    for (const s of this.peers.values()) {
      const a = this.activity(s);
      const recovering = s.recoverUntil !== undefined && now < s.recoverUntil;
      const joining = !recovering && s.joinUntil !== undefined && now < s.joinUntil;
      if (a.idle && !recovering && !joining) {
        this.restTick(s, a, now);
        busy ||= s.hold.pending !== undefined || s.revalidateSince !== undefined;
        continue;
      }
      busy = true;
      // Leading a round (active, or recovering a lapsed hold) coordinates through call-me-maybe and may spray.
      const lead = !a.idle || recovering;
      if (!this.host.hasSession(s.name)) {
        // Keys expired during the rest: the handshake revalidates the path; without an answer, the relay.
        if (s.revalidateSince !== undefined) this.choose(s);
        continue;
      }
      const direct = s.path?.kind === "udp";
      if (direct) this.checkCurrent(s, a, now);
      for (const [key, c] of s.candidates) {
        const isCurrent = direct && sameEndpoint(c.endpoint, s.path);
        if (isCurrent) continue;
        // A candidate punched but not yet probed gets its first probe as soon as the lead has passed.
        const firstAfterPunch = c.punchedAt > c.lastProbeAt && now - c.punchedAt >= this.timers.punchLeadMs;
        const answering = now - c.lastPongAt <= this.timers.pathTimeoutMs * 2;
        // While direct, only candidates that answered before are worth a probe (a clearly better one may win).
        const interval = !direct ? this.timers.probeWhileRelayedMs : c.pongs > 0 || answering ? this.timers.otherCandidatesMs : Infinity;
        if (firstAfterPunch || now - c.lastProbeAt >= interval) this.probe(s, key, lead);
      }
      if (!direct) this.endRound(s, now);
      if (lead && !direct && s.relay && now >= s.round.quietUntil && s.round.failed < this.timers.maxRounds && now - s.lastCallMeMaybeAt >= this.timers.callMeMaybeMs) this.callMeMaybe(s, now);
      this.choose(s);
      if (lead) this.sprayTick(s, now);
    }
    return busy;
  }

  /**
   * A round with no answer from any candidate for roundMs ends in a quiet (backoff, capped): our probes and punches
   * stop, so an UNREPLIED entry our packets left at the peer's NAT expires; the peer, in the same round, does the
   * same. After maxRounds failed rounds this side leads no more rounds (it still joins the peer's).
   */
  private endRound(s: PeerPaths, now: number): void {
    const r = s.round;
    if (r.startedAt === 0 || now - r.startedAt < this.timers.roundMs || now < r.quietUntil) return;
    const answered = [...s.candidates.values()].some((c) => c.lastPongAt >= r.startedAt);
    if (answered) return;
    // The peer never acknowledged: no full-TTL packet went either way, nothing can have clashed; punch again.
    if (s.peerPunchedAt < r.startedAt) { r.startedAt = 0; return; }
    const quiet = quietFor(r.failed, this.timers);
    r.failed++;
    r.startedAt = 0;
    r.quietSince = now;
    r.quietUntil = now + quiet;
    // Stop the peer's probes too: without our acknowledgement its full-TTL probes do not start (punchDone).
    s.peerPunchedAt = 0;
    s.sprayQueue = undefined;
    this.host.log.info({ peer: s.name, failed: r.failed, quietS: Math.round(quiet / 1000), candidates: [...s.candidates.values()].map((c) => describeEndpoint(c.endpoint)) },
      "punch round unanswered: quiet towards the peer until any conntrack clash expires, then punching again");
  }

  /**
   * Active on a direct path: the peer's own packets prove it; when we sent and heard nothing back for
   * heartbeatMs, probe it (every heartbeatMs) until it answers or pathTimeoutMs passes (then choose() drops it).
   */
  private checkCurrent(s: PeerPaths, a: PeerActivity, now: number): void {
    const key = endpointKey(s.path!);
    const c = s.candidates.get(key);
    if (!c) return;
    const heard = this.heardAt(s, c);
    // Suspect from the first tick that finds a send not yet followed by anything heard; restarted whenever
    // something was heard since (steady two-way traffic never accumulates suspicion).
    if (a.lastSentAt <= heard) s.suspectSince = undefined;
    else if (s.suspectSince === undefined || heard >= s.suspectSince) { s.suspectSince = now; s.probesAtSuspect = c.probes; }
    const since = s.revalidateSince ?? s.suspectSince;
    if (since === undefined || heard >= since) return;
    if (now - since >= this.timers.heartbeatMs && now - c.lastProbeAt >= this.timers.heartbeatMs) this.sendProbe(s, c, key, now);
  }

  /**
   * At rest: nothing is probed. On a direct path the holder (one side of the pair) sends one hold per hold
   * interval (hold.ts); a measured hold left unanswered is retried, then counts as a lapse, and the path is
   * recovered at once (a discovery round) rather than found dead at the next wake-up.
   */
  private restTick(s: PeerPaths, a: PeerActivity, now: number): void {
    s.suspectSince = undefined;
    s.sprayQueue = undefined;
    if (s.path?.kind !== "udp" || !this.holds(s)) return;
    const key = endpointKey(s.path);
    const c = s.candidates.get(key);
    if (!c) return;
    const h = s.hold;
    if (h.pending) {
      if (now - h.pending.firstAt >= HOLD.lapseAfterMs) {
        h.evidence = lapsed(h.evidence, h.pending.silenceMs);
        this.host.log.info({ peer: s.name, endpoint: describeEndpoint(s.path), silenceS: Math.round(h.pending.silenceMs / 1000), nextHoldS: Math.round(holdInterval(h.evidence, true) / 1000) },
          "hold: the NAT mapping lapsed at rest; recovering the direct path");
        h.pending = undefined;
        s.revalidateSince = undefined;
        s.switches++;
        if (s.relay) this.switchTo(s, s.relay);
        s.recoverUntil = now + this.timers.pathTimeoutMs * 3;
      } else if (now - h.pending.lastAt >= HOLD.retryMs && this.host.sessionFresh?.(s.name)) {
        h.pending.lastAt = now;
        h.pending.tries++;
        this.sendProbe(s, c, key, now, true);
      }
      return;
    }
    const lastOnPath = Math.max(a.lastSentAt, this.heardAt(s, c), h.lastAt);
    const silence = now - lastOnPath;
    const measured = !!this.host.sessionFresh?.(s.name);
    if (silence < holdInterval(h.evidence, measured)) return;
    h.lastAt = now;
    h.holds++;
    if (measured) {
      h.pending = { firstAt: now, lastAt: now, silenceMs: silence, tries: 1 };
      this.sendProbe(s, c, key, now, true);
    } else {
      h.indications++;
      this.host.hold?.(c.endpoint);
    }
  }

  /**
   * Starts or continues a bounded spray when every direct candidate has been silent for sprayAfterMs,
   * we sit on the relay, and our own mapping is endpoint-independent.
   */
  private sprayTick(s: PeerPaths, now: number): void {
    const onRelay = s.path?.kind === "relay";
    const anyAnswer = [...s.candidates.values()].some((c) => now - c.lastPongAt <= this.timers.pathTimeoutMs);
    if (!onRelay || anyAnswer) { s.silentSince = undefined; s.sprayQueue = undefined; return; }
    if (now < s.round.quietUntil) return;
    s.silentSince ??= now;
    if (s.sprayQueue?.length) return this.sendSprayBatch(s);
    if (this.host.mapping?.() !== "endpoint-independent" || now - s.silentSince < this.timers.sprayAfterMs) return;
    if (s.spray && now - s.spray.lastAt < this.timers.sprayEveryMs) return;
    // Targets: every direct candidate of the peer (its reflexive address among them), budget split evenly.
    const targets = [...s.candidates.values()].map((c) => c.endpoint).filter((e): e is Endpoint & { kind: "udp" } => e.kind === "udp");
    if (!targets.length) return;
    const queue: Endpoint[] = [];
    const seen = new Set(targets.map(endpointKey));
    const per = Math.max(1, Math.floor(this.timers.sprayBudget / targets.length));
    for (const t of targets) {
      const add = (port: number): void => {
        const ep: Endpoint = { kind: "udp", host: t.host, port };
        if (port > 0 && port < 65536 && !seen.has(endpointKey(ep))) { seen.add(endpointKey(ep)); queue.push(ep); }
      };
      const start = queue.length;
      for (let d = 1; d <= SPRAY_NEIGHBOURS && queue.length - start < per; d++) { add(t.port + d); if (queue.length - start < per) add(t.port - d); }
      for (let tries = 0; queue.length - start < per && tries < per * 4; tries++) add(1024 + Math.floor(Math.random() * (65536 - 1024)));
    }
    s.spray = { attempts: (s.spray?.attempts ?? 0) + 1, probes: s.spray?.probes ?? 0, lastAt: now, hit: s.spray?.hit };
    s.sprayQueue = queue;
    this.host.log.info({ peer: s.name, probes: queue.length, targets: targets.map(describeEndpoint) }, "spray: bounded port prediction towards an unanswering peer");
    this.sendSprayBatch(s);
  }

  private sendSprayBatch(s: PeerPaths): void {
    const batch = s.sprayQueue!.splice(0, SPRAY_PER_TICK);
    for (const ep of batch) {
      const id = this.probeId();
      this.remember(id, { peer: s.name, key: endpointKey(ep), sentAt: performance.now(), spray: ep });
      this.host.sendVia(s.name, ep, "probe", this.probePayload(id));
      s.spray!.probes++;
    }
  }

  describe(name: string) {
    const s = this.peers.get(name);
    if (!s) return undefined;
    const now = this.host.now();
    const a = this.activity(s);
    const measured = !!this.host.sessionFresh?.(s.name);
    const holder = this.holds(s);
    return {
      path: s.path ? (s.path.kind === "relay" ? `relay:${s.path.relay}` : "direct") : "-",
      notDirect: notDirectReason({
        direct: s.path?.kind === "udp", session: this.host.hasSession(s.name), candidates: s.candidates.size,
        failedRounds: s.round.failed, quiet: now < s.round.quietUntil, ownMapping: this.host.mapping?.(), sprayed: !!s.spray,
      }),
      round: { failed: s.round.failed, quietS: Math.max(0, Math.round((s.round.quietUntil - now) / 1000)) },
      endpoint: describeEndpoint(s.path),
      activity: a.idle ? "idle" as const : "active" as const,
      revalidating: s.revalidateSince !== undefined,
      candidates: [...s.candidates.values()].map((c) => ({ endpoint: describeEndpoint(c.endpoint), rttMs: c.rttMs, alive: now - c.lastPongAt <= this.timers.pathTimeoutMs, probes: c.probes, pongs: c.pongs, ...(c.prflx ? { prflx: true } : {}) })),
      switches: s.switches,
      wakes: s.wakes,
      hold: {
        holder,
        intervalS: Math.round(holdInterval(s.hold.evidence, measured) / 1000),
        survivedS: Math.round(s.hold.evidence.survivedMs / 1000),
        lapsedS: Number.isFinite(s.hold.evidence.lapsedMs) ? Math.round(s.hold.evidence.lapsedMs / 1000) : null,
        holds: s.hold.holds, indications: s.hold.indications,
      },
      spray: s.spray ? { attempts: s.spray.attempts, probes: s.spray.probes, hit: s.spray.hit ?? null } : undefined,
    };
  }
}

/**
 * Why a peer is not on a direct path (pure; ember peers shows it). Our own netcheck knows UDP blocked and an
 * endpoint-dependent mapping; a failed punch round (quiet, then again) means a conntrack clash is suspected;
 * a spray without a hit means the peer's mapping is endpoint-dependent. Policy is the caller's (no session).
 */
export function notDirectReason(f: { direct: boolean; session: boolean; candidates: number; failedRounds: number; quiet: boolean; ownMapping?: string; sprayed: boolean }): NotDirectReason | undefined {
  if (f.direct) return undefined;
  if (f.ownMapping === "udp-blocked") return "udp blocked";
  if (!f.session) return "no session";
  if (f.candidates === 0) return "no candidates";
  if (f.ownMapping === "endpoint-dependent" || f.sprayed) return "endpoint-dependent NAT";
  if (f.failedRounds > 0 || f.quiet) return "mapping clash suspected";
  return "no candidate answered";
}

/** Candidates in call-me-maybe: "host:port" strings, comma-separated UTF-8 (small, sealed in the session). */
export function encodeCandidates(eps: Endpoint[], ack = false): Uint8Array {
  const parts = eps.filter((e) => e.kind === "udp").map((e) => describeEndpoint(e));
  return Buffer.from((ack ? [CMM_ACK, ...parts] : parts).join(","), "utf8");
}

/** Whether a call-me-maybe answers ours (the peer punched in reply). */
export function isCallMeMaybeAck(payload: Uint8Array): boolean {
  return Buffer.from(payload.subarray(0, CMM_ACK.length + 1)).toString("utf8").split(",")[0] === CMM_ACK;
}

/**
 * Whether full-TTL probes may go to a candidate we punched at punchedAt (pure): the lead has passed, and when a
 * relay carries call-me-maybe, the peer has punched since our round began (its call-me-maybe or acknowledgement
 * arrived), so no full-TTL packet of ours can reach its NAT before its own opening packet left (docs/nat.md).
 */
export function punchDone(punchedAt: number, peerPunchedAt: number, viaRelay: boolean, now: number, t: Pick<PathTimers, "punchLeadMs" | "roundMs">): boolean {
  if (now - punchedAt < t.punchLeadMs) return false;
  return !viaRelay || (peerPunchedAt > 0 && now - peerPunchedAt <= t.roundMs);
}

/** The quiet after `failed` earlier failed rounds (pure): quietMs, doubled per round, capped. */
export function quietFor(failed: number, t: Pick<PathTimers, "quietMs" | "quietMaxMs">): number {
  return Math.min(t.quietMaxMs, t.quietMs * 2 ** Math.min(failed, 8));
}

export function decodeCandidates(payload: Uint8Array): Endpoint[] {
  const out: Endpoint[] = [];
  for (const part of Buffer.from(payload).toString("utf8").split(",").slice(0, 33)) {
    const ep = parseEndpointString(part);
    if (ep) out.push(ep);
  }
  return out;
}
