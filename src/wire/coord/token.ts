// Enrollment tokens as they travel: ember1.<id>.<secret>.<root pin>. The pin is the SHA-256 of the root CA
// certificate, so a node with no trust bundle yet can authenticate the server before it sends the secret
// (kubeadm's discovery-token-ca-cert-hash idea). The server side (making tokens, their stored hashes, the rule
// that refuses one) is src/coord/tokens.ts.
import { createHash } from "node:crypto";

/** ember1.<id 16 hex>.<secret 43 b64url>.<sha256 of the root CA DER, 43 b64url> */
export const TOKEN_PREFIX = "ember1";
export const TOKEN_PATTERN = /^ember1\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{43})$/;

export interface ParsedToken { id: string; secret: string; pin: string }

export class TokenFormatError extends Error {}

/** The pin of a root CA certificate (DER) as a token carries it. */
export function rootPin(rootDer: Uint8Array): string {
  return createHash("sha256").update(rootDer).digest("base64url");
}

export function parseToken(text: string): ParsedToken {
  const m = TOKEN_PATTERN.exec(text.trim());
  if (!m) throw new TokenFormatError(`not an EmberNet token: expected ${TOKEN_PREFIX}.<id>.<secret>.<root-pin> (did it get cut when copied?)`);
  return { id: m[1], secret: m[2], pin: m[3] };
}
