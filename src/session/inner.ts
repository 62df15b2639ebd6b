// Inner messages: what a DATA packet carries once opened. Its first plaintext byte is the kind (INNER in
// src/wire/constants.ts); each layer registers a handler for its own kinds here, and the device dispatches by
// kind alone — never by payload length or shape — so a path probe, an application ping and a stream frame
// cannot be mistaken for one another.
import type { Endpoint } from "../addr/endpoint.js";
import type { Peer } from "./peer.js";
import { INNER, type InnerType } from "./crypto-adapter.js";

/**
 * Handles one authenticated inner message from `peer`, which arrived over `from` (the path it came by, not
 * necessarily the session's current path). `payload` is a view into the device's receive buffer, valid only
 * during the call: copy what you keep.
 */
export type InnerHandler = (peer: Peer, from: Endpoint, payload: Buffer) => void;

/**
 * Whether an inner kind is application traffic (it keeps a peer active): everything except the session's
 * keepalive and the path layer's probes and call-me-maybe, which run on their own schedules.
 */
export function isActivityKind(type: number): boolean {
  return type !== INNER.KEEPALIVE && type !== INNER.PATH_PROBE && type !== INNER.PATH_PROBE_REPLY && type !== INNER.CALL_ME_MAYBE;
}

const NAMES = new Map<number, string>(Object.entries(INNER).map(([k, v]) => [v, k.toLowerCase()]));

/** The name of an inner kind, for logs and drop counters. */
export function innerName(type: number): string {
  return NAMES.get(type) ?? `0x${type.toString(16).padStart(2, "0")}`;
}

export class InnerRegistry {
  private readonly handlers = new Map<number, InnerHandler>();

  /** One handler per kind: registering a kind twice is a bug in the composition, so it throws. */
  register(type: InnerType, handler: InnerHandler): void {
    if (this.handlers.has(type)) throw new Error(`inner kind ${innerName(type)} already has a handler`);
    this.handlers.set(type, handler);
  }

  unregister(type: InnerType): void {
    this.handlers.delete(type);
  }

  /** Runs the kind's handler; false when no layer handles it (the caller counts the drop). */
  dispatch(type: number, peer: Peer, from: Endpoint, payload: Buffer): boolean {
    const h = this.handlers.get(type);
    if (!h) return false;
    h(peer, from, payload);
    return true;
  }
}
