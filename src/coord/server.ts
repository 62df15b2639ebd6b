// The coordination server: HTTPS (TLS 1.3, node:https) where the PKI verifier judges every client
// certificate before any handler runs. Open without a certificate: health, the public trust bundle and
// token enrollment. Everything else needs a valid mesh identity; /v1/admin/* also needs role "admin".
// This file builds the parts and owns the listener: the route table (routes.ts) says which module answers what
// and who may ask; enrollment.ts, renewal.ts, node-status.ts, revocation.ts, policy-admin.ts, admin-*.ts answer.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import {
  generateEd25519, issueLeaf, loadCa, pemBlocks, privateKeyToPem, tlsContextOptions, toPem, Verifier, verifyTlsPeer, withIntermediates,
  type CaMaterial,
} from "../pki/index.js";
import { JwtKey } from "../crypto/jwt.js";
import { ConnectionGuard, DropLog } from "../net/conn-guard.js";
import { EDGE_PATHS, PATHS, STORE_UNAVAILABLE, TELEMETRY_PATHS, type BundleAnswer } from "../wire/coord/api.js";
import { PING_INTERVAL_MS, type MapRelay } from "../wire/coord/map.js";
import { ADMIN_ROLE, SERVER_NAME, SERVER_ROLE } from "../wire/coord/names.js";
import { listNodes } from "./admin-nodes.js";
import { TokenAdmin } from "./admin-tokens.js";
import { UserAdmin } from "./admin-users.js";
import { AuditLog } from "./audit.js";
import { Console } from "./console.js";
import { startConsoleListener, type ConsoleConnectionLimits, type ConsoleListener } from "./console-listener.js";
import type { CoordContext, CoordCounters } from "./context.js";
import { Enrollment } from "./enrollment.js";
import { ExposeApi } from "./expose-api.js";
import { HttpError, sendError, sendJson } from "./http.js";
import { CERT_MIN_TTL_MS, COORD_CONNECTION_DEFAULTS, type CoordConnectionLimits } from "./limits.js";
import { createLogger } from "./log.js";
import { hubPeerFromNode, MapHub } from "./map-hub.js";
import { CoordMetrics } from "./metrics.js";
import { NodeStatus, STATUS_FLUSH_MS } from "./node-status.js";
import { openStore } from "./open-store.js";
import { printable } from "./path-params.js";
import { PolicyAdmin } from "./policy-admin.js";
import { Renewal } from "./renewal.js";
import { ReplicaSync } from "./replica-sync.js";
import { Revocations } from "./revocation.js";
import { ANY_METHOD, classifyFailure, findRoute, needsAdmin, type Route } from "./routes.js";
import type { Store } from "./store.js";
import { TelemetryApi } from "./telemetry-api.js";
import { TelemetryStore, TELEMETRY_DEFAULTS } from "./telemetry-store.js";
import { rootPin } from "../wire/coord/token.js";
import { LOGIN_SWEEP_MS, UserLogins } from "./user-login.js";

export interface CoordServerOptions {
  dataDir: string;
  caDir: string;
  host: string;
  port: number;
  relays?: MapRelay[];
  /** Lowest leaf TTL a token may ask for; lowered only by tests (documented in docs/coord.md). */
  minCertTtlMs?: number;
  /** Deadline for parsing and compiling one uploaded policy in the worker (default POLICY_COMPILE_DEFAULTS.timeoutMs). */
  policyTimeoutMs?: number;
  /** Connection admission (COORD_CONNECTION_DEFAULTS). */
  connectionLimits?: Partial<CoordConnectionLimits>;
  logger?: Logger;
  store?: Store;
  /** When no `store` is given: a postgres:// URL (replicas share it), else SQLite in dataDir (open-store.ts). */
  storeUrl?: string;
  /** Node telemetry kept this long (default 7 days) and at most this many events (default 500,000). */
  telemetryRetentionMs?: number;
  telemetryMaxRows?: number;
  /** The console's own HTTPS listener (browsers need a non-Ed25519 web certificate: docs/dashboard.md). */
  console?: { host: string; port: number; certFile?: string; keyFile?: string; limits?: Partial<ConsoleConnectionLimits> };
  /** Prometheus metrics on plain HTTP (docs/operations.md). */
  metrics?: { host: string; port: number };
  /** Longest life of a user certificate, i.e. of a person's login on a device (default 8 hours, at most 24). */
  userCertTtlMs?: number;
}

