// The access layer's view of the rest of the node: a directory of peers (from the peer map) and a
// dialer that opens flows over the mesh. Both are interfaces so the proxy, forwards and service
// connector run unchanged against the real node and against an in-process fake mesh in tests.
import type { Duplex } from "node:stream";

export type AccessProtocol = "tcp" | "udp";

/** A peer's announced service, as the peer map carries it. `https` is carried as tcp. */
export interface ServiceInfo { name: string; port: number; protocol: "tcp" | "udp" | "https" }

/** What the node knows about one peer (from the peer map). */
export interface DirectoryPeer { name: string; tenant: string; services: ServiceInfo[] }

export interface Directory {
  /** This node's own identity name and tenant: a bare NAME prefers a peer of `selfTenant`. */
  selfName: string;
  selfTenant: string;
  /** Every peer this node may reach (names can repeat across tenants). */
  peers(): Iterable<DirectoryPeer>;
  peer(name: string): DirectoryPeer | undefined;
}

/** Where a client's request goes once its name is resolved. */
export interface Target {
  peer: string;
  tenant: string;
  port: number;
  protocol: AccessProtocol;
  /** Set when the client named a service (SERVICE.NAME): the receiving node's policy may key on it. */
  service?: string;
}

/**
 * Opens a flow over the mesh. Rejects with DialError (code + human reason) when denied, unreachable,
 * refused or timed out. A udp flow is a Duplex too: datagrams travel on it framed
 * (datagram-framing.ts). The caller listens for the stream's 'error' from the moment the promise
 * settles, so the stream must not emit one in the same turn of the event loop that resolves it.
 */
export interface Dialer { dial(target: Target): Promise<Duplex> }

export type DialErrorCode = "unknown_name" | "denied" | "unreachable" | "refused" | "timeout" | "bad_request";

/** A refused dial. `reason` is for people (and carries the deciding policy rule on a denial). */
export class DialError extends Error {
  override name = "DialError";
  constructor(readonly code: DialErrorCode, readonly reason: string) { super(reason); }
}

/** The logger shape the access layer needs; a pino Logger satisfies it. */
export interface AccessLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/** What any dial failure looks like to a client-facing protocol: a code and a reason. */
export function dialFailure(err: unknown): { code: DialErrorCode | "failed"; reason: string } {
  if (err instanceof DialError) return { code: err.code, reason: err.reason };
  return { code: "failed", reason: err instanceof Error ? err.message : String(err) };
}
