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
  lastReceivedAt = 0;
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
  ) {}

  get state(): PeerState {
    if (this.revoked) return "revoked";
    if (this.current) return "connected";
    if (this.initiation) return "handshaking";
    return this.attempts > 0 ? "dead" : "idle";
  }
}
