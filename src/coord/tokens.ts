// Enrollment tokens, the server's side: making them, the stored SHA-256 of their secret (never the secret), and
// the one rule that refuses a token. Their format and root pin are the protocol's (src/wire/coord/token.ts).
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { rootPin, TOKEN_PREFIX } from "../wire/coord/token.js";

export function newToken(rootDer: Uint8Array): { token: string; id: string; secretHash: string } {
  const id = randomBytes(8).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  return { token: `${TOKEN_PREFIX}.${id}.${secret}.${rootPin(rootDer)}`, id, secretHash: hashSecret(secret) };
}

export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), "hex");
  const b = Buffer.from(storedHash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

/** What the rule looks at of a stored token (store.ts TokenRecord). */
export interface TokenLimits { expiresAt: number; usesLeft: number; usesTotal: number }

export type TokenRefusalReason = "token_unknown" | "token_expired" | "token_used";
export type TokenVerdict<T> = { ok: true; token: T } | { ok: false; reason: TokenRefusalReason; detail: string };

/**
 * The one rule for whether an enrollment token may enroll a node now, used by the server's check before signing
 * and by each store's transaction (a replica that lost the race for a one-time token): one reason and one wording
 * per case. `token` is undefined when none is stored under the id (or its secret did not match).
 */
export function checkToken<T extends TokenLimits>(token: T | undefined, now: number): TokenVerdict<T> {
  if (!token) return { ok: false, reason: "token_unknown", detail: "unknown token (never issued by this server, or mistyped)" };
  if (token.expiresAt <= now) return { ok: false, reason: "token_expired", detail: `token expired at ${new Date(token.expiresAt).toISOString()}` };
  if (token.usesLeft <= 0) return { ok: false, reason: "token_used", detail: `token already used (${token.usesTotal} of ${token.usesTotal} uses); ask for a new one` };
  return { ok: true, token };
}
