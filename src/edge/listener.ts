// The public edge's listener (docs/external-access.md): the one place in EmberNet that accepts a connection
// without a mesh identity. Each connection goes, in order:
//   1. admission by source address (limits.ts), before any TLS work: refused = closed at once;
//   2. TLS with the public certificate for its SNI name; a name that is not published gets no handshake;
//   3. client authentication when the publication asks for it (a certificate from its CA, or a bearer token
//      in the first HTTP request head: 401 without one);
//   4. a mesh flow to the publishing node's service, marked external: the node decides it by its own policy;
//   5. bytes spliced both ways until either side ends, or the publication goes (closed within a map delta).
// Every connection is logged once with its source, hostname, service, decision and reason.
import { createServer, type Server, type Socket } from "node:net";
import { createSecureContext, TLSSocket, type SecureContext } from "node:tls";
import { X509Certificate } from "node:crypto";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { Target } from "../access/index.js";
import { dialFailure } from "../access/index.js";
import { splice } from "../access/splice.js";
import type { MapPublication } from "../wire/coord/edge.js";
import type { ExternalOrigin } from "../wire/messages.js";
import { BearerVerifier, bearerOf, withoutAuthorization } from "./bearer.js";
import { checkClientCert } from "./client-cert.js";
import { SourceLimiter, type EdgeLimits } from "./limits.js";

/** What the edge needs of the node it runs in: an external flow to a service. */
export interface EdgeDialer { dial(target: Target, opts: { precheck: false; external: ExternalOrigin }): Promise<Duplex> }

export interface PublicCert { certPem: string; keyPem: string }

/** An HTTP request head larger than this is refused (token auth reads one head). */
const MAX_HEAD_BYTES = 16 * 1024;
const PRUNE_MS = 10_000;

interface Route { pub: MapPublication; key: string; context: SecureContext; bearer?: BearerVerifier }
interface Live { socket: Socket; tls?: TLSSocket; stream?: Duplex; hostname?: string; source: string; service?: string; decided?: boolean }

export class EdgeListener {
  readonly limiter: SourceLimiter;
  readonly counters = { accepted: 0, refused: 0, authFailed: 0, unknownName: 0, denied: 0, closedByUnpublish: 0 };
  private readonly certs: { pem: PublicCert; x509: X509Certificate; context: SecureContext }[];
  private routes = new Map<string, Route>();
  private readonly live = new Set<Live>();
  private server?: Server;
  private pruneTimer?: NodeJS.Timeout;

