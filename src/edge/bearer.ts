// Bearer tokens for token-authenticated publications: compact JWS (EdDSA) that the coordination server signs with
// its token key (src/crypto/jwt.ts) and the edge checks with the public half the peer map gives it. A token is
// bound to one hostname (aud) and has a lifetime; nothing else in it is trusted.
import { createPublicKey, verify, type KeyObject } from "node:crypto";
import { EDGE_TOKEN_ISSUER, EDGE_TOKEN_TYPE } from "../wire/coord/edge.js";
import { jwkThumbprint, JWT_SKEW_S, MAX_JWT_CHARS } from "../crypto/jwt.js";

export type BearerResult = { ok: true; sub: string } | { ok: false; reason: string };

export class BearerVerifier {
  private readonly key: KeyObject;
  private readonly kid: string;

  constructor(publicKeyPem: string) {
    this.key = createPublicKey(publicKeyPem);
    if (this.key.asymmetricKeyType !== "ed25519") throw new Error("the token key is not Ed25519");
    this.kid = jwkThumbprint(this.key);
  }

  check(token: string, hostname: string, nowMs = Date.now()): BearerResult {
    const no = (reason: string): BearerResult => ({ ok: false, reason });
    if (token.length > MAX_JWT_CHARS) return no("token too long");
    const parts = token.split(".");
    if (parts.length !== 3 || !parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p))) return no("not a compact JWS");
    let header: any, claims: any;
    try {
      header = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8"));
      claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    } catch { return no("header or payload is not base64url JSON"); }
    if (!header || typeof header !== "object" || !claims || typeof claims !== "object") return no("malformed token");
    if (header.alg !== "EdDSA" || header.typ !== EDGE_TOKEN_TYPE || header.kid !== this.kid) return no("not an edge token of this mesh's coordination server");
    const sig = Buffer.from(parts[2], "base64url");
    if (sig.length !== 64 || !verify(null, Buffer.from(`${parts[0]}.${parts[1]}`), this.key, sig)) return no("bad signature");
    if (claims.iss !== EDGE_TOKEN_ISSUER) return no("wrong issuer");
    if (claims.aud !== hostname) return no(`token is for ${String(claims.aud).slice(0, 80)}, not ${hostname}`);
    const now = Math.floor(nowMs / 1000);
    if (!Number.isSafeInteger(claims.exp) || now > claims.exp + JWT_SKEW_S) return no("token expired");
    if (!Number.isSafeInteger(claims.iat) || now + JWT_SKEW_S < claims.iat) return no("token not valid yet");
    return { ok: true, sub: typeof claims.sub === "string" ? claims.sub : "" };
  }
}

/** The bearer token of an HTTP/1.x request head (latin1 text up to the blank line), if any. */
export function bearerOf(head: string): string | undefined {
  for (const line of head.split("\r\n").slice(1)) {
    const m = /^authorization:[ \t]*bearer[ \t]+([^ \t]+)[ \t]*$/i.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

/** The head without its Authorization field: the service never sees the edge's credential. */
export function withoutAuthorization(head: string): string {
  return head.split("\r\n").filter((l, i) => i === 0 || !/^authorization:/i.test(l)).join("\r\n");
}
