// The initiator's claim in an INIT: who is asking, bound to this INIT's ephemeral key by a signature of its
// certificate key, sealed so that only members of the mesh who know the responder read it (docs/crypto.md).
// The responder verifies the claim before any Diffie-Hellman: a sender that is not in its peer map, or that
// cannot sign as the peer it names, gets no answer at all (invariant 7).
import { createHash, sign, verify, type KeyObject } from "node:crypto";
import { open, seal } from "./aead.js";
import { publicKeyFromRaw } from "./ed25519.js";
import { CLAIM_SIGNATURE_CONTEXT, DH_SIZE, LABEL_CLAIM_KEY } from "../wire/constants.js";
import { decodeInitClaim, encodeInitClaim, type InitClaim } from "../wire/messages.js";

export type { InitClaim };

const te = new TextEncoder();

/** A fresh key per INIT: the ephemeral key e is new every time, so the ChaCha20-Poly1305 nonce is 0. */
export function claimKey(responder: Uint8Array, e: Uint8Array): Uint8Array {
  return createHash("sha256").update(te.encode(LABEL_CLAIM_KEY)).update(responder).update(e).digest();
}

/** What the certificate key signs: context || responder name || 0 || e || ts (u64 LE). */
export function claimSignedBytes(responderName: string, e: Uint8Array, ts: number): Buffer {
  if (e.length !== DH_SIZE) throw new Error(`ephemeral key must be ${DH_SIZE} bytes`);
  const t = Buffer.alloc(8);
  t.writeBigUInt64LE(BigInt(ts));
  return Buffer.concat([te.encode(CLAIM_SIGNATURE_CONTEXT), te.encode(responderName), Uint8Array.of(0), e, t]);
}

export function signClaim(certPrivateKey: KeyObject, responderName: string, e: Uint8Array, ts: number): Uint8Array {
  return new Uint8Array(sign(null, claimSignedBytes(responderName, e, ts), certPrivateKey));
}

export function claimSignatureHolds(certPublicKey: Uint8Array, responderName: string, e: Uint8Array, claim: InitClaim): boolean {
  try {
    return verify(null, claimSignedBytes(responderName, e, claim.ts), publicKeyFromRaw(certPublicKey), claim.sig);
  } catch {
    return false;
  }
}

export function sealClaim(responder: Uint8Array, e: Uint8Array, claim: InitClaim): Uint8Array {
  return seal(claimKey(responder, e), 0, undefined, encodeInitClaim(claim));
}

/** The claim, or undefined when it does not decrypt or does not follow the schema. */
export function openClaim(responder: Uint8Array, e: Uint8Array, sealed: Uint8Array): InitClaim | undefined {
  const plain = open(claimKey(responder, e), 0, undefined, sealed);
  if (!plain) return undefined;
  try {
    return decodeInitClaim(plain);
  } catch {
    return undefined;
  }
}