const SERVER_TENANT = "system";
const SERVER_CERT_TTL_MS = 24 * 3_600_000;
/** How often the CA directory's ca.json is read for revocations made with `ember ca revoke`. */
const CA_REVOCATION_POLL_MS = 2_000;
/** The signing key of the M2M and console tokens (EdDSA), made at first start, 0600. */
export const TOKEN_KEY_FILE = "token-signing.key";
const TELEMETRY_PRUNE_MS = 60_000;

export class CoordServer {
  readonly log: Logger;
  readonly ca: CaMaterial;
  readonly verifier: Verifier;
  readonly pin: string;
  hub!: MapHub;
  private server?: Server;
  private readonly store: Store;
  private readonly ctx: CoordContext;
  /** Admission control on raw TCP sockets: totals, the unauthenticated budget, per-source limits, lifetimes. */
  readonly guard: ConnectionGuard;
  private readonly limits: CoordConnectionLimits;
  private readonly dropLog: DropLog;
  /** Follows the other replicas' changes when the store is shared (PostgreSQL). */
  replicas?: ReplicaSync;
  /** The owners of the policy in force, the revocation list, and the nodes' unsaved statuses and map streams. */
  private readonly policies: PolicyAdmin;
  private readonly revocations: Revocations;
  private readonly nodeStatus: NodeStatus;
  private readonly routes: readonly Route[];
  /** People logging in on devices (docs/users.md). */
  readonly users: UserLogins;
  private timers: NodeJS.Timeout[] = [];
  /** Token signing key, node telemetry (tokens, ingestion, storage) and the operators' console. */
  readonly tokenKey: JwtKey;
  readonly telemetry: TelemetryApi;
  readonly console: Console;
  /** Services published to public edges (docs/external-access.md). */
  readonly expose: ExposeApi;
  private consoleListener?: ConsoleListener;
  /** Admission control of the console's own listener, when it has one (metrics). */
  get consoleGuard(): ConnectionGuard | undefined { return this.consoleListener?.guard; }
  /** The console's URL when it has a listener of its own (`--console-listen`), and its certificate's fingerprint. */
  consoleUrl?: string;
  consoleFingerprint?: string;
  /** Counted events, for metrics. */
  readonly counters: CoordCounters = { enrollments: 0, renewals: 0, revocations: 0, policy_changes: 0 };
  readonly metrics = new CoordMetrics(this);
  metricsPort?: number;
  url = "";

