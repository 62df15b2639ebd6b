// What the session layer tells the node about its sessions (the node puts them on its event bus,
// src/node/events.ts): a session the peer confirmed, and a handshake this node refused.
export type SessionEvent =
  /** initiator: our view as the side that started it (confirmed by the peer's first packet under the keys). */
  | { type: "session_up"; peer: string; endpoint: string; initiator: boolean }
  | { type: "handshake_refused"; peer?: string; reason: string; detail: string; from: string };
