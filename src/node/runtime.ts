// What the layers above the session (streams, services, the proxy, the SDK, later TUN) may use of a running
// node: one small interface, so none of them reaches into the daemon's or the mesh's fields. The daemon
// implements it; tests may implement it in memory.
import type { NodeEvents } from "./events.js";
import type { Identity } from "../pki/index.js";
import type { Endpoint } from "../addr/endpoint.js";
import type { InnerHandler } from "../session/inner.js";
import type { SendResult } from "../session/device.js";
import type { InnerType } from "../wire/constants.js";
import type { FlowPolicy } from "./flow-policy.js";
import type { Principal } from "../policy/index.js";
import type { Logger } from "pino";

/** A service a peer announces: its name, its port on the mesh and its protocol. */
export interface AnnouncedService { name: string; port: number; protocol: "tcp" | "udp" | "https" }

/** A peer as this node knows it: from the peer map (or a static peer, which has no tenant or groups yet). */
export interface KnownPeer {
  name: string;
  tenant: string;
  groups: string[];
  services: AnnouncedService[];
  /** TUN mode's overlay IPv4 address, from the peer map (static peers have none). */
  overlayIp?: string;
}

/**
 * Events of a runtime:
 * - "writable" (peer): a peer whose send() answered "full" can take datagrams again;
 * - "peer-gone" (peer, reason): the peer left the map or was revoked: everything with it ends now;
 * - "rules" (): the policy rules, or who a peer or this node acts as (a login, logout or expiry), changed:
 *   live flows must be checked again;
 * - "peers" (): the set of known peers or their services changed.
 */
export interface NodeRuntime {
  readonly log: Logger;
  readonly events: NodeEvents;
  readonly policy: FlowPolicy;
  /** This node's identity, from its current certificate. */
  identity(): Identity;
  /** Seals one inner message to the peer over its current path (see SendResult for back-pressure). */
  send(peer: string, kind: InnerType, payload: Uint8Array): SendResult;
  /** Largest inner payload (after the kind byte) that fits one datagram on the peer's current path. */
  maxPayload(peer: string): number;
  /** The path the peer's session uses now, if any. */
  pathOf(peer: string): Endpoint | undefined;
  /** The verified identity of the peer's session (from its certificate chain); none without a session. */
  peerIdentity(peer: string): Identity | undefined;
  /**
   * Who the peer's flows come from: the person logged in on it (a verified user certificate bound to its
   * session's device) or else the machine of its session; none without a session.
   */
  peerPrincipal(peer: string): Principal | undefined;
  /** Who this node's own flows come from: the person logged in here, or this machine. */
  selfPrincipal(): Principal;
  /** Registers the handler of an inner kind (one per kind). */
  onInner(kind: InnerType, handler: InnerHandler): void;
  knownPeers(): Iterable<KnownPeer>;
  knownPeer(name: string): KnownPeer | undefined;
}
