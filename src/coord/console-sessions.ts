// The console's sessions (docs/dashboard.md): an EdDSA JWT (typ session+jwt, aud ember:console, 15 minutes,
// renewed while used, at most 8 hours from the login) in an HttpOnly, Secure, SameSite=Strict cookie, plus one
// server-side row per login in the store. Every token of a login carries the row's id (`sid`) across renewals,
// so ending the row — logout, `ember admin delete`, `ember users disable`, a password replaced — ends every
// token of that login, on every replica (they share the store) and across restarts. A token is accepted only
// while its row is live; a password session also only while its user exists and is not disabled. A
// certificate session is bound to that certificate (cnf.x5t#S256) and is refused on a connection without it.
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { verifyTlsPeer, type Verifier } from "../pki/index.js";
import { certThumbprint, type JwtClaims, type JwtKey } from "./jwt.js";
import type { Store } from "./store.js";

export const SESSION_COOKIE = "ember_session";
export const SESSION_TYP = "session+jwt";
export const SESSION_AUDIENCE = "ember:console";
export const SESSION_ISSUER = "ember-coord";
export const SESSION_TTL_S = 15 * 60;
export const SESSION_MAX_S = 8 * 3600;
/** A token is renewed (a new cookie, same login) once less than this fraction of its life is left. */
const RENEW_FRACTION = 0.5;
/** Why a login ended, as the refusal's reason code. */
export type SessionEnd = "logged_out" | "user_deleted" | "user_disabled" | "password_replaced";
const END_DETAIL: Record<string, string> = {
  logged_out: "this session was ended by logging out",
  user_deleted: "this user was deleted (ember admin delete)",
  user_disabled: "this user was disabled (ember users disable)",
  password_replaced: "this user's password was replaced: log in with the new one",
};

/** scope "device": a user of the mesh, whose console session may only approve device logins (docs/users.md). */
export type Session = JwtClaims & { sid: string; amr: string[]; auth_time: number; cnf?: { "x5t#S256": string }; scope?: "device" };
export type SessionCheck = { ok: true; s: Session; renew: boolean } | { ok: false; reason: string; detail: string };

export class ConsoleSessions {
  readonly refusedCounts: Record<string, number> = {};

  constructor(private readonly ctx: { key: JwtKey; store: Store; verifier: Verifier }) {}

  /** A new login: its row, then its first token in the cookie. */
  async begin(res: ServerResponse, o: { sub: string; method: "password" | "certificate"; thumb?: string; scope?: "device" }): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    const sid = randomBytes(16).toString("base64url");
    await this.ctx.store.createConsoleSession({ sid, username: o.sub, method: o.method, createdAt: now * 1000, expiresAt: (now + SESSION_MAX_S) * 1000 });
    this.issue(res, {
      sub: o.sub, sid, amr: [o.method === "password" ? "pwd" : "mtls"], auth_time: now,
      ...(o.thumb ? { cnf: { "x5t#S256": o.thumb } } : {}), ...(o.scope ? { scope: o.scope } : {}),
    });
  }

  /** A fresh token for the same login (same sid, same auth_time): the 8 hours still count from the login. */
  renew(res: ServerResponse, s: Session): void {
    this.issue(res, { sub: s.sub, sid: s.sid, amr: s.amr, auth_time: s.auth_time, ...(s.cnf ? { cnf: s.cnf } : {}), ...(s.scope ? { scope: s.scope } : {}) });
  }

  /** The request's valid session, or why there is none. */
  async check(req: IncomingMessage): Promise<SessionCheck> {
    const cookie = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (!cookie) return { ok: false, reason: "no_session", detail: "not logged in" };
    const r = this.ctx.key.verify(cookie, { typ: SESSION_TYP, iss: SESSION_ISSUER, aud: SESSION_AUDIENCE });
    if (!r.ok) return this.refused(r.reason, r.detail);
    const s = r.claims as Session;
    if (!Array.isArray(s.amr) || !Number.isSafeInteger(s.auth_time)) return this.refused("malformed", "session token lacks amr/auth_time");
    if (typeof s.sid !== "string") return this.refused("unknown_session", "this session token has no login id (from an older server): log in again");
    const now = Math.floor(Date.now() / 1000);
    if (now - s.auth_time > SESSION_MAX_S) return this.refused("expired", "the session is older than 8 hours: log in again");
    if (s.cnf) {
      const c = (req.socket as TLSSocket).getPeerCertificate?.();
      if (!c?.raw || certThumbprint(c.raw) !== s.cnf["x5t#S256"]) return this.refused("unbound", "this session belongs to a certificate this connection does not present");
      const v = verifyTlsPeer(req.socket as TLSSocket, this.ctx.verifier, { usage: "client" });
      if (!v.ok) return this.refused(v.reason, v.detail);
    }
    const row = await this.ctx.store.getConsoleSession(s.sid);
    if (!row || row.username !== s.sub) return this.refused("unknown_session", "this server holds no such login: log in again");
    if (row.endedWhy) return this.refused(row.endedWhy, END_DETAIL[row.endedWhy] ?? "this session was ended");
    if (s.amr.includes("pwd")) {
      const user = await this.ctx.store.getUser(s.sub);
      if (!user) return this.refused("user_deleted", END_DETAIL.user_deleted);
      if (user.disabled) return this.refused("user_disabled", END_DETAIL.user_disabled);
    }
    return { ok: true, s, renew: s.exp - now < SESSION_TTL_S * RENEW_FRACTION };
  }

  /** Logout: ends the login the request's token belongs to (every token of it), and clears the cookie. */
  async end(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const c = await this.check(req);
    if (c.ok) await this.ctx.store.endConsoleSession(c.s.sid, Date.now(), "logged_out");
    res.setHeader("set-cookie", `${SESSION_COOKIE}=; Path=/ui; HttpOnly; Secure; SameSite=Strict; Max-Age=0`);
  }

  /** Ends every live password login of a user; how many. */
  endUser(username: string, why: SessionEnd): Promise<number> {
    return this.ctx.store.endUserSessions(username, Date.now(), why);
  }

  /** Forgets logins past their 8 hours (ended or not): nothing can use them any more. */
  prune(): Promise<number> {
    return this.ctx.store.pruneConsoleSessions(Date.now());
  }

  /** True while the login `sid` is live (a live stream checks its login now and then). */
  async live(sid: string): Promise<boolean> {
    const row = await this.ctx.store.getConsoleSession(sid);
    return !!row && !row.endedWhy && row.expiresAt > Date.now();
  }

  private issue(res: ServerResponse, claims: { sub: string; sid: string; amr: string[]; auth_time: number; cnf?: Session["cnf"]; scope?: "device" }): void {
    const iat = Math.floor(Date.now() / 1000);
    const token = this.ctx.key.sign(SESSION_TYP, {
      iss: SESSION_ISSUER, aud: SESSION_AUDIENCE, iat, exp: iat + SESSION_TTL_S, jti: randomBytes(12).toString("base64url"), ...claims,
    });
    res.setHeader("set-cookie", `${SESSION_COOKIE}=${token}; Path=/ui; HttpOnly; Secure; SameSite=Strict; Max-Age=${SESSION_TTL_S}`);
  }

  private refused(reason: string, detail: string): { ok: false; reason: string; detail: string } {
    this.refusedCounts[reason] = (this.refusedCounts[reason] ?? 0) + 1;
    return { ok: false, reason, detail };
  }
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const k = part.slice(0, eq).trim();
    if (!(k in out)) out[k] = part.slice(eq + 1).trim();
  }
  return out;
}
