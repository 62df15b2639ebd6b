// Handshakes in flight. An initiation is ours (towards a known peer); a response is the state of a
// handshake someone started with us, whose identity we learn only from its final message (XX hides it).
import type { Initiator, Responder } from "./crypto-adapter.js";
import type { Endpoint } from "../addr/endpoint.js";

export interface PendingInitiation {
  localIndex: number;
  initiator: Initiator;
  startedAt: number;
  peerName: string;
  /** The INIT as sent (its fragments): sent again, with mac2, when a cookie reply comes. */
  fragments: Buffer[];
  /** mac1 of the first fragment: the associated data of the cookie reply that answers it. */
  mac1: Uint8Array;
  /** What we know about the responder (docs/crypto.md): keys mac1, the claim and the cookie reply. */
  responderKey: Uint8Array;
  /** A cookie reply was taken for this INIT already (one resend per INIT: no ping-pong). */
  cookieTaken: boolean;
}

export interface PendingResponse {
  localIndex: number;
  remoteIndex: number;
  responder: Responder;
  startedAt: number;
  from: Endpoint;
  /** The identity the INIT's signed claim named: the final message must authenticate exactly it. */
  claimed: string;
}

/** Bound on responses held at once: each costs a DH, so a flood of initiations must not grow memory. */
export const MAX_PENDING_RESPONSES = 4096;
