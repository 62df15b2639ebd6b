// A peer: an identity we may hold a session with, its keys, its current path and its timers' state.
import type { Identity } from "../pki/index.js";
import type { Endpoint } from "./endpoint.js";
import type { Keypair } from "./keypair.js";
import type { PendingInitiation } from "./handshakes.js";

export type PeerState = "idle" | "handshaking" | "connected" | "dead" | "revoked";

export interface PeerStats {
  txBytes: number;
  rxBytes: number;
  txPackets: number;
  rxPackets: number;
  handshakes: number;
  lastHandshakeAt?: number;
  lastRttMs?: number;
}

export class Peer {
  identity?: Identity;
  current?: Keypair;
  /**
   * Older keypairs still accepted for receiving, newest first. Simultaneous handshakes leave the two
   * sides sending on different keypairs for a while, so one previous keypair is not enough.
   */
  retired: Keypair[] = [];
  initiation?: PendingInitiation;
  /** Handshake attempts since the last success, for the retry backoff. */
  attempts = 0;
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

  constructor(
    readonly name: string,
    /** Where to send: updated by roaming (an authenticated packet from a new address) and by path discovery. */
    public endpoint: Endpoint | undefined,
    /** Keep a session up even without traffic (mesh peers do; it also holds NAT mappings). */
    public persistent = true,
    now = Date.now(),
  ) {
    this.lastDataAt = now;
  }

  get state(): PeerState {
    if (this.revoked) return "revoked";
    if (this.current) return "connected";
    if (this.initiation) return "handshaking";
    return this.attempts > 0 ? "dead" : "idle";
  }
}