  constructor(private readonly opts: CoordServerOptions) {
    this.log = opts.logger ?? createLogger();
    this.ca = loadCa(opts.caDir);
    this.verifier = new Verifier({ bundlePem: this.ca.bundlePem });
    this.pin = rootPin(this.ca.rootDer);
    this.store = opts.store ?? openStore(opts.storeUrl, opts.dataDir);
    this.limits = { ...COORD_CONNECTION_DEFAULTS, ...opts.connectionLimits };
    this.dropLog = new DropLog((fields, msg) => this.log.warn(fields, msg));
    this.guard = new ConnectionGuard({
      maxConnections: this.limits.maxConnections, maxPending: this.limits.maxPending, maxPendingPerSource: this.limits.maxPendingPerSource,
      pendingDeadlineMs: this.limits.anonymousTimeoutMs,
    }, (event, source) => this.dropLog.note(event, source));
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    this.ctx = {
      log: this.log, ca: this.ca, verifier: this.verifier, store: this.store, audit: new AuditLog(opts.dataDir, this.log), counters: this.counters,
      hub: () => this.hub, timePush: (change, fn) => this.timePush(change, fn),
    };
    this.tokenKey = JwtKey.loadOrCreate(join(opts.dataDir, TOKEN_KEY_FILE));
    const tstore = new TelemetryStore(opts.dataDir, {
      retentionMs: opts.telemetryRetentionMs ?? TELEMETRY_DEFAULTS.retentionMs, maxRows: opts.telemetryMaxRows ?? TELEMETRY_DEFAULTS.maxRows,
    });
    this.telemetry = new TelemetryApi(this.tokenKey, tstore, this.log);
    this.users = new UserLogins({
      store: this.store, hub: () => this.hub, ca: this.ca, log: this.log, userCertTtlMs: opts.userCertTtlMs,
      consoleUrl: () => this.consoleUrl ?? this.url,
    });
    this.policies = new PolicyAdmin(this.ctx, { timeoutMs: opts.policyTimeoutMs, changed: () => this.expose.refresh() });
    this.expose = new ExposeApi({ store: this.store, hub: () => this.hub, policy: () => this.policies.current, log: this.log, tokenKey: this.tokenKey });
    this.revocations = new Revocations(this.ctx, { nodeRevoked: (name) => this.expose.nodeRevoked(name) });
    this.nodeStatus = new NodeStatus(this.ctx);
    this.console = new Console({
      users: this.users,
      log: this.log, verifier: this.verifier, store: this.store, hub: () => this.hub, policy: () => this.policies.current, key: this.tokenKey,
      telemetry: this.telemetry, trustDomain: this.ca.trustDomain,
      authenticated: (req) => {
        // Each listener has its own guard: the console's own port, or the coordination port (which serves /ui too).
        const c = this.consoleListener;
        const guard = c && (req.socket as Socket & { server?: unknown }).server === c.server ? c.guard : this.guard;
        if (guard.isPending(req.socket)) guard.authenticate(req.socket);
      },
      version: () => `${this.hub.connectedCount}/${this.hub.stats.framesSent}/${this.policies.current.hash}/${this.revocations.listNumber}`,
    });
    this.routes = this.routeTable();
  }

