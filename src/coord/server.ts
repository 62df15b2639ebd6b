// The coordination server: HTTPS (TLS 1.3, node:https) where the PKI verifier judges every client
// certificate before any handler runs. Open without a certificate: health, the public trust bundle and
// token enrollment. Everything else needs a valid mesh identity; /v1/admin/* also needs role "admin".
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import {
  generateEd25519, issueLeaf, issueLeafRecord, loadCa, pemBlocks, privateKeyToPem, signRevocationList, tlsContextOptions, toPem,
  Verifier, verifyCsr, verifyTlsPeer, withIntermediates, LEAF_MAX_TTL_MS, NAME_PATTERN, CA_FILES,
  type CaMaterial, type Identity,
} from "../pki/index.js";
import { validateGrantValue } from "../pki/grants.js";
import { HttpError, readJson, sendError, sendJson, str } from "./http.js";
import { hubPeerFromNode, MapHub } from "./map-hub.js";
import { FrameCoalescer } from "./frame-coalescer.js";
import { decide, EMPTY_POLICY, groupsNamed, parseFlowSpec, parsePolicy, type CompiledPolicy, type ParseResult, type Principal } from "./policy-adapter.js";
import { PolicyCompileError, PolicyCompiler, type CompileContext } from "./policy-compiler.js";
import { MAX_POLICY_BYTES } from "../policy/index.js";
import {
  ADMIN_ROLE, INFRA_ROLES, COORD_CONNECTION_DEFAULTS, type CoordConnectionLimits, CERT_DEFAULT_TTL_MS, CERT_MIN_TTL_MS, ENDPOINT_PATTERN, MAX_BODY_BYTES, MAX_ENDPOINT_CHARS, MAX_ENDPOINTS,
  MAX_POLICY_BODY_BYTES, PATHS, PING_INTERVAL_MS, FRAME_COALESCE_MS, RESERVED_NAMES, SERVER_NAME, SERVER_ROLE, TOKEN_DEFAULT_TTL_MS, TOKEN_MAX_USES,
  checkServices, TELEMETRY_PATHS, type MapService, type MapRelay,
} from "./protocol.js";
import { openStore } from "./open-store.js";
import { storeOutageAnswer } from "./store-outage.js";
import { STORE_UNAVAILABLE } from "../wire/coord-api.js";
import { ReplicaSync } from "./replica-sync.js";
import type { NodeRecord, StatusUpdate, Store } from "./store.js";
import { newToken, parseToken, rootPin, secretMatches, TOKEN_REFUSAL, TokenFormatError } from "./tokens.js";
import { createLogger } from "./log.js";
import { AuditLog } from "./audit.js";
import { ConnectionGuard, DropLog } from "../net/conn-guard.js";
import { JwtKey } from "./jwt.js";
import { TelemetryApi } from "./telemetry-api.js";
import { TelemetryStore, TELEMETRY_DEFAULTS } from "./telemetry-store.js";
import { Console } from "./console.js";
import { startConsoleListener, type ConsoleConnectionLimits, type ConsoleListener } from "./console-listener.js";
import { CoordMetrics } from "./metrics.js";
import { hashPassword, passwordProblem, USERNAME_PATTERN } from "./passwords.js";
import { LOGIN_SWEEP_MS, UserLogins } from "./user-login.js";
import { ExposeApi } from "./expose-api.js";
import { nodeNameParam, printable, usernameParam } from "./path-params.js";

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
/**
 * Status reports (endpoints, home relay) are written to the store in batches this often: on PostgreSQL the
 * other replicas learn a node's new endpoint from that write, so it bounds how late they hear of it (within 1 s).
 */
