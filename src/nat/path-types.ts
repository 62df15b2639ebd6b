// The path manager's state and timers, and what it needs of its host (src/nat/paths.ts): one peer's candidates,
// punch round, hold and spray state; the hooks the node gives it. Types and defaults only.
import type { Endpoint } from "../addr/endpoint.js";
import type { HoldEvidence } from "./hold.js";

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


export interface Candidate {
  endpoint: Endpoint;
  /** Last low-TTL punch towards it (0: never). */
  punchedAt: number;
  lastProbeAt: number;
  /** Last reply to one of our probes on it: a proven round trip. */
  lastPongAt: number;
  /** Last authenticated packet of any kind from it (replies, the peer's probes, data). */
  lastHeardAt: number;
  /** The RTT it is scored on (better-path.ts withRttSample), from its last few probe round trips. */
  rttMs?: number;
  rttSamples?: number[];
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
export type NotDirectReason = "no candidate answered" | "mapping clash suspected" | "endpoint-dependent NAT" | "udp blocked" | "no candidates"
  | "no common address family" | "no session";

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
  /** The path traffic uses now: set only by switchTo (the session's copy follows through host.usePath), and since when. */
  path?: Endpoint;
  pathSince?: number;
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
  /** The last time a packet over the relay made us doubt the direct path (PathManager.onRelayRx). */
  relayDoubtAt?: number;
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
   * False for a direct address this node cannot send to at all (a family it has no address of: an IPv6-only
   * host behind NAT64 and a peer's IPv4 candidates): never punched, probed or sprayed.
   */
  canSend?(endpoint: Endpoint): boolean;
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