  /** Every route of the API: method, path (a pattern's captures are the handler's params), who may call, who answers. */
  private routeTable(): Route[] {
    const enrollment = new Enrollment(this.ctx, {
      pin: this.pin, relays: this.opts.relays ?? [], revocationList: () => this.revocations.listOrEmpty(), nodeChanged: (n) => this.expose.nodeChanged(n),
    });
    const renewal = new Renewal(this.ctx, { rebindUser: (node, key, now) => this.users.rebind(node, key, now) });
    const tokens = new TokenAdmin(this.ctx, { minCertTtlMs: this.opts.minCertTtlMs ?? CERT_MIN_TTL_MS, policy: () => this.policies.current });
    const people = new UserAdmin(this.ctx, { users: this.users, console: this.console });
    const status = this.nodeStatus, revocations = this.revocations, policies = this.policies;
    const bundle: BundleAnswer = { bundlePem: this.ca.bundlePem, trustDomain: this.ca.trustDomain };
    return [
      { method: "GET", path: PATHS.health, access: "open", handle: (c) => status.health(c) },
      // The operators' console authenticates on its own (session cookie, or an admin certificate to log in).
      { method: ANY_METHOD, path: /^\/ui(?:\/|$)/, access: "open", handle: (c) => this.console.handle(c.req, c.res, c.url) },
      { method: "GET", path: PATHS.bundle, access: "open", handle: (c) => sendJson(c.res, 200, bundle) },
      { method: "POST", path: PATHS.enroll, access: "open", handle: (c) => enrollment.enroll(c) },

      { method: "POST", path: PATHS.renew, access: "identity", handle: (c) => renewal.renew(c) },
      { method: "GET", path: PATHS.map, access: "identity", handle: (c) => status.mapStream(c) },
      { method: "POST", path: PATHS.status, access: "identity", handle: (c) => status.report(c) },
      { method: "GET", path: PATHS.revocation, access: "identity", handle: (c) => revocations.send(c) },
      { method: "POST", path: PATHS.login, access: "identity", handle: (c) => this.users.passwordLogin(c.id, c.req, c.res) },
      { method: "POST", path: PATHS.loginDevice, access: "identity", handle: (c) => this.users.deviceStart(c.id, c.req, c.res) },
      { method: "POST", path: PATHS.loginDevicePoll, access: "identity", handle: (c) => this.users.devicePoll(c.id, c.req, c.res) },
      { method: "POST", path: PATHS.logout, access: "identity", handle: (c) => this.users.logout(c.id, c.res) },
      // Telemetry is from nodes of the mesh: an active enrollment, whatever else the certificate is.
      { method: "POST", path: TELEMETRY_PATHS.token, access: "member", handle: (c) => this.telemetry.token(c.id, c.req, c.res) },
      { method: "POST", path: TELEMETRY_PATHS.telemetry, access: "member", handle: (c) => this.telemetry.ingest(c.id, c.req, c.res) },
      { method: "POST", path: EDGE_PATHS.expose, access: "identity", handle: (c) => this.expose.publish(c.id, c.req, c.res) },
      { method: "POST", path: EDGE_PATHS.unexpose, access: "identity", handle: (c) => this.expose.unpublish(c.id, c.req, c.res) },
      { method: "GET", path: EDGE_PATHS.exposed, access: "identity", handle: (c) => this.expose.list(c.id, c.res) },
      { method: "POST", path: EDGE_PATHS.exposeToken, access: "identity", handle: (c) => this.expose.token(c.id, c.req, c.res) },

      { method: "POST", path: PATHS.adminTokens, access: "admin", handle: (c) => tokens.create(c) },
      { method: "GET", path: PATHS.adminNodes, access: "admin", handle: (c) => listNodes(this.ctx, c) },
      { method: "POST", path: /^\/v1\/admin\/nodes\/([^/]+)\/revoke$/, access: "admin", handle: (c) => revocations.revoke(c) },
      { method: "GET", path: PATHS.adminPolicy, access: "admin", handle: (c) => policies.get(c) },
      { method: "PUT", path: PATHS.adminPolicy, access: "admin", handle: (c) => policies.set(c) },
      { method: "POST", path: PATHS.adminPolicyCheck, access: "admin", handle: (c) => policies.check(c) },
      { method: "GET", path: PATHS.adminUsers, access: "admin", handle: (c) => people.list(c) },
      { method: "POST", path: PATHS.adminUsers, access: "admin", handle: (c) => people.put(c) },
      { method: "POST", path: /^\/v1\/admin\/users\/([^/]+)\/(disable|enable)$/, access: "admin", handle: (c) => people.setDisabled(c) },
      { method: "DELETE", path: /^\/v1\/admin\/users\/([^/]+)$/, access: "admin", handle: (c) => people.remove(c) },
    ];
  }

  async start(): Promise<string> {
    const schema = await this.store.migrate();
    // The change log's head before any state is read: catching up from here re-applies at worst what we read.
    const feedFrom = this.store.feed ? await this.store.feed.latestSeq() : 0;
    await this.revocations.load();
    await this.policies.load();
    this.hub = new MapHub(this.policies.current, this.opts.relays ?? []);
    this.hub.setRevocation(this.revocations.current);
    await this.revocations.syncCa();
    for (const n of await this.store.listNodes()) {
      if (n.status !== "active") continue;
      this.hub.upsertPeer(hubPeerFromNode(n));
    }
    await this.expose.reload();
    if (this.store.feed) {
      this.replicas = new ReplicaSync(this.store.feed, {
        store: this.store, hub: this.hub, log: this.log,
        reloadPolicy: () => this.policies.reload(), reloadRevocation: () => this.revocations.reload(),
        nodeChanged: (name, row) => (row ? this.expose.nodeChanged(row) : this.expose.nodeRevoked(name)), reloadExternal: () => this.expose.reload(),
      }, feedFrom);
      await this.replicas.start();
    }
    await this.listen();
    this.startTimers();
    this.policies.warm();
    this.console.start();
    if (this.opts.metrics) this.metricsPort = await this.metrics.listen(this.opts.metrics.host, this.opts.metrics.port);
    if (this.opts.console) {
      const c = await startConsoleListener({ ...this.opts.console, dataDir: this.opts.dataDir, bundlePem: this.ca.bundlePem, verifier: this.verifier }, this.console, this.log);
      this.consoleListener = c;
      this.consoleUrl = c.url;
      this.consoleFingerprint = c.fingerprint;
      this.log.info({ event: "console_listening", url: c.url, fingerprint: c.fingerprint }, "console listening");
    }
    this.log.info({ event: "listening", url: this.url, schema, trustDomain: this.ca.trustDomain, rootPin: this.pin }, "coordination server listening");
    return this.url;
  }

