// Enrollment tokens: ember1.<id>.<secret>.<root pin>. The server stores only SHA-256(secret); the pin is the
// SHA-256 of the root CA certificate, so a node with no trust bundle yet can authenticate the server
// before it sends the secret (kubeadm's discovery-token-ca-cert-hash idea).
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { TOKEN_PATTERN, TOKEN_PREFIX } from "./protocol.js";

export interface ParsedToken { id: string; secret: string; pin: string }

export class TokenFormatError extends Error {}

export function rootPin(rootDer: Uint8Array): string {
  return createHash("sha256").update(rootDer).digest("base64url");
}

export function newToken(rootDer: Uint8Array): { token: string; id: string; secretHash: string } {
  const id = randomBytes(8).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  return { token: `${TOKEN_PREFIX}.${id}.${secret}.${rootPin(rootDer)}`, id, secretHash: hashSecret(secret) };
}

export function parseToken(text: string): ParsedToken {
  const m = TOKEN_PATTERN.exec(text.trim());
  if (!m) throw new TokenFormatError(`not an EmberNet token: expected ${TOKEN_PREFIX}.<id>.<secret>.<root-pin> (did it get cut when copied?)`);
  return { id: m[1], secret: m[2], pin: m[3] };
}

export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), "hex");
  const b = Buffer.from(storedHash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The one wording of each refused enrollment token, whether the server's check before signing finds it or the
 * store's transaction does (a replica that lost the race for a one-time token): operators saw two texts for one case.
 */
export const TOKEN_REFUSAL = {
  unknown: "unknown token (never issued by this server, or mistyped)",
  expired: (expiresAt: number) => `token expired at ${new Date(expiresAt).toISOString()}`,
  used: (usesTotal: number) => `token already used (${usesTotal} of ${usesTotal} uses); ask for a new one`,
} as const;
