// A peer: an identity we may hold a session with, its keys, its current path and its timers' state.
import type { Identity } from "../pki/index.js";
import type { Endpoint } from "../addr/endpoint.js";
import type { Keypair } from "./keypair.js";
import type { PendingInitiation } from "./handshakes.js";
import type { PeerVersion } from "./crypto-adapter.js";

/**
 * What is true of the peer now (docs/sessions.md):
 * - idle: no session and no attempt yet;
 * - handshaking: the first attempt is under way, or our session is not confirmed by the peer yet;
 * - connected: a session the peer confirmed (something authenticated under its keys arrived);
 * - no_answer: attempts timed out with no answer (the peer is down or unreachable, or it refuses us: a
 *   refusing node stays silent, so the two look the same from here); retries continue;
 * - refused: this node refused the peer's handshake (Peer.refusal says why); retries continue;
 * - revoked: the peer's certificate is revoked.
 */
export type PeerState = "idle" | "handshaking" | "connected" | "no_answer" | "refused" | "revoked";

/** Why this node refused the peer's last handshake: a verifier reason, wrong_peer, bad_binding, ... */
export interface Refusal {
  reason: string;
  detail: string;
  at: number;
}

export interface PeerStats {
  txBytes: number;
  rxBytes: number;
  txPackets: number;
  rxPackets: number;
  handshakes: number;
  lastHandshakeAt?: number;
  /** When the current session came up from none (set by Device.install; a rekey keeps it, dropped keys do not). */
  sessionSince?: number;
  lastRttMs?: number;
}

export class Peer {
  identity?: Identity;
  /** What the peer announced in its last handshake (protocol 1 when nothing: release 0.1.0); set by Device.install. */
  version?: PeerVersion;
  current?: Keypair;
  /**
   * Older keypairs still accepted for receiving, newest first. Simultaneous handshakes leave the two
   * sides sending on different keypairs for a while, so one previous keypair is not enough.
   */
  retired: Keypair[] = [];
  initiation?: PendingInitiation;
  /** Handshake attempts since the last success, for the retry backoff. */
  attempts = 0;
  /** Attempts since the last confirmed session that got no answer (or no confirmation) in time. */
  unanswered = 0;
  /** This node's last refusal of the peer, until a session is confirmed. */
  refusal?: Refusal;
  /** A cookie from the peer (it was under load), for mac2 of our next INITs; see docs/crypto.md. */
  cookie?: { value: Uint8Array; receivedAt: number };
  nextAttemptAt = 0;
  lastSentAt = 0;
  /** Last packet sent on the peer's current path (data and keepalives; not the path layer's probes elsewhere). */
  lastPathSentAt = 0;
  lastReceivedAt = 0;
  /**
   * Last application datagram sent or received (any inner kind but the session's and the path layer's own:
   * keepalive, path probes, call-me-maybe). Starts at creation, so a new peer is active until idleAfterMs.
   */
  lastDataAt: number;
  /** When the peer last became active after a rest (0: never rested). */
  activeSince = 0;
  /** The last authenticated packet from a direct address: when and from where (the path layer reads it). */
  lastDirectRxAt = 0;
  lastDirectRxFrom?: Endpoint;
  lastRelayRxAt = 0;
  /**
   * A second path that data packets also go to while the path layer revalidates the first (after a rest):
   * a lapsed direct mapping then costs nothing, the copy over the relay arrives, and the receiver's replay
   * window drops whichever copy comes second. Set only through Device.setPath.
   */
  shadow?: Endpoint;
  /** Packets waiting for a session; bounded (MAX_QUEUE in device.ts): a full queue refuses, never drops. */
  readonly queue: Uint8Array[] = [];
  /** sendTo() answered "full": tell the sender (onWritable) once there is room again. */
  blocked = false;
  readonly stats: PeerStats = { txBytes: 0, rxBytes: 0, txPackets: 0, rxPackets: 0, handshakes: 0 };
  revoked = false;

  /**
   * Where to send: the session's copy of the path. With a path manager (src/nat/paths.ts) it owns the path and
   * this follows it (Device.setPath); without one, roaming (an authenticated packet from a new address) moves it.
   */
  get endpoint(): Endpoint | undefined {
    return this.path;
  }

  /** Device.moveTo is the only caller: one setter for the path the session sends on. */
  followPath(endpoint: Endpoint): void {
    this.path = endpoint;
  }

  constructor(
    readonly name: string,
    private path: Endpoint | undefined,
    /** Keep a session up even without traffic (mesh peers do; it also holds NAT mappings). */
    public persistent = true,
    now = Date.now(),
  ) {
    this.lastDataAt = now;
  }

  /** A keypair the peer confirmed is usable for receiving (after a rekey the new one may not be yet). */
  get confirmed(): boolean {
    return !!this.current?.confirmed || this.retired.some((k) => k.confirmed);
  }

  get state(): PeerState {
    if (this.revoked) return "revoked";
    if (this.current && this.confirmed) return "connected";
    if (this.refusal) return "refused";
    if (this.unanswered > 0) return "no_answer";
    if (this.initiation || this.current) return "handshaking";
    return "idle";
  }

  /** The state in words, for errors and logs: "refused (unknown_ca: ...)", "no_answer (3 handshake attempts unanswered ...)". */
  describeState(): string {
    const s = this.state;
    if (s === "refused") return `refused (${this.refusal!.reason}: ${this.refusal!.detail})`;
    if (s === "no_answer") {
      const n = this.unanswered;
      return `no_answer (${n} handshake attempt${n === 1 ? "" : "s"} unanswered: the peer is down or unreachable, or it does not accept this node; still trying)`;
    }
    return s;
  }
}
