// The device's interfaces with the layers around it: its options and callbacks, what it mirrors to the TUN data
// plane, what sendTo() answers, its handshake bounds, and the path owner it defers to (src/session/device.ts).
import type { Endpoint } from "../addr/endpoint.js";
import type { RestClock } from "../clock/rest-clock.js";
import type { Verifier } from "../pki/index.js";
import type { LocalIdentity } from "./crypto-adapter.js";
import type { Keypair } from "./keypair.js";
import type { Peer } from "./peer.js";
import type { SessionEvent } from "./session-events.js";
import type { SessionTimers } from "./timers.js";

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

/**
 * What became of a datagram handed to sendTo(). "full" means nothing was sent or queued: the caller holds
 * the datagram and waits for onWritable (back-pressure, never a silent drop reported as success).
 */
export type SendResult = "sent" | "queued" | "full" | "unknown_peer" | "revoked";

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
  /** An authenticated packet arrived over a relay while the current path is another (direct, or another relay). */
  onRelayRx?(peer: Peer): void;
  /** A session came up from `from` while the peer has no path at all: the owner makes it the path (or not). */
  adoptPath?(peer: Peer, from: Endpoint): void;
}
