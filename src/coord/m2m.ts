// Machine-to-machine tokens for node telemetry (docs/telemetry.md). A node obtains them over mTLS only (its
// certificate is its client authentication, RFC 8705 section 2), as a pair:
//   access  (typ at+jwt, RFC 9068): aud "ember:telemetry", 5 minutes, for POST /v1/telemetry;
//   refresh (typ rt+jwt):           aud "ember:token", 30 minutes, one use, for the next pair.
// Both are EdDSA JWTs bound to the certificate that obtained them (cnf.x5t#S256, RFC 8705 section 3): a
// token presented on a connection with any other certificate is refused ("unbound"). A refresh token used
// twice revokes its whole family (every token descended from the same client-credentials grant), the
// reuse detection of OAuth 2.1: a stolen refresh token is then useless to thief and owner alike, and the
// owner simply obtains a new pair with its certificate. Families live in memory: a server restart ends
// them all, which costs each node one new grant.
import { randomBytes } from "node:crypto";
import type { Identity } from "../pki/index.js";
import type { JwtClaims, JwtKey } from "./jwt.js";

export const TOKEN_ISSUER = "ember-coord";
export const TELEMETRY_AUDIENCE = "ember:telemetry";
export const TOKEN_AUDIENCE = "ember:token";
export const ACCESS_TYP = "at+jwt";
export const REFRESH_TYP = "rt+jwt";
export const ACCESS_TTL_S = 5 * 60;
export const REFRESH_TTL_S = 30 * 60;
/** A family revoked by this server because one of its refresh tokens was used twice (a stolen copy, or a bug). */
const REVOKED_FAMILY = "this token's family was revoked after one of its refresh tokens was used twice: obtain a new grant";
/** Families remembered at once; the oldest are forgotten (their tokens then fail as "unknown_family"). */
const MAX_FAMILIES = 50_000;

export type TokenRefusal =
  | "malformed" | "wrong_algorithm" | "unknown_key" | "bad_signature" | "wrong_type" | "wrong_issuer"
  | "wrong_audience" | "expired" | "not_yet_valid" | "unbound" | "wrong_subject" | "replayed" | "revoked" | "unknown_family" | "missing";

/**
 * A family this server does not hold: it restarted, another replica issued the token (a node that moved), or it
 * was forgotten. Routine, not reuse: one wording, apart from "revoked", so an operator never reads it as theft.
 */
const UNKNOWN_FAMILY = "this token's family is not known to this coordination server (it restarted, another replica issued the token, or it was forgotten): obtain a new grant";

export class TokenRefused extends Error {
  constructor(readonly reason: TokenRefusal, readonly detail: string) { super(`${reason}: ${detail}`); }
}

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: "Bearer";
  expires_in: number;
  refresh_expires_in: number;
  /** The server's clock (ms) when it answered: nodes measure their clock offset with it. */
  server_time: number;
}

interface Family { sub: string; thumb: string; revoked: boolean; liveRefresh?: string; expires: number }

export class M2mTokens {
  private readonly families = new Map<string, Family>();
  readonly counters = { issued: 0, refreshed: 0, refused: {} as Record<string, number> };

  constructor(private readonly key: JwtKey, private readonly now: () => number = Date.now) {}

  /** client_credentials over mTLS: a new family for this certificate. */
  grant(id: Identity, thumb: string): TokenPair {
    const fam = randomBytes(9).toString("base64url");
    this.remember(fam, { sub: id.name, thumb, revoked: false, expires: 0 });
    this.counters.issued++;
    return this.pair(id, thumb, fam);
  }

  /** refresh_token grant: the presented token must be this family's live one, bound to this certificate. */
  refresh(id: Identity, thumb: string, token: unknown): TokenPair {
    if (typeof token !== "string" || !token) throw this.refuse("missing", "refresh_token is required");
    const claims = this.check(token, REFRESH_TYP, TOKEN_AUDIENCE, id, thumb);
    const fam = this.liveFamily(claims);
    if (fam.liveRefresh !== claims.jti) {
      fam.revoked = true;
      throw this.refuse("replayed", `refresh token ${claims.jti} was already used; its family is revoked`);
    }
    this.counters.refreshed++;
    return this.pair(id, thumb, String(claims.fam));
  }

  /** An access token for this audience, presented with this certificate; answers its claims or throws TokenRefused. */
  authorize(header: string | undefined, id: Identity, thumb: string, audience = TELEMETRY_AUDIENCE): JwtClaims {
    const m = /^Bearer ([A-Za-z0-9_.-]+)$/.exec(header ?? "");
    if (!m) throw this.refuse("missing", "an Authorization: Bearer <access token> header is required");
    const claims = this.check(m[1], ACCESS_TYP, audience, id, thumb);
    this.liveFamily(claims);
    return claims;
  }

  /** The token's family, known here and not revoked; else the refusal that says which. */
  private liveFamily(claims: JwtClaims): Family {
    const fam = this.families.get(String(claims.fam));
    if (!fam) throw this.refuse("unknown_family", UNKNOWN_FAMILY);
    if (fam.revoked) throw this.refuse("revoked", REVOKED_FAMILY);
    return fam;
  }

  private check(token: string, typ: string, aud: string, id: Identity, thumb: string): JwtClaims {
    const r = this.key.verify(token, { typ, iss: TOKEN_ISSUER, aud, now: this.now() });
    if (!r.ok) throw this.refuse(r.reason, r.detail);
    const cnf = r.claims.cnf as Record<string, unknown> | undefined;
    if (!cnf || typeof cnf["x5t#S256"] !== "string") throw this.refuse("unbound", "token carries no certificate binding (cnf.x5t#S256)");
    if (cnf["x5t#S256"] !== thumb) throw this.refuse("unbound", "token is bound to another certificate than the one presented on this connection");
    if (r.claims.sub !== id.name) throw this.refuse("wrong_subject", `token is for "${r.claims.sub}", the certificate is "${id.name}"`);
    return r.claims;
  }

  private pair(id: Identity, thumb: string, fam: string): TokenPair {
    const now = this.now();
    const iat = Math.floor(now / 1000);
    const base = { iss: TOKEN_ISSUER, sub: id.name, iat, tenant: id.tenant, cnf: { "x5t#S256": thumb }, fam };
    const access = this.key.sign(ACCESS_TYP, { ...base, aud: TELEMETRY_AUDIENCE, exp: iat + ACCESS_TTL_S, jti: randomBytes(12).toString("base64url"), client_id: id.name });
    const refreshJti = randomBytes(12).toString("base64url");
    const refresh = this.key.sign(REFRESH_TYP, { ...base, aud: TOKEN_AUDIENCE, exp: iat + REFRESH_TTL_S, jti: refreshJti });
    const f = this.families.get(fam)!;
    f.liveRefresh = refreshJti;
    f.expires = now + REFRESH_TTL_S * 1000;
    return { access_token: access, refresh_token: refresh, token_type: "Bearer", expires_in: ACCESS_TTL_S, refresh_expires_in: REFRESH_TTL_S, server_time: now };
  }

  private remember(fam: string, f: Family): void {
    if (this.families.size >= MAX_FAMILIES) {
      const now = this.now();
      for (const [k, v] of this.families) if (v.expires && v.expires < now) this.families.delete(k);
      while (this.families.size >= MAX_FAMILIES) this.families.delete(this.families.keys().next().value!);
    }
    this.families.set(fam, f);
  }

  private refuse(reason: TokenRefusal, detail: string): TokenRefused {
    this.counters.refused[reason] = (this.counters.refused[reason] ?? 0) + 1;
    return new TokenRefused(reason, detail);
  }
}
