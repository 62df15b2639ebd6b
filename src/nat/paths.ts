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
import { describeEndpoint, endpointKey, sameEndpoint, type Endpoint } from "../addr/endpoint.js";
import { HOLD, holdInterval, isHolder, lapsed, newHoldEvidence, survived } from "./hold.js";
import { isOverlayAddress } from "../wire/constants.js";
import { decodeProbe, encodeProbe } from "../wire/probe.js";
import { ProbeLedger } from "./probe-ledger.js";
import {
  CONNTRACK_UDP_UNREPLIED_MS, DEFAULT_PATH_TIMERS, PROVEN_PATH_MS,
  type Candidate, type PathHost, type PathTimers, type PeerActivity, type PeerPaths,
} from "./path-types.js";
import { punchDone, quietFor } from "./punch-rules.js";
import { sprayTick, type SprayHost } from "./path-spray.js";
import { pathReport, type PathReport } from "./path-report.js";
import { encodeCandidates } from "./call-me-maybe.js";
import { betterPath, CONFIRM_PROBE_MS, CONFIRM_SAMPLES, withRttSample, type ScoredPath } from "./better-path.js";
import { forgetOwnMappings, peerRoamed, RELAY_RX_DOUBT_MS } from "./path-moves.js";

/**
 * Probes of the current direct path that must go unanswered before it is dropped (with pathTimeoutMs passed):
 * the wake-up probe plus two heartbeats. With a 2-core host under load a timer alone fired on stalls, not deaths.
 */
const DEAD_AFTER_PROBES = 2;

const ACTIVE: PeerActivity = { idle: false, lastSentAt: 0, lastDirectRxAt: 0 };

export class PathManager {
  readonly peers = new Map<string, PeerPaths>();
  private readonly probes = new ProbeLedger();
  private readonly sprayHost: SprayHost;