  constructor(private readonly opts: { dialer: EdgeDialer; log: Logger; certs: PublicCert[]; limits: EdgeLimits; tenant: string }) {
    if (!opts.certs.length) throw new Error("the edge needs at least one public certificate (--cert FILE --key FILE)");
    this.certs = opts.certs.map((pem) => ({ pem, x509: new X509Certificate(pem.certPem), context: createSecureContext({ cert: pem.certPem, key: pem.keyPem }) }));
    this.limiter = new SourceLimiter(opts.limits);
  }

  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const server = (this.server = createServer({ noDelay: true }, (s) => this.onConnection(s)));
    server.maxConnections = this.opts.limits.maxConnections + 64; // the limiter refuses first; this is the last line
    await new Promise<void>((resolve, reject) => { server.once("error", reject); server.listen(port, host, () => { server.off("error", reject); resolve(); }); });
    this.pruneTimer = setInterval(() => this.limiter.prune(Date.now()), PRUNE_MS).unref();
    const a = server.address() as { address: string; port: number };
    return { host: a.address, port: a.port };
  }

  async close(): Promise<void> {
    clearInterval(this.pruneTimer);
    for (const l of this.live) this.end(l);
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** The publications from the peer map: a hostname gone or changed has its connections closed now. */
  setPublications(pubs: MapPublication[], tokenKeyPem: string): void {
    const next = new Map<string, Route>();
    for (const pub of pubs) {
      const key = JSON.stringify([pub, pub.clientAuth === "token" ? tokenKeyPem : ""]);
      const old = this.routes.get(pub.hostname);
      if (old && old.key === key) { next.set(pub.hostname, old); continue; }
      try {
        next.set(pub.hostname, this.route(pub, key, tokenKeyPem));
      } catch (err) {
        this.opts.log.error({ event: "edge_publication_unusable", hostname: pub.hostname, err: (err as Error).message }, "publication not served: its client auth material does not load");
      }
    }
    const gone = [...this.routes.keys()].filter((h) => next.get(h) !== this.routes.get(h));
    const added = [...next.keys()].filter((h) => next.get(h) !== this.routes.get(h));
    this.routes = next;
    for (const h of gone) {
      let n = 0;
      for (const l of this.live) if (l.hostname === h) { this.end(l); n++; }
      this.counters.closedByUnpublish += n;
      this.opts.log.info({ event: "edge_unpublished", hostname: h, closed: n, changed: next.has(h) }, next.has(h) ? "publication changed: its connections closed" : "publication withdrawn: its connections closed");
    }
    if (gone.length || added.length) this.opts.log.info({ event: "edge_publications", hostnames: [...next.keys()], added, gone }, "edge publications updated");
  }

  stats() {
    return { ...this.counters, live: this.live.size, admitted: this.limiter.admitted, refusedBy: { ...this.limiter.refused }, hostnames: [...this.routes.keys()] };
  }

  private route(pub: MapPublication, key: string, tokenKeyPem: string): Route {
    const cert = this.certs.find((c) => c.x509.checkHost(pub.hostname) !== undefined) ?? this.certs[0];
    if (cert === this.certs[0] && this.certs[0].x509.checkHost(pub.hostname) === undefined) {
      this.opts.log.warn({ event: "edge_no_certificate", hostname: pub.hostname }, "no public certificate names this hostname: clients will refuse the first one");
    }
    const context = pub.clientAuth === "cert" ? createSecureContext({ cert: cert.pem.certPem, key: cert.pem.keyPem, ca: pub.clientCaPem }) : cert.context;
    return { pub, key, context, ...(pub.clientAuth === "token" ? { bearer: new BearerVerifier(tokenKeyPem) } : {}) };
  }

  private onConnection(socket: Socket): void {
    const source = `${socket.remoteAddress ?? "?"}`;
    const from = `${source}:${socket.remotePort ?? 0}`;
    socket.on("error", () => undefined);
    const verdict = this.limiter.admit(source, Date.now());
    if (!verdict.ok) {
      this.counters.refused++;
      this.opts.log.warn({ event: "edge_connection", source: from, decision: "refused", reason: verdict.reason }, "external connection refused");
      socket.destroy();
      return;
    }
    const l: Live = { socket, source: from };
    this.live.add(l);
    socket.once("close", () => { this.live.delete(l); this.limiter.release(source); });
    const deadline = setTimeout(() => this.refuse(l, "timeout", "no TLS handshake (or request head) in time"), this.opts.limits.handshakeTimeoutMs);
    socket.once("close", () => clearTimeout(deadline));
    const tls = new TLSSocket(socket, {
      isServer: true, secureContext: this.certs[0].context, requestCert: false, rejectUnauthorized: false, minVersion: "TLSv1.2",
      SNICallback: (name, cb) => {
        const r = this.routes.get(name.toLowerCase());
        if (!r) {
          this.counters.unknownName++;
          this.logDecision(l, "refused", "hostname not published", name);
          return cb(new Error(`hostname ${name.slice(0, 80)} is not published here`), undefined);
        }
        // Only a cert-auth publication asks for a client certificate, and then requires one (a TLS alert without).
        if (r.pub.clientAuth === "cert") (tls as unknown as { _handle?: { setVerifyMode?(req: boolean, reject: boolean): void } })._handle?.setVerifyMode?.(true, true);
        cb(null, r.context);
      },
    });
    l.tls = tls;
    tls.on("error", (err) => this.refuse(l, "tls", err.message));
    tls.once("secure", () => { void this.onSecure(l, tls, deadline); });
  }

  private async onSecure(l: Live, tls: TLSSocket, deadline: NodeJS.Timeout): Promise<void> {
    const name = typeof tls.servername === "string" ? tls.servername.toLowerCase() : "";
    const r = this.routes.get(name);
    if (!r) return this.refuse(l, name ? "unknown_name" : "no_sni", name ? "hostname not published" : "no server name (SNI) in the TLS hello");
    l.hostname = name;
    l.service = `${r.pub.service}.${r.pub.node}`;
    let head: Buffer | undefined;
    if (r.pub.clientAuth === "cert") {
      const c = checkClientCert(tls.getPeerX509Certificate(), r.pub.clientCaPem ?? "");
      if (!c.ok) { this.counters.authFailed++; return this.refuse(l, "client_cert", c.reason); }
    } else if (r.pub.clientAuth === "token") {
      head = await readHead(tls).catch(() => undefined);
      if (!this.live.has(l)) return;
      const token = head ? bearerOf(head.toString("latin1")) : undefined;
      const v = token ? r.bearer!.check(token, name) : { ok: false as const, reason: head ? "no Authorization: Bearer token" : "no HTTP request head" };
      if (!v.ok) {
        this.counters.authFailed++;
        this.logDecision(l, "refused", `token: ${v.reason}`);
        const body = `401 Unauthorized: ${name} needs "Authorization: Bearer TOKEN" (ember expose token)\n`;
        tls.end(`HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm="${name}"\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
        return;
      }
      head = Buffer.from(withoutAuthorization(head!.toString("latin1")), "latin1");
    }
    clearTimeout(deadline);
    const p = r.pub;
    let stream: Duplex;
    try {
      stream = await this.opts.dialer.dial({ peer: p.node, tenant: this.opts.tenant, port: p.port, protocol: "tcp", service: p.service }, { precheck: false, external: { source: l.source } });
    } catch (err) {
      this.counters.denied++;
      const f = dialFailure(err);
      return this.refuse(l, f.code, f.reason);
    }
    // The publication may have gone while the flow opened: never splice a withdrawn hostname.
    if (!this.live.has(l) || this.routes.get(name) !== r) { stream.destroy(); return this.refuse(l, "unpublished", "publication withdrawn while connecting"); }
    l.stream = stream;
    this.counters.accepted++;
    this.logDecision(l, "allowed", `flow accepted by ${p.node}`);
    if (head) stream.write(head);
    splice(tls, stream);
  }

  /** The one log line of a connection's decision (later failures of the same connection are not decisions). */
  private logDecision(l: Live, decision: "allowed" | "refused", reason: string, hostname = l.hostname): void {
    if (l.decided) return;
    l.decided = true;
    this.opts.log[decision === "allowed" ? "info" : "warn"]({ event: "edge_connection", source: l.source, hostname, service: l.service, decision, reason },
      decision === "allowed" ? "external connection allowed" : "external connection refused");
  }

  private refuse(l: Live, code: string, reason: string): void {
    if (!this.live.has(l)) return;
    this.logDecision(l, "refused", `${code}: ${reason}`);
    this.end(l);
  }

  private end(l: Live): void {
    this.live.delete(l);
    l.stream?.destroy();
    l.tls?.destroy();
    l.socket.destroy();
  }
}

/** Reads one HTTP request head (up to the blank line) without consuming what follows it; the rest is unshifted. */
function readHead(s: TLSSocket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      const all = Buffer.concat(chunks);
      const end = all.indexOf("\r\n\r\n");
      if (end >= 0) {
        done();
        const rest = all.subarray(end + 4);
        if (rest.length) s.unshift(rest);
        resolve(all.subarray(0, end + 4));
      } else if (size > MAX_HEAD_BYTES) { done(); reject(new Error("request head too large")); }
    };
    const onEnd = () => { done(); reject(new Error("closed before a request head")); };
    const done = () => { s.off("data", onData); s.off("end", onEnd); s.off("close", onEnd); s.pause(); };
    s.on("data", onData);
    s.once("end", onEnd);
    s.once("close", onEnd);
  });
}
