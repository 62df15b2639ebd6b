// Handshakes in flight. An initiation is ours (towards a known peer); a response is the state of a
// handshake someone started with us, whose identity we learn only from its final message (XX hides it).
import type { Initiator, Responder } from "./crypto-adapter.js";
import type { Endpoint } from "./endpoint.js";

export interface PendingInitiation {
  localIndex: number;
  initiator: Initiator;
  startedAt: number;
  peerName: string;
}

export interface PendingResponse {
  localIndex: number;
  remoteIndex: number;
  responder: Responder;
  startedAt: number;
  from: Endpoint;
}

/** Bound on responses held at once: each costs a DH, so a flood of initiations must not grow memory. */
export const MAX_PENDING_RESPONSES = 4096;
