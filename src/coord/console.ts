// The operators' console (web dashboard, docs/dashboard.md), served by the coordination server on its own
// TLS listener under /ui/. Two logins, one session:
//   - an admin certificate (role "admin" in its signed grants) presented by the browser: POST /ui/api/login/cert;
//   - a username and password made with `ember admin create`: POST /ui/api/login.
// Either yields a session token: an EdDSA JWT (typ session+jwt, aud ember:console, 15 minutes, renewed while
// used, at most 8 hours from the login) in an HttpOnly, Secure, SameSite=Strict cookie. A certificate
// session is bound to that certificate (cnf.x5t#S256) and is refused on a connection without it. This is
// the only place end-user tokens exist; nodes never accept them. Pages without a valid session redirect to
// the login page with the reason; the JSON API answers 401 with it. Live updates: server-sent events.
// Sessions (tokens, their server-side logins, logout) are console-sessions.ts's.
import { PACKAGE_ROOT } from "../package-root.js";
import { readdirSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import { parseCertificate, pemBlocks, verifyTlsPeer, LEAF_BACKDATE_MS, type Identity, type Verifier } from "../pki/index.js";
import { decide, nearestRule, parseFlowSpec, type CompiledPolicy } from "../policy/index.js";
import { HttpError, readJson, sendError, sendJson } from "./http.js";
import { certThumbprint, type JwtKey } from "./jwt.js";
import { ConsoleSessions, type Session } from "./console-sessions.js";
import type { MapHub } from "./map-hub.js";
import { checkPassword, dummyHash, USERNAME_PATTERN } from "./passwords.js";
import { ADMIN_ROLE } from "./protocol.js";
import type { Store } from "./store.js";
import type { TelemetryApi } from "./telemetry-api.js";
import type { UserLogins } from "./user-login.js";
import { PasswordThrottle, tooManyLogins } from "./attempt-limiter.js";
import { sourceKey } from "../addr/source-key.js";

export { SESSION_AUDIENCE, SESSION_COOKIE, SESSION_ISSUER, SESSION_MAX_S, SESSION_TTL_S, SESSION_TYP, parseCookies } from "./console-sessions.js";
/** Logins per username and per source address: burst, then one per this many ms. */
const LOGIN_BURST = 5;
const LOGIN_REFILL_MS = 12_000;
/** CSRF: every state-changing API call carries this header, which a cross-site form cannot set. */
export const CSRF_HEADER = "x-ember-console";
/** A node is "stale" in the overview when its last telemetry is older than this. */
const STALE_MS = 60_000;
/** A live stream re-checks its login this often: a logout on another replica ends it within this. */
const STREAM_CHECK_MS = 5_000;

/** The node's own stamp of an event, shown only when its clock was off by more than a second or so. */
function nodeClock(e: { at: number; nodeAt?: number }): { nodeAt?: string } {
  return e.nodeAt !== undefined && Math.abs(e.nodeAt - e.at) > 2_000 ? { nodeAt: new Date(e.nodeAt).toISOString() } : { nodeAt: undefined };
}

export interface LinkView { from: string; to: string; path: string; kind: "direct" | "relay" | "none"; rttMs?: number; lossPct?: number; state: string }

/**
 * A pair as one side last reported it. When either side is offline, or the report is stale, the last path and
 * latency are history, not a connection: shown as "offline" with no latency (a node that went away kept showing
 * "connected" and 0.93 ms on the console while `ember peers` showed no path).
 */
export function linkView(from: string, p: { name: string; path: string; state: string; rttMs?: number; lossPct?: number }, gone: boolean): LinkView {
  if (gone) return { from, to: p.name, path: "offline", kind: "none", state: "offline" };
  const kind = p.path === "direct" ? "direct" : p.path.startsWith("relay") ? "relay" : "none";
  return { from, to: p.name, path: p.path, kind, rttMs: kind === "none" ? undefined : p.rttMs, lossPct: kind === "none" ? undefined : p.lossPct, state: p.state };
}
/** Nodes report this fraction of a certificate's life as the renewal point (src/coord/client.ts). */
const RENEW_AT = 2 / 3;

export interface ConsoleContext {
  /** Device logins approved here (src/coord/user-login.ts). */
  users: UserLogins;
  log: Logger;
  verifier: Verifier;
  store: Store;
  hub: () => MapHub;
  policy: () => CompiledPolicy;
  key: JwtKey;
  telemetry: TelemetryApi;
  trustDomain: string;
  /** Marks the request's socket authenticated (it leaves the anonymous budget and its 30 s deadline). */
  authenticated: (req: IncomingMessage) => void;
  /** A change counter of the mesh: the live stream tells browsers to refetch when it moves. */
  version: () => string;
}

/** What a "device" session may reach. */
const DEVICE_SCOPE_ROUTES = new Set(["GET /ui/api/session", "POST /ui/api/device"]);

const TYPES: Record<string, string> = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml" };
const SECURITY_HEADERS = {
  "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-store",
};

/** The dashboard's static files: <package root>/dashboard (src/package-root.ts finds the root). */
function dashboardDir(): string {
  return join(PACKAGE_ROOT, "dashboard");
}

export class Console {
  private readonly files = new Map<string, { type: string; body: Buffer }>();
  private readonly attempts = new PasswordThrottle(LOGIN_BURST, LOGIN_REFILL_MS);
  readonly sessions: ConsoleSessions;
  /** Live streams, each with the login it belongs to. */
  private readonly streams = new Map<ServerResponse, string>();
  private lastStreamCheck = 0;
  private ticker?: NodeJS.Timeout;
  private lastVersion = "";
  readonly counters = { logins: { password: 0, certificate: 0 }, loginFailures: 0 };

  constructor(private readonly ctx: ConsoleContext) {
    this.sessions = new ConsoleSessions({ key: ctx.key, store: ctx.store, verifier: ctx.verifier });
    const dir = dashboardDir();
    for (const f of readdirSync(dir)) {
      const type = TYPES[extname(f)];
      if (type) this.files.set(f, { type, body: readFileSync(join(dir, f)) });
    }
    ctx.telemetry.onBatch((node) => this.push({ what: "telemetry", node }));
  }

  start(): void {
    // Mesh changes (enrollments, streams, statuses, policy) move the version; the browsers refetch.
    this.ticker = setInterval(() => {
      const v = this.ctx.version();
      if (v !== this.lastVersion) { this.lastVersion = v; this.push({ what: "mesh" }); }
      if (this.streams.size && Date.now() - this.lastStreamCheck >= STREAM_CHECK_MS) void this.checkStreams();
    }, 1_000);
    this.ticker.unref();
  }

  close(): void {
    clearInterval(this.ticker);
    for (const s of this.streams.keys()) s.destroy();
  }

  /** Handles every /ui and /ui/* request. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const method = req.method ?? "GET";
    try {
      if (path === "/ui" || path === "/ui/") return await this.page(req, res, url, "overview");
      if (method === "GET" && path.startsWith("/ui/static/")) return this.staticFile(res, path.slice("/ui/static/".length));
      if (method === "GET" && path === "/ui/login") return this.sendFile(res, "login.html");
      if (method === "GET" && path === "/ui/api/login-options") return this.loginOptions(req, res);
      if (method === "POST" && path === "/ui/api/login") return await this.passwordLogin(req, res);
      if (method === "POST" && path === "/ui/api/login/cert") return await this.certLogin(req, res);
      if (method === "POST" && path === "/ui/api/logout") return await this.logout(req, res);
      if (method === "GET" && path === "/ui/device") return await this.page(req, res, url, "device");
      const page = /^\/ui\/(certificates|policy|connections)$/.exec(path)?.[1] ?? (/^\/ui\/nodes\/[a-z0-9-]{1,63}$/.test(path) ? "node" : undefined);
      if (method === "GET" && page) return await this.page(req, res, url, page);
      if (path.startsWith("/ui/api/")) return await this.api(req, res, url);
      throw new HttpError(404, "not_found", `no console page ${path}`);
    } catch (err) {
      if (err instanceof HttpError) return sendError(res, err);
      throw err;
    }
  }

  // ---- sessions --------------------------------------------------------------------------------------

  private checkCsrf(req: IncomingMessage): void {
    if (req.headers[CSRF_HEADER] !== "1") throw new HttpError(403, "csrf", `state-changing console requests need the header ${CSRF_HEADER}: 1`);
  }

  private async passwordLogin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.checkCsrf(req);
    const b = await readJson(req, 4096);
    const username = typeof b.username === "string" ? b.username.trim().toLowerCase() : "";
    const password = typeof b.password === "string" ? b.password : "";
    const source = req.socket.remoteAddress ?? "?";
    // The source first: a source that spent its attempts costs no lookup and leaves no trace.
    if (!this.attempts.allowSource(sourceKey(source))) throw tooManyLogins(res, LOGIN_REFILL_MS);
    const user = USERNAME_PATTERN.test(username) ? await this.ctx.store.getUser(username) : undefined;
    if (!this.attempts.allowUser(username, user !== undefined)) throw tooManyLogins(res, LOGIN_REFILL_MS);
    // The same scrypt cost whether or not the user exists: no user enumeration by timing.
    const ok = await checkPassword(password, user?.passwordHash ?? await dummyHash());
    if (!user || !ok || user.disabled) {
      this.counters.loginFailures++;
      this.ctx.log.warn({ event: "console_login_failed", username: username.slice(0, 64), remote: source, disabled: user?.disabled || undefined }, "console login refused");
      throw new HttpError(401, "bad_credentials", user?.disabled && ok ? "this user is disabled" : "unknown username or wrong password");
    }
    this.counters.logins.password++;
    // A user of the mesh (with a tenant) is no administrator: their session only approves device logins.
    await this.sessions.begin(res, { sub: user.username, method: "password", ...(user.tenant !== undefined ? { scope: "device" as const } : {}) });
    this.ctx.log.info({ event: "console_login", user: user.username, method: "password", remote: source }, "console login");
    sendJson(res, 200, { user: user.username, method: "password" });
  }

  /** The admin certificate this connection presents, verified, or why not. */
  private adminCert(req: IncomingMessage): { ok: true; id: Identity; thumb: string } | { ok: false; reason: string; detail: string } {
    const v = verifyTlsPeer(req.socket as TLSSocket, this.ctx.verifier, { usage: "client" });
    if (!v.ok) return { ok: false, reason: v.reason, detail: v.detail };
    if (!v.identity.roles.includes(ADMIN_ROLE)) return { ok: false, reason: "not_admin", detail: `identity "${v.identity.name}" has no role "${ADMIN_ROLE}" in its certificate` };
    const raw = (req.socket as TLSSocket).getPeerCertificate().raw;
    return { ok: true, id: v.identity, thumb: certThumbprint(raw) };
  }

  private loginOptions(req: IncomingMessage, res: ServerResponse): void {
    const c = this.adminCert(req);
    sendJson(res, 200, { trustDomain: this.ctx.trustDomain, certificate: c.ok ? { name: c.id.name, admin: true } : { admin: false, reason: c.reason, detail: c.detail } });
  }

  private async certLogin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.checkCsrf(req);
    const c = this.adminCert(req);
    if (!c.ok) {
      this.counters.loginFailures++;
      throw new HttpError(401, c.reason, c.detail);
    }
    this.counters.logins.certificate++;
    await this.sessions.begin(res, { sub: c.id.name, method: "certificate", thumb: c.thumb });
    this.ctx.log.info({ event: "console_login", user: c.id.name, method: "certificate", serial: c.id.serial }, "console login");
    sendJson(res, 200, { user: c.id.name, method: "certificate" });
  }

  private async logout(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.checkCsrf(req);
    await this.sessions.end(req, res);
    sendJson(res, 200, { ok: true });
  }

  // ---- pages and files -------------------------------------------------------------------------------

  private async page(req: IncomingMessage, res: ServerResponse, url: URL, page: string): Promise<void> {
    const s = await this.sessions.check(req);
    if (!s.ok) {
      const next = encodeURIComponent(url.pathname);
      res.writeHead(302, { location: `/ui/login?reason=${s.reason}&next=${next}`, "cache-control": "no-store" });
      return void res.end();
    }
    this.ctx.authenticated(req);
    if (s.renew) this.sessions.renew(res, s.s);
    if (page === "device") return this.sendFile(res, "device.html");
    if (s.s.scope === "device") {
      res.writeHead(302, { location: "/ui/device", "cache-control": "no-store" });
      return void res.end();
    }
    this.sendFile(res, "app.html");
  }

  private sendFile(res: ServerResponse, name: string): void {
    const f = this.files.get(name);
    if (!f) throw new HttpError(404, "not_found", `no file ${name}`);
    res.writeHead(200, { "content-type": f.type, "content-length": f.body.length, ...SECURITY_HEADERS });
    res.end(f.body);
  }

  private staticFile(res: ServerResponse, name: string): void {
    if (!/^[a-z0-9-]+\.(js|css|svg)$/.test(name)) throw new HttpError(404, "not_found", "no such file");
    this.sendFile(res, name);
  }

  // ---- the JSON API ----------------------------------------------------------------------------------

  private async api(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const s = await this.sessions.check(req);
    if (!s.ok) return sendJson(res, 401, { error: s.reason, detail: s.detail });
    this.ctx.authenticated(req);
    if (s.renew) this.sessions.renew(res, s.s);
    const route = `${req.method} ${url.pathname}`;
    const q = url.searchParams;
    if (s.s.scope === "device" && !DEVICE_SCOPE_ROUTES.has(route)) throw new HttpError(403, "not_admin", `${s.s.sub} is a user of the mesh: this session only approves device logins`);
    switch (route) {
      case "POST /ui/api/device": {
        this.checkCsrf(req);
        const b = await readJson(req, 1024);
        const r = await this.ctx.users.approve(s.s.sub, typeof b.code === "string" ? b.code : "");
        return sendJson(res, 200, { user: s.s.sub, device: r.device });
      }
      case "GET /ui/api/session": return sendJson(res, 200, { user: s.s.sub, method: s.s.amr.includes("mtls") ? "certificate" : "password", expires: new Date(s.s.exp * 1000).toISOString() });
      case "GET /ui/api/overview": return sendJson(res, 200, await this.overview());
      case "GET /ui/api/certificates": return sendJson(res, 200, await this.certificates());
      case "GET /ui/api/policy": return sendJson(res, 200, await this.policyView());
      case "POST /ui/api/policy/check": this.checkCsrf(req); return sendJson(res, 200, await this.policyCheck(req));
      case "GET /ui/api/decisions": return sendJson(res, 200, { decisions: this.decisions(q) });
      case "GET /ui/api/connections": return sendJson(res, 200, { events: this.connections(q) });
      case "GET /ui/api/events": return this.stream(req, res, s.s.sid);
    }
    const node = /^GET \/ui\/api\/nodes\/([a-z0-9-]{1,63})$/.exec(route);
    if (node) return sendJson(res, 200, await this.nodeView(node[1]));
    throw new HttpError(404, "not_found", `no console API ${route}`);
  }

  private async overview() {
    const hub = this.ctx.hub();
    const snaps = new Map(this.ctx.telemetry.store.snapshots().map((x) => [x.node, x]));
    const now = Date.now();
    const nodes = (await this.ctx.store.listNodes()).filter((n) => n.status === "active").map((n) => {
      const live = hub.peer(n.name);
      const snap = snaps.get(n.name);
      const last = live?.lastSeen ?? n.lastSeen;
      return {
        name: n.name, tenant: n.tenant, groups: n.groups, online: hub.isOnline(n.name), lastSeen: last ? new Date(last).toISOString() : undefined,
        homeRelay: live?.homeRelay ?? n.homeRelay, natType: n.natType, endpoints: live?.endpoints ?? n.endpoints,
        telemetryAt: snap ? new Date(snap.at).toISOString() : undefined, stale: snap ? now - snap.at > STALE_MS : true,
        problems: (snap?.problems ?? []).map((p) => ({ code: p.code, severity: p.severity, summary: p.summary })),
      };
    });
    // One link per pair, as each side reports it; a side that is offline or silent has no live link to show.
    const known = new Set(nodes.map((n) => n.name));
    const offline = (name: string) => known.has(name) && !hub.isOnline(name);
    const links = [...snaps.values()].flatMap((s) => s.peers.map((p) => linkView(s.node, p, now - s.at > STALE_MS || offline(s.node) || offline(p.name))));
    return { nodes, links, policyHash: this.ctx.policy().hash.slice(0, 12), at: new Date(now).toISOString() };
  }

  private async certificates() {
    const nodes = await this.ctx.store.listNodes();
    const revoked = await this.ctx.store.listRevoked();
    const now = Date.now();
    return {
      nodes: nodes.map((n) => {
        let notBefore: number | undefined;
        try { notBefore = parseCertificate(pemBlocks(n.certPem, "CERTIFICATE", "node certificate")[0]).notBefore.getTime(); } catch { notBefore = undefined; }
        const issued = notBefore !== undefined ? notBefore + LEAF_BACKDATE_MS : undefined;
        const rotation = issued !== undefined && n.status === "active" ? issued + (n.notAfter - issued) * RENEW_AT : undefined;
        return {
          name: n.name, tenant: n.tenant, status: n.status, serial: n.serial, roles: n.roles,
          notBefore: notBefore !== undefined ? new Date(notBefore).toISOString() : undefined, notAfter: new Date(n.notAfter).toISOString(),
          nextRotation: rotation !== undefined ? new Date(rotation).toISOString() : undefined,
          expiresInS: Math.round((n.notAfter - now) / 1000), ttlS: Math.round(n.certTtlMs / 1000),
        };
      }),
      revoked: revoked.map((r) => ({ serial: r.serial, name: r.name, revokedAt: new Date(r.revokedAt).toISOString(), notAfter: new Date(r.notAfter).toISOString() })),
    };
  }

  private async policyView() {
    const p = this.ctx.policy();
    const rec = await this.ctx.store.getPolicy();
    return {
      hash: p.hash.slice(0, 12), setAt: rec ? new Date(rec.setAt).toISOString() : undefined, setBy: rec?.setBy,
      rules: p.rules.map((r) => ({ index: r.index, line: r.line, text: r.text })), source: rec?.source ?? "",
      decisions: this.decisions(new URLSearchParams({ limit: "100" })),
    };
  }

  private async policyCheck(req: IncomingMessage) {
    const b = await readJson(req, 4096);
    const fromName = typeof b.from === "string" ? b.from.trim() : "";
    const proto = typeof b.protocol === "string" && b.protocol ? b.protocol : "tcp";
    const spec = `${typeof b.to === "string" ? b.to.trim() : ""}:${Number(b.port)}/${proto}`;
    let flow;
    try { flow = parseFlowSpec(spec); } catch (err) { throw new HttpError(400, "bad_flow", (err as Error).message); }
    const hub = this.ctx.hub();
    const from = hub.principal(fromName);
    const to = hub.principal(flow.name);
    if (!from) throw new HttpError(404, "unknown_node", `no active node named "${fromName}"`);
    if (!to) throw new HttpError(404, "unknown_node", `no active node named "${flow.name}"`);
    const policy = this.ctx.policy();
    const d = decide(policy, from, to, flow.port, flow.protocol);
    return {
      from: fromName, to: flow.name, port: flow.port, protocol: flow.protocol, allow: d.allow, rule: d.rule, reason: d.reason,
      ...(d.allow ? {} : { nearest: nearestRule(policy, from, to, flow.port, flow.protocol) }),
    };
  }

  private decisions(q: URLSearchParams) {
    const verdict = q.get("verdict");
    return this.ctx.telemetry.store.query({
      kinds: ["decision"], node: q.get("node") || undefined, peer: q.get("peer") || undefined,
      ok: verdict === "allow" ? true : verdict === "deny" ? false : undefined, limit: Number(q.get("limit")) || 200,
    }).map((e) => ({ ...e.data, node: e.node, at: new Date(e.at).toISOString(), ...nodeClock(e), peer: e.peer, allow: e.ok })); // authoritative fields last: a node's data cannot overwrite them
  }

  private connections(q: URLSearchParams) {
    const kinds = (q.get("kind") || "handshake,path,coord").split(",").filter((k) => ["handshake", "path", "coord"].includes(k));
    const ok = q.get("result");
    return this.ctx.telemetry.store.query({
      kinds, node: q.get("node") || undefined, peer: q.get("peer") || undefined,
      ok: ok === "ok" ? true : ok === "failed" ? false : undefined, limit: Number(q.get("limit")) || 200,
    }).map((e) => ({ ...e.data, node: e.node, at: new Date(e.at).toISOString(), ...nodeClock(e), kind: e.t, peer: e.peer, ok: e.ok }));
  }

  private async nodeView(name: string) {
    const n = await this.ctx.store.getNode(name);
    if (!n) throw new HttpError(404, "unknown_node", `no node named "${name}"`);
    const hub = this.ctx.hub();
    const snap = this.ctx.telemetry.store.snapshot(name);
    const problems = [...(snap?.problems ?? [])];
    const now = Date.now();
    if (n.status === "active" && !hub.isOnline(name)) {
      const last = hub.peer(name)?.lastSeen ?? n.lastSeen;
      if (!problems.some((p) => p.code === "coord_unreachable" || p.code === "clock_skew")) {
        problems.push({
          code: "offline", severity: "error",
          summary: `${name} holds no map stream to the coordination server${last ? ` (last seen ${new Date(last).toISOString()})` : " (never connected)"}`,
          fix: `check that the daemon runs on ${name} (systemctl status ember) and that it reaches this server on TCP 443: run "ember status" there`,
        });
      }
    }
    // Denied flows of the last 15 minutes, each with the policy's nearest rule (the full policy: the node knows only its own rules).
    const policy = this.ctx.policy();
    const denied = this.ctx.telemetry.store.query({ node: name, kinds: ["decision"], ok: false, since: now - 15 * 60_000, limit: 50 });
    const seen = new Set<string>();
    for (const e of denied) {
      const d = e.data as { from?: string; to?: string; port?: number; protocol?: string; flow?: string };
      const key = `${d.from}>${d.to}:${d.port}/${d.protocol}`;
      if (seen.has(key) || !d.from || !d.to) continue;
      seen.add(key);
      const from = hub.principal(d.from), to = hub.principal(d.to);
      const near = from && to ? nearestRule(policy, from, to, d.port, (d.protocol ?? "tcp") as "tcp") : undefined;
      if (problems.some((p) => p.code === "policy_missing" && (p.detail as any)?.flow === d.flow)) continue;
      problems.push({
        code: "policy_missing", severity: "warning",
        summary: `flow ${d.flow ?? key} was denied by policy${near ? `; nearest rule ${near.rule.index} (line ${near.rule.line}): ${near.rule.text} — ${near.differences.join("; ")}` : " (the policy has no rules)"}`,
        fix: `add or widen a rule to allow it, then check with: ember policy check --from ${d.from} --to ${d.to}:${d.port}/${d.protocol}`,
        detail: { flow: d.flow, nearest: near },
      });
    }
    return {
      name: n.name, tenant: n.tenant, groups: n.groups, roles: n.roles, status: n.status, online: hub.isOnline(name),
      lastSeen: (hub.peer(name)?.lastSeen ?? n.lastSeen) ? new Date((hub.peer(name)?.lastSeen ?? n.lastSeen)!).toISOString() : undefined,
      serial: n.serial, certExpires: new Date(n.notAfter).toISOString(), homeRelay: hub.peer(name)?.homeRelay ?? n.homeRelay, natType: n.natType,
      endpoints: hub.peer(name)?.endpoints ?? n.endpoints, clockOffsetMs: snap?.clockOffsetMs, telemetryAt: snap ? new Date(snap.at).toISOString() : undefined,
      peers: (snap?.peers ?? []).map((p) => {
        const l = linkView(name, p, !snap || now - snap.at > STALE_MS || !hub.isOnline(name) || (hub.peer(p.name) !== undefined && !hub.isOnline(p.name)));
        return { name: p.name, path: l.path, state: l.state, rttMs: l.rttMs, lossPct: l.lossPct };
      }),
      problems,
      recent: this.ctx.telemetry.store.query({ node: name, limit: 30 }).map((e) => ({ ...e.data, at: new Date(e.at).toISOString(), ...nodeClock(e), kind: e.t, peer: e.peer, ok: e.ok })),
    };
  }

  // ---- live updates (server-sent events) -------------------------------------------------------------

  private stream(req: IncomingMessage, res: ServerResponse, sid: string): void {
    if (this.streams.size >= 256) throw new HttpError(503, "too_many_streams", "too many console live streams");
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive", "x-accel-buffering": "no" });
    res.write("retry: 2000\n\n");
    this.streams.set(res, sid);
    req.socket.setKeepAlive(true, 30_000);
    // A comment every 15 s keeps proxies from closing an idle stream.
    const ping = setInterval(() => res.write(": ping\n\n"), 15_000);
    ping.unref();
    res.on("close", () => { clearInterval(ping); this.streams.delete(res); });
  }

  private push(msg: Record<string, unknown>): void {
    const line = `event: change\ndata: ${JSON.stringify(msg)}\n\n`;
    for (const s of this.streams.keys()) s.write(line);
  }

  /** Ends the live streams whose login ended (logout, here or on another replica; user deleted or disabled). */
  private async checkStreams(): Promise<void> {
    this.lastStreamCheck = Date.now();
    const bySid = new Map<string, ServerResponse[]>();
    for (const [res, sid] of this.streams) bySid.set(sid, [...(bySid.get(sid) ?? []), res]);
    for (const [sid, list] of bySid) {
      const live = await this.sessions.live(sid).catch(() => true); // a store hiccup is no reason to cut browsers
      if (!live) for (const r of list) r.destroy();
    }
  }
}