  constructor(private readonly host: PathHost, readonly timers: PathTimers = DEFAULT_PATH_TIMERS) {
    this.sprayHost = {
      timers, log: host.log, mapping: () => host.mapping?.(), sendable: (ep) => this.sendable(ep),
      sendProbe: (s, ep) => {
        const id = this.probes.issue({ peer: s.name, key: endpointKey(ep), sentAt: performance.now(), spray: ep });
        host.sendVia(s.name, ep, "probe", this.probePayload(id));
      },
    };
  }

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
    if (relay && !this.provenDirect(s) && !sameEndpoint(relay, s.path)) this.toRelay(s, relay, "path: relay moved");
  }

  /** Traffic to the peer's relay path now, told as a path change (the relay moved, or our network changed). */
  private toRelay(s: PeerPaths, relay: Endpoint, why: string): void {
    this.host.log.info({ peer: s.name, from: describeEndpoint(s.path), to: describeEndpoint(relay) }, why);
    this.host.pathChanged?.({ peer: s.name, from: describeEndpoint(s.path), to: describeEndpoint(relay), direct: false });
    s.switches++;
    this.switchTo(s, relay);
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
    // While direct, a new source is probed only when the current path is in doubt (the peer may have moved).
    const doubt = s.revalidateSince ?? s.suspectSince;
    if ((s.path?.kind === "udp" && doubt === undefined) || !this.host.hasSession(peer)) return;
    const due = now - c.lastProbeAt >= this.timers.heartbeatMs || (doubt !== undefined && c.lastProbeAt < doubt);
    if (due) this.sendProbe(s, c, key, now);
  }

  /** The peer's authenticated packet came over the relay while we are direct: doubt the path (RELAY_RX_DOUBT_MS). */
  onRelayRx(peer: string): void {
    const s = this.peers.get(peer);
    if (!s || s.path?.kind !== "udp" || s.revalidateSince !== undefined || !s.relay) return;
    const c = s.candidates.get(endpointKey(s.path));
    const now = this.host.now();
    if ((c && now - this.heardAt(s, c) < RELAY_RX_DOUBT_MS) || now - (s.relayDoubtAt ?? 0) < this.timers.heartbeatMs) return;
    s.relayDoubtAt = now;
    this.host.log.info({ peer, path: describeEndpoint(s.path) }, "path: the peer sends over the relay; revalidating");
    this.revalidate(s, now);
  }

  /**
   * Our own network changed (docs/networks.md "Nodes that move"): every direct path moves to the relay now; an active
   * peer's candidates are punched and probed again once netcheck has measured the new network (punchReady); a
   * resting peer's, when it wakes.
   */
  networkChanged(): void {
    for (const s of this.peers.values()) {
      forgetOwnMappings(s);
      if (s.path?.kind !== "udp") continue;
      s.directSince = undefined;
      if (s.relay) this.toRelay(s, s.relay, "path: relay (our network changed)");
      else this.revalidate(s, this.host.now());
    }
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

  private sendable(ep: Endpoint): boolean {
    return this.host.canSend?.(ep) !== false;
  }

  private anySendable(s: PeerPaths): boolean {
    for (const c of s.candidates.values()) if (this.sendable(c.endpoint)) return true;
    return false;
  }

  private inRound(s: PeerPaths, now: number): boolean {
    return s.round.startedAt > 0 && now - s.round.startedAt < this.timers.roundMs;
  }

  private sendProbe(s: PeerPaths, c: Candidate, key: string, now: number, hold = false): void {
    const id = this.probes.issue({ peer: s.name, key, sentAt: performance.now(), hold });
    c.lastProbeAt = now;
    c.probes++;
    this.host.sendVia(s.name, c.endpoint, "probe", this.probePayload(id));
  }

  /** A probe id (or the id a reply echoes) followed by our side's NAT byte. */
  private probePayload(id: Uint8Array): Buffer {
    return encodeProbe(id, !!this.host.noNat?.());
  }

  /** Our side and the peer's, for isHolder (hold.ts). */
  private holds(s: PeerPaths): boolean {
    if (!this.host.selfName) return false;
    return isHolder({ name: this.host.selfName, noNat: this.host.noNat?.() }, { name: s.name, noNat: s.peerNoNat });
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
    this.host.log.debug({ peer: s.name, ack, candidates: mine.map(describeEndpoint) }, "call-me-maybe sent");
    this.host.sendVia(s.name, s.relay, "call-me-maybe", encodeCandidates(mine, ack));
  }

  /** A probe from the peer arrived (authenticated) on `from`: answer on the same path, learn the path. */
  onProbe(peer: string, from: Endpoint, payload: Uint8Array): void {
    const s = this.state(peer);
    const probe = decodeProbe(payload);
    if (!probe) return;
    s.peerNoNat = probe.noNat;
    this.host.sendVia(peer, from, "probe-reply", this.probePayload(probe.id));
    // Learned (peer-reflexive) and probed back after the reply went out: both directions go direct together.
    this.onDirectRx(peer, from);
  }

  onProbeReply(peer: string, from: Endpoint, payload: Uint8Array): void {
    const probe = decodeProbe(payload);
    if (!probe) return;
    const o = this.probes.answer(probe.id, peer);
    if (!o) return;
    const s = this.state(peer);
    s.peerNoNat = probe.noNat;
    const now = this.host.now();
    if (o.spray) {
      // A sprayed port answered: it becomes a proven candidate.
      if (!sameEndpoint(o.spray, from)) return;
      if (s.spray) s.spray.hit = describeEndpoint(from);
      this.host.log.info({ peer, endpoint: describeEndpoint(from), probes: s.spray?.probes }, "spray hit: direct path through an endpoint-dependent NAT");
      const k = endpointKey(from);
      const rtt = withRttSample(undefined, performance.now() - o.sentAt);
      s.candidates.set(k, { endpoint: from, punchedAt: 0, lastProbeAt: now, lastPongAt: now, lastHeardAt: now, probes: 1, pongs: 1, rttMs: rtt.rttMs, rttSamples: rtt.samples });
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
    ({ rttMs: c.rttMs, samples: c.rttSamples } = withRttSample(c.rttSamples, performance.now() - o.sentAt));
    // Unconfirmed: the next probe goes at once, so a candidate is judged on CONFIRM_SAMPLES answers a few RTTs on.
    if (c.pongs < CONFIRM_SAMPLES && !o.hold) this.sendProbe(s, c, o.key, now);
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
    this.host.log.debug({ peer, ack, candidates: candidates.map(describeEndpoint) }, "call-me-maybe received");
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
      if (now - c.lastPongAt <= this.timers.pathTimeoutMs || !this.sendable(c.endpoint)) continue;
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
    if (s.path?.kind === "udp") this.revalidate(s, now);
  }

  /** The current direct path is in doubt: a probe now, and data also over the relay until it answers. */
  private revalidate(s: PeerPaths, now: number): void {
    const key = endpointKey(s.path!);
    const c = s.candidates.get(key);
    s.revalidateSince = now;
    s.probesAtSuspect = c?.probes;
    if (s.relay) this.host.usePath(s.name, s.path!, s.relay);
    if (c && this.host.hasSession(s.name)) this.sendProbe(s, c, key, now);
  }

  private switchTo(s: PeerPaths, next: Endpoint): void {
    s.path = next;
    s.pathSince = this.host.now();
    s.revalidateSince = undefined;
    s.suspectSince = undefined;
    this.host.usePath(s.name, next);
  }

  private choose(s: PeerPaths): void {
    const now = this.host.now();
    // The current direct path stays eligible while it is not known dead (the peer's own packets prove it, or
    // nothing was sent that it failed to answer); any other candidate needs a recent reply to our probe.
    const roamed = this.roamedFrom(s);
    const currentAlive = s.path?.kind === "udp" && !this.directDead(s, now) && !roamed;
    let best: Candidate | undefined;
    let bestScore: ScoredPath | undefined;
    for (const c of s.candidates.values()) {
      if (c.rttMs === undefined) continue;
      const isCurrent = sameEndpoint(c.endpoint, s.path);
      if (isCurrent && roamed) continue;
      if (now - c.lastPongAt > this.timers.pathTimeoutMs && !(isCurrent && currentAlive && c.pongs > 0)) continue;
      // A live direct path gives way only to a confirmed one (two unconfirmed families flipped on noise).
      if (!isCurrent && currentAlive && c.pongs < CONFIRM_SAMPLES) continue;
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

  /** Whether the peer moved away from our current direct path to another candidate (path-moves.ts peerRoamed). */
  private roamedFrom(s: PeerPaths): boolean {
    if (s.path?.kind !== "udp") return false;
    const a = this.activity(s);
    const current = s.candidates.get(endpointKey(s.path));
    return !!peerRoamed(s, current, (c) => this.heardAt(s, c), { at: a.lastDirectRxAt, from: a.lastDirectRxFrom });
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
        if (isCurrent || !this.sendable(c.endpoint)) continue;
        // A candidate punched but not yet probed gets its first probe as soon as the lead has passed.
        const firstAfterPunch = c.punchedAt > c.lastProbeAt && now - c.punchedAt >= this.timers.punchLeadMs;
        const answering = now - c.lastPongAt <= this.timers.pathTimeoutMs * 2;
        // While direct, only candidates that answered before are worth a probe (a clearly better one may win).
        // One answer is no verdict on its RTT: confirmed by a few more before the path choice rests on it.
        const confirming = answering && c.pongs > 0 && c.pongs < CONFIRM_SAMPLES;
        const interval = confirming ? CONFIRM_PROBE_MS : !direct ? this.timers.probeWhileRelayedMs : c.pongs > 0 || answering ? this.timers.otherCandidatesMs : Infinity;
        if (firstAfterPunch || now - c.lastProbeAt >= interval) this.probe(s, key, lead);
      }
      if (!direct) this.endRound(s, now);
      if (lead && !direct && s.relay && this.anySendable(s) && now >= s.round.quietUntil && s.round.failed < this.timers.maxRounds && now - s.lastCallMeMaybeAt >= this.timers.callMeMaybeMs) this.callMeMaybe(s, now);
      this.choose(s);
      if (lead) sprayTick(s, now, this.sprayHost);
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

  /** The peer's path state for ember peers and status (path-report.ts). */
  describe(name: string): PathReport | undefined {
    const s = this.peers.get(name);
    if (!s) return undefined;
    return pathReport(s, this.host.now(), {
      idle: this.activity(s).idle, holder: this.holds(s), measured: !!this.host.sessionFresh?.(s.name), session: this.host.hasSession(s.name),
      sendable: this.anySendable(s), mapping: this.host.mapping?.(), pathTimeoutMs: this.timers.pathTimeoutMs,
    });
  }
}

