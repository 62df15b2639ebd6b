// The node's events, typed, on one bus: what happened to sessions, paths, flows, the coordination stream, relays
// and the certificate. Layers that see an event emit it; health (ember logs, problems), telemetry, metrics and
// the console's feed subscribe. The log lines stay for people; no code reads them back.
import type { Flow } from "./flow-policy.js";

/**
 * A flow decided, refused or cut. `flow` is the flow as it was decided (absent when the open could not even be
 * read, or came from a peer with no verified session); `text` its describeFlow() form.
 */
export interface FlowDecisionEvent {
  event: "flow_allowed" | "flow_denied" | "flow_cut" | "flow_refused" | "flow_no_service" | "flow_bad_request";
  /** The sender's pre-check or the receiver's authoritative check (absent: the sender's view of a refusal). */
  side?: "sender" | "receiver";
  flow?: Flow;
  text?: string;
  /** The peer the flow is with, when no flow could be built. */
  peer?: string;
  /** The outside source of a flow carried from a public edge. */
  external?: string;
  rule?: string;
  reason?: string;
}

/** Every event and its payload; the bus is typed by this map. */
export interface NodeEventMap {
  /** A session the peer confirmed (the responder's, or the initiator's once confirmed). */
  session_up: { peer: string; endpoint: string; initiator: boolean };
  /** This node refused a peer's handshake (peer undefined: the claim did not even name a known peer). */
  handshake_refused: { peer?: string; reason: string; detail: string; from: string };
  /** The path manager moved a peer's traffic: to a direct path (direct) or to the relay. */
  path_changed: { peer: string; from: string; to: string; direct: boolean; rttMs?: number };
  flow_decision: FlowDecisionEvent;
  coord_connected: Record<string, never>;
  coord_lost: Record<string, never>;
  /** The coordination client failed at something (a connect, a report): the message, for ember status. */
  coord_error: { message: string };
  relay_connected: { relay: string };
  relay_lost: { relay: string; why: string };
  certificate_rotated: { serial: string; notAfter: string };
  /**
   * Our network changed (addresses or default routes: what was added and removed) or we woke from a sleep or a stop
   * (sleptMs); away: what our paths ran on is gone, and they are being found again (src/node/network-watch.ts).
   */
  network_changed: { why: "address" | "wake"; added: string[]; removed: string[]; sleptMs?: number; away: boolean };
  /** The layer below has room again for a peer told "full" (streams resume). */
  writable: { peer: string };
  /** A peer left the map or was revoked: its session is gone. */
  peer_gone: { peer: string; why: string };
  /** The policy rules changed (live flows are checked again). */
  rules: Record<string, never>;
  /** Peers or their announced services changed. */
  peers: Record<string, never>;
}

export type NodeEventName = keyof NodeEventMap;
type Listener<K extends NodeEventName> = (e: NodeEventMap[K]) => void;

/** A typed, synchronous event bus. A throwing listener is logged by the caller's logger, not the emitter's problem. */
export class NodeEvents {
  private readonly listeners = new Map<NodeEventName, Set<Listener<any>>>();

  constructor(private readonly onListenerError?: (event: NodeEventName, err: Error) => void) {}

  on<K extends NodeEventName>(event: K, fn: Listener<K>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => { set!.delete(fn); };
  }

  emit<K extends NodeEventName>(event: K, payload: NodeEventMap[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(payload);
      } catch (err) {
        this.onListenerError?.(event, err as Error);
      }
    }
  }
}