  /** The HTTPS listener, with admission control, until it listens. */
  private async listen(): Promise<void> {
    const creds = await this.serverCredentials();
    // connectionsCheckingInterval: how often headersTimeout/requestTimeout are enforced (default 30 s).
    this.server = createServer({ ...tlsContextOptions(creds), handshakeTimeout: this.limits.handshakeTimeoutMs, connectionsCheckingInterval: 1_000 }, (req, res) => {
      // dispatch() answers its own errors; this is the last line, so a bug can never become an unhandled rejection (a crash).
      this.dispatch(req, res).catch((err) => {
        if (!res.headersSent) this.answerFailure(res, `${req.method} ${String(req.url).slice(0, 200)}`, err, "handler failed outside its error handling");
        else res.destroy();
      });
    });
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
    this.server.keepAliveTimeout = 65_000;
    // https.Server destroys the socket of a failed or timed-out handshake itself.
    this.server.on("tlsClientError", (err) => this.log.debug({ event: "tls_error", err: err.message }));
    this.guard.attach(this.server);
    // A connection whose client certificate verifies leaves the unauthenticated budget; the verifier runs
    // again on every request (revocation can arrive while a connection is open).
    this.server.on("secureConnection", (s: TLSSocket) => {
      if (this.guard.isPending(s) && verifyTlsPeer(s, this.verifier, { usage: "client" }).ok) this.guard.authenticate(s);
    });
    const lim = this.guard.limits;
    if (lim.clampedBy) {
      this.log.warn({ event: "limits_clamped", maxConnections: lim.maxConnections, maxPending: lim.maxPending, by: lim.clampedBy },
        `connection limit lowered to ${lim.maxConnections}: ${lim.clampedBy}`);
    }
    this.server.on("clientError", (err, socket) => { socket.destroy(); this.log.debug({ event: "client_error", err: err.message }); });
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(this.opts.port, this.opts.host, () => resolve());
    });
    const addr = this.server.address() as { port: number; address: string };
    const host = addr.address.includes(":") ? `[${addr.address}]` : addr.address;
    this.url = `https://${host}:${addr.port}`;
  }

  private startTimers(): void {
    const every = (ms: number, what: string, fn: () => unknown) => this.timers.push(setInterval(() => {
      try {
        void Promise.resolve(fn()).catch((err) => this.log.error({ event: `${what}_failed`, err: (err as Error).message }));
      } catch (err) { this.log.error({ event: `${what}_failed`, err: (err as Error).message }); }
    }, ms).unref());
    every(PING_INTERVAL_MS, "map_ping", () => this.hub.tick());
    every(LOGIN_SWEEP_MS, "login_sweep", () => this.users.sweep());
    every(STATUS_FLUSH_MS, "status_flush", () => this.nodeStatus.flush());
    every(CA_REVOCATION_POLL_MS, "ca_revocations", () => this.revocations.syncCa());
    // The server's own leaf is short-lived too: re-issue it well before it expires.
    every(SERVER_CERT_TTL_MS / 2, "server_cert", () => this.serverCredentials().then((c) => this.server?.setSecureContext(tlsContextOptions(c))));
    every(TELEMETRY_PRUNE_MS, "session_prune", () => this.console.sessions.prune());
    every(TELEMETRY_PRUNE_MS, "telemetry_prune", () => this.telemetry.store.prune());
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.hub?.closeAll();
    this.nodeStatus.stop();
    this.dropLog.stop();
    this.guard.close();
    await this.policies.close();
    await new Promise<void>((resolve) => { if (!this.server) return resolve(); this.server.close(() => resolve()); this.server.closeAllConnections(); });
    this.console.close();
    await this.metrics.close();
    await this.consoleListener?.close();
    await this.nodeStatus.flush();
    await this.replicas?.close();
    this.telemetry.store.close();
    await this.store.close();
  }

  /** Runs one map change and records how long its fan-out to the connected nodes took. */
  private timePush(change: string, fn: () => void): void {
    const t0 = process.hrtime.bigint();
    fn();
    this.metrics.mapPush.observe({ change }, Number(process.hrtime.bigint() - t0) / 1e9);
  }

  private async serverCredentials() {
    const keys = generateEd25519();
    const der = await issueLeaf(this.ca, { name: SERVER_NAME, tenant: SERVER_TENANT, roles: [SERVER_ROLE], ttlMs: SERVER_CERT_TTL_MS, publicKey: keys.publicKey });
    return { certChainPem: withIntermediates(toPem(der, "CERTIFICATE"), this.ca.bundlePem), keyPem: privateKeyToPem(keys.privateKey), bundlePem: this.ca.bundlePem };
  }

  // ---- dispatch --------------------------------------------------------------------------------------

  /** Finds the route, runs the checks its access level asks for (routes.ts), then its handler. */
  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    // An absolute-form request target ("GET http://[::1 HTTP/1.1") reaches here unparsed: the client's fault.
    try { url = new URL(req.url ?? "/", "https://coord"); } catch {
      return sendError(res, new HttpError(400, "bad_path", `request target "${printable(req.url ?? "", 100)}" is not a valid URL path`));
    }
    const route = `${req.method} ${url.pathname}`;
    const found = findRoute(this.routes, req.method ?? "", url.pathname);
    try {
      if (found?.route.access === "open") return await found.route.handle({ req, res, url, params: found.params });
      // Everything below: the PKI verifier decides before any handler runs.
      const v = verifyTlsPeer(req.socket as TLSSocket, this.verifier, { usage: "client" });
      if (!v.ok) {
        this.log.warn({ event: "refused", reason: v.reason, detail: v.detail, route, remote: req.socket.remoteAddress }, "client certificate refused");
        return sendJson(res, 401, { error: v.reason, detail: v.detail });
      }
      const id = v.identity;
      if ((needsAdmin(url.pathname) || found?.route.access === "admin") && !id.roles.includes(ADMIN_ROLE)) {
        this.log.warn({ event: "refused", reason: "not_admin", identity: id.name, route }, "admin endpoint refused");
        return sendJson(res, 403, { error: "not_admin", detail: `identity "${id.name}" has no role "${ADMIN_ROLE}" in its certificate` });
      }
      if (!found) throw new HttpError(404, "not_found", `no endpoint ${route}`);
      if (found.route.access === "member" && !this.hub.peer(id.name)) throw new HttpError(403, "not_enrolled", `"${id.name}" is not an active node`);
      return await found.route.handle({ req, res, url, params: found.params, id });
    } catch (err) {
      return this.answerFailure(res, route, err, "handler failed");
    }
  }

  /** The one place a failure becomes an answer (routes.ts classifyFailure) and a log line. */
  private answerFailure(res: ServerResponse, route: string, err: unknown, what: string): void {
    const f = classifyFailure(err, this.store.label);
    if (f.log === "refused") this.log.warn({ event: "refused", reason: f.answer.code, detail: f.answer.detail, route }, "request refused");
    else if (f.log === "store_unavailable") this.log.warn({ event: STORE_UNAVAILABLE, route, detail: f.answer.detail }, "store unavailable; answered 503");
    else if (f.log === "internal") this.log.error({ event: "internal_error", route, err: (err as Error)?.stack }, what);
    sendError(res, f.answer);
  }
}

/** The server's leaf serial list isn't needed elsewhere; exported for tests that pin the bundle. */
export function bundleRootDer(bundlePem: string): Uint8Array {
  return pemBlocks(bundlePem, "CERTIFICATE", "trust bundle")[0];
}
