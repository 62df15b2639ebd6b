// HTTPS client agents for mesh servers (the coordination server, for nodes, admins and relays alike). The
// server's certificate is judged by the PKI verifier (chain to the bundle, validity, revocation, and the
// expected identity and role) on the connected socket BEFORE the agent hands the socket to a request, so no
// request byte (token, CSR) reaches an unverified server. Shared by src/ and relay/, so it imports only pki.
import { Agent, request, type AgentOptions } from "node:https";
import type { ClientRequest } from "node:http";
import { connect, createSecureContext, type ConnectionOptions, type SecureContext, type TLSSocket } from "node:tls";
import type { Duplex } from "node:stream";
import { verifyTlsPeer } from "./tls.js";
import type { Verifier } from "./verify.js";

export class RequestError extends Error {
  constructor(readonly status: number, readonly code: string, readonly detail: string, readonly body?: any) {
    super(`${code}: ${detail}`);
  }
}

/** The server's certificate was refused on the connected socket: no byte of the request reached that server. */
export class ServerNotTrusted extends Error {}

/** Who the server must be: its identity name and a role its certificate grants, and what to call it in errors. */
export interface ExpectedServer { name: string; role: string; description: string }

export function checkServerSocket(socket: TLSSocket, verifier: Verifier, expect: ExpectedServer): Error | undefined {
  const v = verifyTlsPeer(socket, verifier, { usage: "server" });
  if (!v.ok) return new ServerNotTrusted(`${expect.description} certificate refused (${v.reason}): ${v.detail}`);
  if (v.identity.name !== expect.name || !v.identity.roles.includes(expect.role)) {
    return new ServerNotTrusted(`peer "${v.identity.name}" is a mesh identity but not the ${expect.description} (needs name "${expect.name}" and role "${expect.role}")`);
  }
  return undefined;
}

export interface VerifiedAgentOptions {
  verifier: Verifier;
  expect: ExpectedServer;
  certChainPem?: string;
  keyPem?: string;
  keepAlive?: boolean;
  maxSockets?: number;
  /** Source address of the connections (a host with several). */
  localAddress?: string;
}

/**
 * TLS contexts are made once, not per connection: building one (parsing the certificate chain and key, the
 * default CA store) cost about 2 ms, more than the handshake. Connections without a client certificate share one.
 */
const anonymousContexts = new Map<string, SecureContext>();
function sharedAnonymousContext(minVersion: "TLSv1.3" | "default"): SecureContext {
  let c = anonymousContexts.get(minVersion);
  if (!c) anonymousContexts.set(minVersion, (c = createSecureContext(minVersion === "default" ? {} : { minVersion })));
  return c;
}

class VerifiedAgent extends Agent {
  private context?: SecureContext;
  /** Sockets that passed the verifier: only these carry requests once there is one. */
  private readonly verified = new WeakSet<Duplex>();

  constructor(private verifier: Verifier | undefined, private readonly expect: ExpectedServer, private readonly creds: { cert?: string; key?: string }, opts: AgentOptions) {
    super(opts);
  }

  /** From now on every socket must pass `verifier` before it carries a request, the pooled one included. */
  trust(verifier: Verifier): void { this.verifier = verifier; }

  /** A pooled socket opened before trust(): judged now, before the next request's first byte. */
  override reuseSocket(socket: TLSSocket, req: ClientRequest): void {
    if (this.verifier && !this.verified.has(socket)) {
      const err = checkServerSocket(socket, this.verifier, this.expect);
      if (err) { req.destroy(err); return; } // keepSocketAlive below drops the socket
      this.verified.add(socket);
    }
    super.reuseSocket(socket, req);
  }

  override keepSocketAlive(socket: TLSSocket): boolean {
    if (this.verifier && !this.verified.has(socket)) return false;
    return super.keepSocketAlive(socket) as unknown as boolean; // @types/node says void; node returns whether it kept it
  }

  override createConnection(options: ConnectionOptions, cb: (err: Error | null, socket?: Duplex) => void): undefined {
    let secureContext: SecureContext;
    try {
      secureContext = this.context ??= this.creds.cert || this.creds.key
        ? createSecureContext({ cert: this.creds.cert, key: this.creds.key, minVersion: "TLSv1.3" })
        : sharedAnonymousContext("TLSv1.3");
    } catch (err) { cb(err as Error); return undefined; }
    const socket = connect({ ...options, secureContext, rejectUnauthorized: false, minVersion: "TLSv1.3" });
    const fail = (err: Error) => { socket.destroy(); cb(err); };
    socket.once("error", fail);
    socket.once("secureConnect", () => {
      socket.removeListener("error", fail);
      if (this.verifier) {
        const err = checkServerSocket(socket, this.verifier, this.expect);
        if (err) return fail(err);
        this.verified.add(socket);
      }
      cb(null, socket);
    });
    return undefined;
  }
}

/**
 * For enrollment, which has no trust bundle yet: one keep-alive connection, unverified until trust() is given the
 * bundle fetched over it (and checked against the token's pin); then that same connection is verified before it
 * carries the token, so an enrollment costs one TLS handshake on each side instead of two.
 */
export function bootstrapAgent(expect: ExpectedServer): Agent & { trust(verifier: Verifier): void } {
  return new VerifiedAgent(undefined, expect, {}, {
    keepAlive: true, keepAliveMsecs: TCP_KEEPALIVE_IDLE_MS, maxSockets: 1, maxCachedSessions: 0, minVersion: "TLSv1.3", rejectUnauthorized: false,
  });
}

/** TCP keepalive idle time of pooled mTLS connections: one probe a minute at most on an idle connection. */
const TCP_KEEPALIVE_IDLE_MS = 60_000;

export function verifiedAgent(o: VerifiedAgentOptions): Agent {
  return new VerifiedAgent(o.verifier, o.expect, { cert: o.certChainPem, key: o.keyPem }, {
    // keepAliveMsecs is also the TCP keepalive's idle time: Node's default of 1 s (libuv probing every second
    // after it) made every pooled connection send a probe and draw an ACK each second, at rest.
    cert: o.certChainPem, key: o.keyPem, keepAlive: o.keepAlive ?? true, keepAliveMsecs: TCP_KEEPALIVE_IDLE_MS, maxSockets: o.maxSockets ?? 4, localAddress: o.localAddress,
    maxCachedSessions: 0, minVersion: "TLSv1.3", rejectUnauthorized: false,
  });
}

export interface JsonResponse { status: number; body: any }

/** One JSON request; non-2xx answers become RequestError carrying the server's reason code. */
export function requestJson(agent: Agent | undefined, url: string, method: string, body?: unknown, opts: { timeoutMs?: number; insecure?: boolean } = {}): Promise<any> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(url, {
      method, agent: agent ?? false, rejectUnauthorized: opts.insecure ? false : undefined, ...(agent ? {} : { secureContext: sharedAnonymousContext("default") }),
      headers: { accept: "application/json", ...(data ? { "content-type": "application/json", "content-length": data.length } : {}) },
      timeout: opts.timeoutMs ?? 15_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > 64 * 1024 * 1024) { req.destroy(new Error("response too large")); return; }
        chunks.push(c);
      });
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed: any;
        try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return resolve(parsed ?? text);
        reject(new RequestError(status, parsed?.error ?? `http_${status}`, parsed?.detail ?? (text.slice(0, 200) || "no detail"), parsed));
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on("error", reject);
    req.end(data);
  });
}