const STATUS_FLUSH_MS = 500;
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
  private readonly coalescer = new FrameCoalescer(FRAME_COALESCE_MS);
  private server?: Server;
  private store: Store;
  /** Uploaded policies are parsed in a worker thread, one at a time, so the event loop keeps serving. */
  private compiler: PolicyCompiler;
  private readonly audit: AuditLog;
  /** Admission control on raw TCP sockets: totals, the unauthenticated budget, per-source limits, lifetimes. */
  readonly guard: ConnectionGuard;
  private readonly limits: CoordConnectionLimits;
  private readonly dropLog: DropLog;
  /** Policy applications in upload order (each waits for the one before). */
  private applying: Promise<unknown> = Promise.resolve();
  private policy: CompiledPolicy = EMPTY_POLICY;
  /** Hash of the stored policy in force: a replica re-reads the policy only when another stored a new one. */
  private policyHash?: string;
  /** Follows the other replicas' changes when the store is shared (PostgreSQL). */
  replicas?: ReplicaSync;
  private revocationNumber = 0;
  private revocationText?: string;
  private pendingStatus = new Map<string, StatusUpdate>();
  /** People logging in on devices (docs/users.md). */
  readonly users: UserLogins;
  private timers: NodeJS.Timeout[] = [];
  private minCertTtlMs: number;
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
  readonly counters = { enrollments: 0, renewals: 0, revocations: 0, policy_changes: 0 };
  readonly metrics = new CoordMetrics(this);
  metricsPort?: number;
  url = "";

  constructor(private readonly opts: CoordServerOptions) {
    this.log = opts.logger ?? createLogger();
    this.ca = loadCa(opts.caDir);
    this.verifier = new Verifier({ bundlePem: this.ca.bundlePem });
    this.pin = rootPin(this.ca.rootDer);
    this.store = opts.store ?? openStore(opts.storeUrl, opts.dataDir);
    this.minCertTtlMs = opts.minCertTtlMs ?? CERT_MIN_TTL_MS;
    this.audit = new AuditLog(opts.dataDir, this.log);
    this.limits = { ...COORD_CONNECTION_DEFAULTS, ...opts.connectionLimits };
    this.dropLog = new DropLog((fields, msg) => this.log.warn(fields, msg));
    this.guard = new ConnectionGuard({
      maxConnections: this.limits.maxConnections, maxPending: this.limits.maxPending, maxPendingPerSource: this.limits.maxPendingPerSource,
      pendingDeadlineMs: this.limits.anonymousTimeoutMs,
    }, (event, source) => this.dropLog.note(event, source));
    this.compiler = new PolicyCompiler({ timeoutMs: opts.policyTimeoutMs, onEvent: (event, fields) => this.log.info({ event, ...fields }) });
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    this.tokenKey = JwtKey.loadOrCreate(join(opts.dataDir, TOKEN_KEY_FILE));
    const tstore = new TelemetryStore(opts.dataDir, {
      retentionMs: opts.telemetryRetentionMs ?? TELEMETRY_DEFAULTS.retentionMs, maxRows: opts.telemetryMaxRows ?? TELEMETRY_DEFAULTS.maxRows,
    });
    this.telemetry = new TelemetryApi(this.tokenKey, tstore, this.log);
    this.users = new UserLogins({
      store: this.store, hub: () => this.hub, ca: this.ca, log: this.log, userCertTtlMs: opts.userCertTtlMs,
      consoleUrl: () => this.consoleUrl ?? this.url,
    });
    this.expose = new ExposeApi({ store: this.store, hub: () => this.hub, policy: () => this.policy, log: this.log, tokenKey: this.tokenKey });
    this.console = new Console({
      users: this.users,
      log: this.log, verifier: this.verifier, store: this.store, hub: () => this.hub, policy: () => this.policy, key: this.tokenKey,
      telemetry: this.telemetry, trustDomain: this.ca.trustDomain,
      authenticated: (req) => {
        // Each listener has its own guard: the console's own port, or the coordination port (which serves /ui too).
        const c = this.consoleListener;
        const guard = c && (req.socket as Socket & { server?: unknown }).server === c.server ? c.guard : this.guard;
        if (guard.isPending(req.socket)) guard.authenticate(req.socket);
      },
      version: () => `${this.hub.connectedCount}/${this.hub.stats.framesSent}/${this.policy.hash}/${this.revocationNumber}`,
    });
  }

  async start(): Promise<string> {
    const schema = await this.store.migrate();
    // The change log's head before any state is read: catching up from here re-applies at worst what we read.
    const feedFrom = this.store.feed ? await this.store.feed.latestSeq() : 0;
    const rev = await this.store.getRevocation();
    if (rev) {
      this.revocationNumber = rev.number;
      this.revocationText = rev.text;
      const applied = this.verifier.applyRevocationList(rev.text);
      if (!applied.ok) throw new Error(`stored revocation list #${rev.number} does not verify: ${applied.detail}`);
    }
    const stored = await this.store.getPolicy();
    if (stored) {
      const r = parsePolicy(stored.source);
      if (r.ok) { this.policy = r.policy; this.policyHash = stored.hash; }
      else this.log.error({ event: "policy_load_failed", errors: r.errors }, "stored policy no longer parses; serving with default deny");
    }
    this.hub = new MapHub(this.policy, this.opts.relays ?? []);
    this.hub.setRevocation(this.revocationText);
    await this.syncCaRevocations();
    for (const n of await this.store.listNodes()) {
      if (n.status !== "active") continue;
      this.hub.upsertPeer(hubPeerFromNode(n));
    }
    await this.expose.reload();
    if (this.store.feed) {
      this.replicas = new ReplicaSync(this.store.feed, {
        store: this.store, hub: this.hub, log: this.log,
        reloadPolicy: () => this.reloadPolicy(), reloadRevocation: () => this.reloadRevocation(),
        nodeChanged: (name, row) => (row ? this.expose.nodeChanged(row) : this.expose.nodeRevoked(name)), reloadExternal: () => this.expose.reload(),
      }, feedFrom);
      await this.replicas.start();
    }

    const creds = await this.serverCredentials();
    // connectionsCheckingInterval: how often headersTimeout/requestTimeout are enforced (default 30 s).
    this.server = createServer({ ...tlsContextOptions(creds), handshakeTimeout: this.limits.handshakeTimeoutMs, connectionsCheckingInterval: 1_000 }, (req, res) => {
      // handle() answers its own errors; this is the last line, so a bug can never become an unhandled rejection (a crash).
      this.handle(req, res).catch((err) => {
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
    this.timers.push(setInterval(() => this.hub.tick(), PING_INTERVAL_MS).unref());
    this.timers.push(setInterval(() => void this.users.sweep().catch((err) => this.log.error({ event: "login_sweep_failed", err: (err as Error).message })), LOGIN_SWEEP_MS).unref());
    this.timers.push(setInterval(() => void this.flushStatus(), STATUS_FLUSH_MS).unref());
    this.timers.push(setInterval(() => void this.syncCaRevocations().catch((err) => this.log.error({ event: "ca_revocations_failed", err: (err as Error).message })),
      CA_REVOCATION_POLL_MS).unref());
    // The server's own leaf is short-lived too: re-issue it well before it expires.
    this.timers.push(setInterval(() => void this.serverCredentials().then((c) => this.server?.setSecureContext(tlsContextOptions(c))),
      SERVER_CERT_TTL_MS / 2).unref());
    this.compiler.warm();
    this.console.start();
    if (this.opts.metrics) this.metricsPort = await this.metrics.listen(this.opts.metrics.host, this.opts.metrics.port);
    if (this.opts.console) {
      const c = await startConsoleListener({ ...this.opts.console, dataDir: this.opts.dataDir, bundlePem: this.ca.bundlePem, verifier: this.verifier }, this.console, this.log);
      this.consoleListener = c;
      this.consoleUrl = c.url;
      this.consoleFingerprint = c.fingerprint;
      this.log.info({ event: "console_listening", url: c.url, fingerprint: c.fingerprint }, "console listening");
    }
    this.timers.push(setInterval(() => void this.console.sessions.prune().catch((err) => this.log.error({ event: "session_prune_failed", err: (err as Error).message })),
      TELEMETRY_PRUNE_MS).unref());
    this.timers.push(setInterval(() => {
      try { this.telemetry.store.prune(); } catch (err) { this.log.error({ event: "telemetry_prune_failed", err: (err as Error).message }); }
    }, TELEMETRY_PRUNE_MS).unref());
    this.log.info({ event: "listening", url: this.url, schema, trustDomain: this.ca.trustDomain, rootPin: this.pin }, "coordination server listening");
    return this.url;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.hub?.closeAll();
    this.coalescer.stop();
    this.dropLog.stop();
    this.guard.close();
    await this.compiler.close();
    await new Promise<void>((resolve) => { if (!this.server) return resolve(); this.server.close(() => resolve()); this.server.closeAllConnections(); });
    this.console.close();
    await this.metrics.close();
    await this.consoleListener?.close();
    await this.flushStatus();
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

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    // An absolute-form request target ("GET http://[::1 HTTP/1.1") reaches here unparsed: the client's fault.
    try { url = new URL(req.url ?? "/", "https://coord"); } catch {
      return sendError(res, new HttpError(400, "bad_path", `request target "${printable(req.url ?? "", 100)}" is not a valid URL path`));
    }
    const route = `${req.method} ${url.pathname}`;
    try {
      // time: the server's clock in ms, which nodes compare with theirs (clock-skew diagnosis, docs/diagnostics.md).
      if (route === `GET ${PATHS.health}`) return sendJson(res, 200, { ok: true, trustDomain: this.ca.trustDomain, nodes: this.hub.connectedCount, time: Date.now() });
      // The operators' console authenticates on its own (session cookie, or an admin certificate to log in).
      if (url.pathname === "/ui" || url.pathname.startsWith("/ui/")) return await this.console.handle(req, res, url);
      if (route === `GET ${PATHS.bundle}`) return sendJson(res, 200, { bundlePem: this.ca.bundlePem, trustDomain: this.ca.trustDomain });
      if (route === `POST ${PATHS.enroll}`) return await this.enroll(req, res);

      // Everything below: the PKI verifier decides before any handler runs.
      const v = verifyTlsPeer(req.socket as TLSSocket, this.verifier, { usage: "client" });
      if (!v.ok) {
        this.log.warn({ event: "refused", reason: v.reason, detail: v.detail, route, remote: req.socket.remoteAddress }, "client certificate refused");
        return sendJson(res, 401, { error: v.reason, detail: v.detail });
      }
      const id = v.identity;
      if (url.pathname.startsWith("/v1/admin/")) {
        if (!id.roles.includes(ADMIN_ROLE)) {
          this.log.warn({ event: "refused", reason: "not_admin", identity: id.name, route }, "admin endpoint refused");
          return sendJson(res, 403, { error: "not_admin", detail: `identity "${id.name}" has no role "${ADMIN_ROLE}" in its certificate` });
        }
        return await this.admin(route, url, id, req, res);
      }
      if (route === `POST ${PATHS.renew}`) return await this.renew(id, req, res);
      if (route === `GET ${PATHS.map}`) return await this.mapStream(id, url, req, res);
      if (route === `POST ${PATHS.status}`) return await this.status(id, req, res);
      if (route === `GET ${PATHS.revocation}`) return this.sendRevocation(res);
      if (route === `POST ${PATHS.login}`) return await this.users.passwordLogin(id, req, res);
      if (route === `POST ${PATHS.loginDevice}`) return await this.users.deviceStart(id, req, res);
      if (route === `POST ${PATHS.loginDevicePoll}`) return await this.users.devicePoll(id, req, res);
      if (route === `POST ${PATHS.logout}`) return await this.users.logout(id, res);
      if (route === `POST ${TELEMETRY_PATHS.token}` || route === `POST ${TELEMETRY_PATHS.telemetry}`) {
        // Telemetry is from nodes of the mesh: an active enrollment, whatever else the certificate is.
        if (!this.hub.peer(id.name)) throw new HttpError(403, "not_enrolled", `"${id.name}" is not an active node`);
        if (route === `POST ${TELEMETRY_PATHS.token}`) return await this.telemetry.token(id, req, res);
        return await this.telemetry.ingest(id, req, res);
      }
      if (await this.expose.handle(route, id, req, res)) return;
      throw new HttpError(404, "not_found", `no endpoint ${route}`);
    } catch (err) {
      if (err instanceof HttpError) {
        if (err.status !== 404) this.log.warn({ event: "refused", reason: err.code, detail: err.detail, route }, "request refused");
        return sendError(res, err);
      }
      return this.answerFailure(res, route, err, "handler failed");
    }
  }

  /** A failure no handler answered: 503 naming the store when it is unreachable (clients try another replica), else 500. */
  private answerFailure(res: ServerResponse, route: string, err: unknown, what: string): void {
    const outage = storeOutageAnswer(err, this.store.label);
    if (outage) {
      this.log.warn({ event: STORE_UNAVAILABLE, route, detail: outage.detail }, "store unavailable; answered 503");
      return sendError(res, outage);
    }
    this.log.error({ event: "internal_error", route, err: (err as Error)?.stack }, what);
    sendError(res, new HttpError(500, "internal", "internal error (logged on the server)"));
  }

  // ---- enrollment and renewal ------------------------------------------------------------------------

  private async enroll(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req, MAX_BODY_BYTES);
    const name = str(body, "name", 63);
    const csrPem = str(body, "csr", 8192);
    let token;
    try { token = parseToken(str(body, "token", 256)); } catch (err) {
      if (err instanceof TokenFormatError) throw new HttpError(400, "token_malformed", err.message);
      throw err;
    }
    if (token.pin !== this.pin) {
      throw new HttpError(403, "token_foreign", `this token was issued for another mesh: it pins root ${token.pin}, this server's root is ${this.pin}`);
    }
    if (!NAME_PATTERN.test(name)) throw new HttpError(400, "bad_name", `invalid name "${name}": use lowercase letters, digits and '-', 1-63 characters`);
    if (RESERVED_NAMES.has(name)) throw new HttpError(400, "bad_name", `name "${name}" is reserved`);
    if (this.opts.relays?.some((r) => r.name === name)) throw new HttpError(400, "bad_name", `name "${name}" is reserved: it is the name of a relay this server hands out (--relay)`);
    const now = Date.now();
    const t = await this.store.getToken(token.id);
    if (!t || !secretMatches(token.secret, t.secretHash)) throw new HttpError(403, "token_unknown", TOKEN_REFUSAL.unknown);
    if (t.expiresAt <= now) throw new HttpError(403, "token_expired", TOKEN_REFUSAL.expired(t.expiresAt));
    if (t.usesLeft <= 0) throw new HttpError(403, "token_used", TOKEN_REFUSAL.used(t.usesTotal));
    const csr = await this.checkCsr(csrPem, name);
    const cert = issueLeafRecord(this.ca, { name, tenant: t.tenant, groups: t.groups, roles: t.roles, ttlMs: t.certTtlMs, publicKey: csr.publicKey });
    const certPem = toPem(cert.der, "CERTIFICATE");
    const enrollmentId = randomBytes(8).toString("hex");
    const node: NodeRecord = {
      name, tenant: t.tenant, groups: t.groups, roles: t.roles, enrollmentId, status: "active", enrolledAt: now, tokenId: t.id,
      certTtlMs: t.certTtlMs, serial: cert.serial, certPem, notAfter: cert.notAfter.getTime(), endpoints: [],
    };
    const r = await this.store.enroll({
      tokenId: t.id, now, node,
      cert: { serial: cert.serial, name, enrollmentId, notAfter: node.notAfter, issuedAt: now, kind: "enroll" },
      // Re-enrollment: a name is free again once its holder was revoked or its certificate has expired.
      nameFree: (existing) => existing.status === "revoked" || existing.notAfter + this.verifier.skewMs < now,
    });
    if (!r.ok) throw new HttpError(r.reason === "name_taken" ? 409 : 403, r.reason, r.detail);
    node.overlayIp = r.overlayIp;
    // Committed (synchronous=FULL): from here the enrollment survives a crash, so acknowledge it.
    this.timePush("enroll", () => this.hub.upsertPeer(hubPeerFromNode(node)));
    this.expose.nodeChanged(node);
    this.counters.enrollments++;
    this.log.info({ event: "enrolled", name, tenant: t.tenant, groups: t.groups, roles: t.roles, serial: cert.serial, token: t.id, notAfter: cert.notAfter.toISOString() }, "node enrolled");
    if (t.roles.includes(ADMIN_ROLE)) {
      this.audit.write({ action: "admin_enrolled", name, tenant: t.tenant, roles: t.roles, serial: cert.serial, token: t.id, tokenCreatedBy: t.createdBy, remote: req.socket.remoteAddress },
        `${name} enrolled with role "${ADMIN_ROLE}" (token ${t.id} by ${t.createdBy})`);
    }
    sendJson(res, 200, {
      name, tenant: t.tenant, groups: t.groups, certPem, bundlePem: this.ca.bundlePem, revocation: this.revocationText ?? this.emptyList(),
      certTtlMs: t.certTtlMs, notAfter: cert.notAfter.toISOString(), overlayIp: r.overlayIp,
    });
  }

  private async renew(id: Identity, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req, MAX_BODY_BYTES);
    const csr = await this.checkCsr(str(body, "csr", 8192), id.name);
    const node = await this.store.getNode(id.name);
    if (!node || node.status !== "active" || !(await this.store.isSerialOf(id.serial, id.name, node.enrollmentId))) {
      throw new HttpError(403, "not_enrolled", `certificate ${id.serial} does not belong to the current enrollment of "${id.name}"`);
    }
    const now = Date.now();
    const ttl = Math.max(node.certTtlMs, 1_000);
    const cert = issueLeafRecord(this.ca, { name: node.name, tenant: node.tenant, groups: node.groups, roles: node.roles, ttlMs: ttl, publicKey: csr.publicKey });
    const certPem = toPem(cert.der, "CERTIFICATE");
    const ok = await this.store.renew({
      name: node.name, enrollmentId: node.enrollmentId, certPem,
      cert: { serial: cert.serial, name: node.name, enrollmentId: node.enrollmentId, notAfter: cert.notAfter.getTime(), issuedAt: now, kind: "renew" },
    });
    if (!ok) throw new HttpError(403, "not_enrolled", `"${id.name}" was revoked or re-enrolled meanwhile`);
    // A person logged in on the device: their certificate follows the device's new key.
    const user = await this.users.rebind(node, csr.publicKey, now);
    const renewed: NodeRecord = { ...node, serial: cert.serial, certPem, notAfter: cert.notAfter.getTime() };
    if (user) renewed.user = user; else delete renewed.user;
    this.timePush("renew", () => this.hub.upsertPeer({ ...hubPeerFromNode(renewed), ...this.liveStatus(node.name) }));
    this.counters.renewals++;
    this.log.info({ event: "renewed", name: node.name, oldSerial: id.serial, serial: cert.serial, notAfter: cert.notAfter.toISOString() }, "certificate renewed");
    sendJson(res, 200, { certPem, bundlePem: this.ca.bundlePem, notAfter: cert.notAfter.toISOString(), certTtlMs: ttl });
  }

  private liveStatus(name: string) {
    const p = this.hub.peer(name);
    return p ? { endpoints: p.endpoints, homeRelay: p.homeRelay, lastSeen: p.lastSeen } : {};
  }

  private async checkCsr(pem: string, name: string) {
    let csr;
    try { csr = await verifyCsr(pem); } catch (err) {
      throw new HttpError(400, "bad_csr", (err as Error).message);
    }
    if (csr.commonName !== name) throw new HttpError(400, "csr_name_mismatch", `CSR asks for "${csr.commonName ?? "(no CN)"}", but the request is for "${name}"`);
    return csr;
  }

  // ---- map stream and status -------------------------------------------------------------------------

  private async mapStream(id: Identity, url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const node = await this.store.getNode(id.name);
    if (!node || node.status !== "active" || !(await this.store.isSerialOf(id.serial, id.name, node.enrollmentId)) || !this.hub.peer(id.name)) {
      throw new HttpError(403, "not_enrolled", `certificate ${id.serial} does not belong to the current enrollment of "${id.name}"`);
    }
    const epoch = url.searchParams.get("epoch");
    const seq = Number(url.searchParams.get("seq"));
    const resume = epoch && Number.isSafeInteger(seq) && seq >= 0 ? { epoch, seq } : undefined;
    res.writeHead(200, { "content-type": "application/vnd.embernet.map+msgpack", "cache-control": "no-store", "x-ember-map-version": "1" });
    res.flushHeaders();
    req.socket.setNoDelay(true);
    // TCP keepalive only as a backstop behind the hub's ping frames: probing sooner than a ping interval would
    // cost a resting node a probe and an acknowledgement every 30 s on top of the ping (docs/nat.md "At rest").
    req.socket.setKeepAlive(true, 2 * PING_INTERVAL_MS);
    const sink = this.coalescer.sink(res);
    // The stream lives no longer than the certificate that opened it.
    const expiry = setTimeout(() => res.destroy(), Math.max(0, id.notAfter.getTime() + this.verifier.skewMs - Date.now()));
    expiry.unref();
    res.on("close", () => {
      clearTimeout(expiry);
      sink.discard();
      this.hub.detach(id.name, sink);
      this.pendingStatus.set(id.name, { ...this.currentStatus(id.name), lastSeen: Date.now() });
      this.log.debug({ event: "map_closed", name: id.name });
    });
    const r = this.hub.attach(id.name, sink, resume);
    this.log.debug({ event: "map_opened", name: id.name, resumed: r.resumed, frames: r.frames });
  }

  private currentStatus(name: string): StatusUpdate {
    const p = this.hub.peer(name);
    return { name, endpoints: p?.endpoints ?? [], homeRelay: p?.homeRelay, lastSeen: p?.lastSeen ?? Date.now() };
  }

  private async status(id: Identity, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req, MAX_BODY_BYTES);
    const eps = body.endpoints;
    if (!Array.isArray(eps) || eps.length > MAX_ENDPOINTS || !eps.every((e) => typeof e === "string" && e.length <= MAX_ENDPOINT_CHARS && ENDPOINT_PATTERN.test(e))) {
      throw new HttpError(400, "bad_status", `"endpoints" must be a list of at most ${MAX_ENDPOINTS} host:port strings`);
    }
    const homeRelay = body.homeRelay;
    if (homeRelay !== undefined && (typeof homeRelay !== "string" || !NAME_PATTERN.test(homeRelay))) throw new HttpError(400, "bad_status", `"homeRelay" must be a relay name`);
    const natType = body.natType;
    if (natType !== undefined && (typeof natType !== "string" || natType.length > 64)) throw new HttpError(400, "bad_status", `"natType" must be a short string`);
    let services: MapService[] | undefined;
    try { services = body.services === undefined ? undefined : checkServices(body.services); } catch (err) {
      throw new HttpError(400, "bad_status", (err as Error).message);
    }
    if (!this.hub.peer(id.name)) throw new HttpError(403, "not_enrolled", `"${id.name}" is not an active node`);
    const now = Date.now();
    this.timePush("status", () => this.hub.status(id.name, { endpoints: eps as string[], homeRelay: homeRelay as string | undefined, services, lastSeen: now }));
    this.pendingStatus.set(id.name, { name: id.name, endpoints: eps as string[], homeRelay: homeRelay as string | undefined, natType: natType as string | undefined, lastSeen: now });
    sendJson(res, 200, { ok: true });
  }

  private async flushStatus(): Promise<void> {
    if (this.pendingStatus.size === 0) return;
    const batch = [...this.pendingStatus.values()];
    this.pendingStatus.clear();
    try { await this.store.saveStatuses(batch); } catch (err) {
      this.log.error({ event: "status_save_failed", err: (err as Error).message });
    }
  }

  /** The list handed out before the server revoked anything: the CA's own, re-signed only when ca.json changes. */
  private emptyList(): string {
    let key = "";
    try { const st = statSync(join(this.ca.dir, CA_FILES.meta)); key = `${st.mtimeMs}:${st.size}:${st.ino}`; } catch { /* unreadable: sign anew */ }
    if (key && this.emptyListCache?.key === key) return this.emptyListCache.text;
    const ca = this.caRevocations();
    const text = signRevocationList(this.ca, ca.number, ca.serials);
    this.emptyListCache = key ? { key, text } : undefined;
    return text;
  }

  private emptyListCache?: { key: string; text: string };

  /** `ember ca revoke` numbers lists in ca.json; the server's lists continue above that number. */
  private caListNumber(): number {
    return this.caRevocations().number;
  }

  // ---- changes made by other replicas (replica-sync.ts) ---------------------------------------------------

  /** The stored policy, when another replica stored a new one: applied in upload order like a local one. */
  private reloadPolicy(): Promise<void> {
    const apply = this.applying.then(async () => {
      const stored = await this.store.getPolicy();
      if (!stored || stored.hash === this.policyHash) return;
      // Checked by the replica that stored it; parsed here on the event loop (the worker checks uploads only).
      const r = parsePolicy(stored.source);
      if (!r.ok) return void this.log.error({ event: "policy_load_failed", errors: r.errors, hash: stored.hash }, "policy stored by another replica does not parse here; keeping the one in force");
      this.policy = r.policy;
      this.policyHash = stored.hash;
      this.timePush("policy", () => this.hub.setPolicy(r.policy));
      this.expose.refresh();
      this.counters.policy_changes++;
      this.log.info({ event: "policy_set", hash: stored.hash, rules: r.policy.rules.length, by: stored.setBy, via: "replica" }, "policy applied (set on another replica)");
    });
    this.applying = apply.catch(() => {});
    return apply;
  }

  /** The stored revocation list, applied when newer than ours; returns the list in force. */
  private async reloadRevocation(): Promise<string | undefined> {
    const rev = await this.store.getRevocation();
    if (rev && rev.number > this.revocationNumber) {
      const applied = this.verifier.applyRevocationList(rev.text);
      if (!applied.ok) {
        this.log.error({ event: "revocation_apply_failed", number: rev.number, detail: applied.detail });
        return this.revocationText;
      }
      this.revocationNumber = rev.number;
      this.revocationText = rev.text;
      this.log.info({ event: "revocation_applied", number: rev.number, via: "replica" }, "revocation list from another replica applied");
    }
    return this.revocationText;
  }

  /** The CA's own revocations (`ember ca revoke`, kept in ca.json): its list number and serials. */
  private caRevocations(): { number: number; serials: string[] } {
    try {
      const meta = JSON.parse(readFileSync(join(this.ca.dir, CA_FILES.meta), "utf8")) as { revocationNumber?: unknown; revoked?: unknown };
      const serials = Array.isArray(meta.revoked) ? meta.revoked.filter((s): s is string => typeof s === "string" && /^[0-9a-f]{1,64}$/.test(s)) : [];
      return { number: Number(meta.revocationNumber) || 0, serials };
    } catch { return { number: 0, serials: [] }; }
  }

  /**
   * Signs a list for the store: the server's own revoked serials plus the CA's. Every list the server signs
   * is numbered above the CA's and REPLACES it wherever it is applied, so leaving the CA's serials out
   * would un-revoke them at relays and nodes.
   */
  private signWithCaSerials(number: number, serials: string[]): string {
    return signRevocationList(this.ca, number, [...new Set([...serials, ...this.caRevocations().serials])]);
  }

  /**
   * Picks up revocations made with `ember ca revoke` on this CA directory (certificates issued offline, such
   * as admins', can only be revoked there): when ca.json lists a serial the server's verifier does not
   * refuse yet, a new list with it is signed, stored, applied and pushed to every map stream.
   */
  private async syncCaRevocations(): Promise<void> {
    const ca = this.caRevocations();
    const missing = ca.serials.filter((s) => !this.verifier.revocation.isRevoked(s));
    if (missing.length === 0) return;
    const r = await this.store.publishRevocation({ now: Date.now(), minNumber: ca.number, sign: (n, serials) => this.signWithCaSerials(n, serials) });
    const applied = this.verifier.applyRevocationList(r.text);
    if (!applied.ok) return void this.log.error({ event: "revocation_apply_failed", detail: applied.detail });
    this.revocationNumber = r.number;
    this.revocationText = r.text;
    this.hub.publishRevocation(r.text);
    this.log.info({ event: "ca_revocations_applied", number: r.number, caNumber: ca.number, serials: missing }, "revocations from the CA directory applied");
  }

  private sendRevocation(res: ServerResponse): void {
    const text = this.revocationText ?? this.emptyList();
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
    res.end(text);
  }

  // ---- admin -----------------------------------------------------------------------------------------

  private async admin(route: string, url: URL, id: Identity, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (route === `POST ${PATHS.adminTokens}`) return this.createToken(id, req, res);
    if (route === `GET ${PATHS.adminNodes}`) return this.listNodes(res);
    const revoke = /^\/v1\/admin\/nodes\/([^/]+)\/revoke$/.exec(url.pathname);
    if (req.method === "POST" && revoke) return this.revoke(id, nodeNameParam(revoke[1]), res);
    if (route === `GET ${PATHS.adminPolicy}`) {
      const p = await this.store.getPolicy();
      return sendJson(res, 200, p ? { source: p.source, hash: p.hash, setAt: new Date(p.setAt).toISOString(), setBy: p.setBy } : { source: "", hash: EMPTY_POLICY.hash });
    }
    if (route === `PUT ${PATHS.adminPolicy}`) return this.setPolicy(id, req, res);
    if (route === `POST ${PATHS.adminPolicyCheck}`) return this.checkPolicy(req, res);
    if (route === `GET ${TELEMETRY_PATHS.adminUsers}`) return this.listUsers(res);
    const able = /^\/v1\/admin\/users\/([^/]+)\/(disable|enable)$/.exec(url.pathname);
    if (req.method === "POST" && able) return this.setUserDisabled(id, usernameParam(able[1]), able[2] === "disable", res);
    if (route === `POST ${TELEMETRY_PATHS.adminUsers}`) return this.putUser(id, req, res);
    const user = /^\/v1\/admin\/users\/([^/]+)$/.exec(url.pathname);
    if (req.method === "DELETE" && user) {
      const name = usernameParam(user[1]);
      if (!(await this.store.deleteUser(name))) throw new HttpError(404, "unknown_user", `no console user "${printable(name, 64)}"`);
      await this.console.sessions.endUser(name, "user_deleted");
      this.log.info({ event: "console_user_deleted", user: name, by: id.name }, "console user deleted");
      return sendJson(res, 200, { username: name, deleted: true });
    }
    throw new HttpError(404, "not_found", `no endpoint ${route}`);
  }

  /**
   * `ember admin create`: a console login (username + password, stored as an scrypt hash). With a tenant
   * (`ember users add`): a user of the mesh, named by `user:` rules, with the groups given.
   */
  private async putUser(id: Identity, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const b = await readJson(req, MAX_BODY_BYTES);
    const username = str(b, "username", 64).toLowerCase();
    const password = str(b, "password", 1024);
    const tenant = b.tenant === undefined ? undefined : str(b, "tenant", 63);
    const groups = tenant === undefined ? undefined : labels(b.groups ?? [], "groups");
    if (tenant !== undefined) {
      if (!NAME_PATTERN.test(username)) throw new HttpError(400, "bad_username", `"${printable(username, 64)}": a user of the mesh is named like a node (lowercase letters, digits and '-', 1-63 characters), as policies write user:NAME`);
      try { validateGrantValue("tenant", tenant); } catch (err) { throw new HttpError(400, "bad_request", (err as Error).message); }
    } else if (!USERNAME_PATTERN.test(username)) throw new HttpError(400, "bad_username", `"${printable(username, 64)}": use lowercase letters, digits, '.', '_' and '-', 1-64 characters`);
    const problem = passwordProblem(password);
    if (problem) throw new HttpError(400, "weak_password", problem);
    const what = tenant === undefined ? "console user" : "user";
    if (b.replace !== true && (await this.store.getUser(username))) throw new HttpError(409, "user_exists", `${what} "${username}" exists; replace it with --replace`);
    const created = await this.store.putUser({
      username, passwordHash: await hashPassword(password), createdAt: Date.now(), createdBy: id.name, ...(tenant !== undefined ? { tenant, groups } : {}),
    });
    if (!created) await this.console.sessions.endUser(username, "password_replaced");
    this.log.info({ event: created ? "console_user_created" : "console_user_replaced", user: username, tenant, groups, by: id.name }, `${what} saved`);
    sendJson(res, 200, { username, created, ...(tenant !== undefined ? { tenant, groups } : {}) });
  }

  private async listUsers(res: ServerResponse): Promise<void> {
    const devices = new Map<string, string[]>();
    for (const n of await this.store.listNodes()) if (n.user && n.status === "active") devices.set(n.user.name, [...(devices.get(n.user.name) ?? []), n.name]);
    sendJson(res, 200, {
      users: (await this.store.listUsers()).map((u) => ({
        username: u.username, createdAt: new Date(u.createdAt).toISOString(), createdBy: u.createdBy,
        ...(u.tenant !== undefined ? { tenant: u.tenant, groups: u.groups ?? [], disabled: !!u.disabled, devices: devices.get(u.username) ?? [] } : { console: true }),
      })),
    });
  }

  /** `ember users disable NAME`: every login of the person ends now (peers cut their flows on the map delta). */
  private async setUserDisabled(id: Identity, username: string, disabled: boolean, res: ServerResponse): Promise<void> {
    const devices = await this.store.setUserDisabled(username, disabled);
    if (!devices) throw new HttpError(404, "unknown_user", `no user of the mesh named "${printable(username, 64)}"`);
    if (devices.length) this.users.loggedOutByStore(devices, "disabled");
    if (disabled) await this.console.sessions.endUser(username, "user_disabled");
    this.audit.write({ action: disabled ? "user_disabled" : "user_enabled", by: id.name, bySerial: id.serial, user: username, devices },
      `user ${username} ${disabled ? "disabled" : "enabled"} by ${id.name}${devices.length ? ` (logged out of ${devices.join(", ")})` : ""}`);
    sendJson(res, 200, { username, disabled, loggedOut: devices });
  }

  private async createToken(id: Identity, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const b = await readJson(req, MAX_BODY_BYTES);
    const tenant = str(b, "tenant", 63);
    const groups = labels(b.groups, "groups");
    const roles = labels(b.roles, "roles");
    if (b.allowAdminRole !== undefined && typeof b.allowAdminRole !== "boolean") throw new HttpError(400, "bad_request", `"allowAdminRole" must be true or false`);
    if (b.allowInfraRole !== undefined && typeof b.allowInfraRole !== "boolean") throw new HttpError(400, "bad_request", `"allowInfraRole" must be true or false`);
    const grantsAdmin = roles.includes(ADMIN_ROLE);
    if (grantsAdmin && b.allowAdminRole !== true) {
      throw new HttpError(403, "admin_role_refused",
        `a token granting role "${ADMIN_ROLE}" makes the node that enrolls with it an admin of the mesh; refused unless the request sets allowAdminRole (ember token create --allow-admin-role)`);
    }
    const infra = roles.filter((r) => INFRA_ROLES.includes(r));
    if (infra.length && b.allowInfraRole !== true) {
      throw new HttpError(403, "infra_role_refused",
        `a token granting role "${infra[0]}" lets the node that enrolls with it act as a ${infra[0] === SERVER_ROLE ? "coordination server" : "relay"} towards nodes; refused unless the request sets allowInfraRole (ember token create --allow-infra-role)`);
    }
    try {
      validateGrantValue("tenant", tenant);
      for (const g of groups) validateGrantValue("group", g);
      for (const r of roles) validateGrantValue("role", r);
    } catch (err) { throw new HttpError(400, "bad_request", (err as Error).message); }
    const ttlMs = num(b.ttlMs, "ttlMs", TOKEN_DEFAULT_TTL_MS, 1_000, 30 * 86_400_000);
    const uses = num(b.uses, "uses", 1, 1, TOKEN_MAX_USES);
    const certTtlMs = num(b.certTtlMs, "certTtlMs", CERT_DEFAULT_TTL_MS, 1, LEAF_MAX_TTL_MS);
    if (certTtlMs < this.minCertTtlMs) {
      throw new HttpError(400, "bad_request", `certificate TTL ${certTtlMs} ms is below this server's minimum of ${this.minCertTtlMs} ms`);
    }
    const now = Date.now();
    const t = newToken(this.ca.rootDer);
    await this.store.createToken({
      id: t.id, secretHash: t.secretHash, tenant, groups, roles, usesLeft: uses, usesTotal: uses, expiresAt: now + ttlMs,
      certTtlMs, createdAt: now, createdBy: id.name,
    });
    this.log.info({ event: "token_created", token: t.id, tenant, groups, roles, uses, expiresAt: new Date(now + ttlMs).toISOString(), by: id.name }, "token created");
    if (infra.length) {
      this.audit.write({ action: "infra_token_created", by: id.name, bySerial: id.serial, token: t.id, tenant, groups, roles, uses, expiresAt: new Date(now + ttlMs).toISOString() },
        `token ${t.id} grants role "${infra.join(",")}" (created by ${id.name})`);
    }
    if (grantsAdmin) {
      this.audit.write({ action: "admin_token_created", by: id.name, bySerial: id.serial, token: t.id, tenant, groups, roles, uses, expiresAt: new Date(now + ttlMs).toISOString() },
        `token ${t.id} grants role "${ADMIN_ROLE}" (created by ${id.name})`);
    }
    // Tokens come before the policy that names their groups (a policy may name only groups some token grants), so a
    // group no rule names is not refused: the answer says which, and the CLI warns (a typo shows at once).
    const named = groupsNamed(this.policy);
    const unnamedGroups = groups.filter((g) => !named.has(g));
    sendJson(res, 200, { token: t.token, id: t.id, tenant, groups, roles, uses, expiresAt: new Date(now + ttlMs).toISOString(), certTtlMs, unnamedGroups, policyRules: this.policy.rules.length });
  }

  private async listNodes(res: ServerResponse): Promise<void> {
    const nodes = (await this.store.listNodes()).map((n) => {
      const live = this.hub.peer(n.name);
      return {
        name: n.name, tenant: n.tenant, groups: n.groups, roles: n.roles, status: n.status,
        online: this.hub.isOnline(n.name), lastSeen: (live?.lastSeen ?? n.lastSeen) ? new Date((live?.lastSeen ?? n.lastSeen)!).toISOString() : undefined,
        endpoints: live?.endpoints ?? n.endpoints, homeRelay: live?.homeRelay ?? n.homeRelay, overlayIp: n.overlayIp, serial: n.serial,
        certExpires: new Date(n.notAfter).toISOString(), enrolledAt: new Date(n.enrolledAt).toISOString(),
      };
    });
    sendJson(res, 200, { nodes });
  }

  private async revoke(id: Identity, name: string, res: ServerResponse): Promise<void> {
    const now = Date.now();
    const r = await this.store.revoke({ name, now, minNumber: this.caListNumber(), sign: (number, serials) => this.signWithCaSerials(number, serials) });
    if (!r) throw new HttpError(404, "unknown_node", `no node named "${name}"`);
    const applied = this.verifier.applyRevocationList(r.text);
    if (!applied.ok) this.log.error({ event: "revocation_apply_failed", detail: applied.detail });
    this.revocationNumber = r.number;
    this.revocationText = r.text;
    this.timePush("revoke", () => this.hub.revoke(name, r.text));
    this.expose.nodeRevoked(name);
    this.counters.revocations++;
    const serials = r.serials.map((s) => s.serial);
    this.log.info({ event: "revoked", name, number: r.number, serials, by: id.name }, "node revoked");
    sendJson(res, 200, { name, number: r.number, serials });
  }

  /** What the policy checker needs to know of the mesh, as a snapshot (it runs in another thread). */
  private async policyContext(): Promise<CompileContext> {
    const known = new Set<string>(await this.store.tokenGroups());
    const principals = this.hub.allPrincipals();
    // People of the mesh: their groups are groups rules may name, and embedded tests may name them as user:NAME.
    for (const u of await this.store.listUsers()) {
      if (u.tenant !== undefined) principals.push({ name: u.username, tenant: u.tenant, groups: u.groups ?? [], kind: "user" });
    }
    for (const p of principals) for (const g of p.groups) known.add(g);
    return { knownGroups: known, principals };
  }

  private async setPolicy(id: Identity, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const b = await readJson(req, MAX_POLICY_BODY_BYTES, `, which holds any policy within the limit: a policy is at most ${MAX_POLICY_BYTES} bytes`);
    const source = typeof b.source === "string" ? b.source : "";
    if (typeof b.source !== "string") throw new HttpError(400, "bad_request", `"source" must be the policy text`);
    let r: ParseResult;
    let named: Set<string> | undefined;
    try {
      ({ result: r, named } = await this.compiler.compile(source, await this.policyContext()));
    } catch (err) {
      if (!(err instanceof PolicyCompileError)) throw err;
      const status = err.code === "policy_busy" || err.code === "policy_checker_unavailable" ? 503 : 422;
      throw new HttpError(status, err.code, err.message);
    }
    if (!r.ok) {
      this.log.warn({ event: "policy_refused", errors: r.errors, by: id.name }, "policy refused");
      return sendJson(res, 422, { error: "policy_invalid", detail: `${r.errors.length} error(s); nothing applied`, errors: r.errors, warnings: r.warnings });
    }
    const policy = r.policy;
    // Applied in upload order: a later upload whose check finished first still applies after this one.
    const apply = this.applying.then(async () => {
      const hash = policy.hash || createHash("sha256").update(source).digest("hex");
      await this.store.setPolicy({ source, hash, setAt: Date.now(), setBy: id.name });
      this.policyHash = hash;
      const before = this.hub.stats.bytesSent;
      this.policy = policy;
      this.timePush("policy", () => this.hub.setPolicy(policy, named));
      this.expose.refresh();
      this.counters.policy_changes++;
      this.log.info({ event: "policy_set", hash, rules: policy.rules.length, warnings: r.warnings.length, deltaBytes: this.hub.stats.bytesSent - before, by: id.name }, "policy applied");
      return hash;
    });
    this.applying = apply.catch(() => {});
    const hash = await apply;
    sendJson(res, 200, { ok: true, hash, rules: policy.rules.length, warnings: r.warnings });
  }

  private async userPrincipal(name: string): Promise<Principal | undefined> {
    const u = NAME_PATTERN.test(name) ? await this.store.getUser(name) : undefined;
    return u?.tenant !== undefined ? { name: u.username, tenant: u.tenant, groups: u.groups ?? [], kind: "user" } : undefined;
  }

  private async checkPolicy(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const b = await readJson(req, MAX_BODY_BYTES);
    const fromName = str(b, "from", 68);
    let flow;
    try { flow = parseFlowSpec(str(b, "to", 128)); } catch (err) { throw new HttpError(400, "bad_flow", (err as Error).message); }
    // `user:NAME` asks about a person (on any device), as a user: rule sees them.
    const from = fromName.startsWith("user:") ? await this.userPrincipal(fromName.slice(5)) : this.hub.principal(fromName);
    const to = this.hub.principal(flow.name);
    if (!from) throw new HttpError(404, "unknown_node", fromName.startsWith("user:") ? `no user of the mesh named "${fromName.slice(5)}"` : `no active node named "${fromName}"`);
    if (!to) throw new HttpError(404, "unknown_node", `no active node named "${flow.name}"`);
    const d = decide(this.policy, from, to, flow.port, flow.protocol);
    sendJson(res, 200, { allow: d.allow, rule: d.rule, reason: d.reason, from: fromName, to: flow.name, port: flow.port, protocol: flow.protocol });
  }
}


function labels(v: unknown, key: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > 32 || !v.every((x) => typeof x === "string")) throw new HttpError(400, "bad_request", `"${key}" must be a list of names`);
  return [...new Set(v as string[])];
}

function num(v: unknown, key: string, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) throw new HttpError(400, "bad_request", `"${key}" must be an integer in ${min}..${max}`);
  return v;
}

/** The server's leaf serial list isn't needed elsewhere; exported for tests that pin the bundle. */
export function bundleRootDer(bundlePem: string): Uint8Array {
  return pemBlocks(bundlePem, "CERTIFICATE", "trust bundle")[0];
}
