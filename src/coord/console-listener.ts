// The console's own HTTPS listener (docs/dashboard.md). Browsers cannot use the coordination listener:
// Chromium's TLS (BoringSSL) implements no Ed25519 signatures, and every mesh certificate is Ed25519
// (measured: net::ERR_SSL_VERSION_OR_CIPHER_MISMATCH). So the console listens on a port of its own with a
// web certificate: the operator's (--console-cert/--console-key, ECDSA or RSA from their web PKI), or else a
// self-signed ECDSA P-256 certificate made at first start and kept in the data directory (its SHA-256
// fingerprint is logged, to pin in the browser). It still asks for a client certificate, for the
// certificate login, and the PKI verifier judges it; it serves /ui only. Anyone can open connections to it, so
// the coordination port's admission guard (src/net/conn-guard.ts) stands in front: per-source caps, a
// deadline for connections that show no session, eviction of the oldest of those under pressure.
import { createHash, randomBytes, webcrypto } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { TLSSocket } from "node:tls";
import { isIP } from "node:net";
import { join } from "node:path";
import type { Logger } from "pino";
import { x509 as loadX509 } from "../pki/x509-provider.js";
import { ConnectionGuard, DropLog } from "../net/conn-guard.js";
import { verifyTlsPeer, type Verifier } from "../pki/index.js";
import type { Console } from "./console.js";
import { HttpError, sendError } from "./http.js";
import { CONSOLE_CONNECTION_DEFAULTS } from "./protocol.js";

export const CONSOLE_CERT_FILE = "console.crt";
export const CONSOLE_KEY_FILE = "console.key";
const SELF_SIGNED_DAYS = 365;

export type ConsoleConnectionLimits = { -readonly [K in keyof typeof CONSOLE_CONNECTION_DEFAULTS]: number };

export interface ConsoleListenerOptions {
  host: string; port: number; certFile?: string; keyFile?: string; dataDir: string; bundlePem: string; verifier: Verifier;
  limits?: Partial<ConsoleConnectionLimits>;
}

export interface ConsoleListener { server: Server; guard: ConnectionGuard; url: string; fingerprint: string; close: () => Promise<void> }

/** A self-signed ECDSA P-256 server certificate for these names, valid a year. */
export async function selfSignedWebCert(names: string[]): Promise<{ certPem: string; keyPem: string }> {
  const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"]) as CryptoKeyPair;
  const now = Date.now();
  const x509 = loadX509();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString("hex").replace(/^[89a-f]/, "1"), name: "CN=EmberNet console",
    notBefore: new Date(now - 60_000), notAfter: new Date(now + SELF_SIGNED_DAYS * 86_400_000), keys, signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names.map((n) => (isIP(n) ? { type: "ip" as const, value: n } : { type: "dns" as const, value: n }))),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").replace(/(.{64})/g, "$1\n").trimEnd()}\n-----END PRIVATE KEY-----\n`;
  return { certPem: cert.toString("pem") + "\n", keyPem };
}

async function webCredentials(o: ConsoleListenerOptions, log: Logger): Promise<{ cert: string; key: string }> {
  if (o.certFile || o.keyFile) {
    if (!o.certFile || !o.keyFile) throw new Error("--console-cert and --console-key go together");
    return { cert: readFileSync(o.certFile, "utf8"), key: readFileSync(o.keyFile, "utf8") };
  }
  const certPath = join(o.dataDir, CONSOLE_CERT_FILE), keyPath = join(o.dataDir, CONSOLE_KEY_FILE);
  if (existsSync(certPath) && existsSync(keyPath)) {
    const c = new (loadX509().X509Certificate)(readFileSync(certPath, "utf8"));
    if (c.notAfter.getTime() - Date.now() > 7 * 86_400_000) return { cert: readFileSync(certPath, "utf8"), key: readFileSync(keyPath, "utf8") };
  }
  const names = [...new Set(["localhost", "127.0.0.1", "::1", ...(o.host && o.host !== "0.0.0.0" && o.host !== "::" ? [o.host] : [])])];
  const made = await selfSignedWebCert(names);
  writeFileSync(keyPath, made.keyPem, { mode: 0o600 });
  writeFileSync(certPath, made.certPem);
  log.warn({ event: "console_self_signed", file: certPath, names }, "console: made a self-signed web certificate (give --console-cert/--console-key for one browsers trust)");
  return { cert: made.certPem, key: made.keyPem };
}

export async function startConsoleListener(o: ConsoleListenerOptions, consoleApp: Console, log: Logger): Promise<ConsoleListener> {
  const creds = await webCredentials(o, log);
  const limits = { ...CONSOLE_CONNECTION_DEFAULTS, ...o.limits };
  const dropLog = new DropLog((fields, msg) => log.warn({ ...fields, listener: "console" }, `console: ${msg}`));
  const guard = new ConnectionGuard({
    maxConnections: limits.maxConnections, maxPending: limits.maxPending, maxPendingPerSource: limits.maxPendingPerSource, pendingDeadlineMs: limits.anonymousTimeoutMs,
  }, (event, source) => dropLog.note(event, source));
  const server = createServer({
    cert: creds.cert, key: creds.key, ca: o.bundlePem, requestCert: true, rejectUnauthorized: false, minVersion: "TLSv1.2",
    handshakeTimeout: limits.handshakeTimeoutMs, connectionsCheckingInterval: 1_000,
  }, (req, res) => {
    let url: URL;
    try { url = new URL(req.url ?? "/", "https://console"); } catch { return sendError(res, new HttpError(400, "bad_path", "request target is not a URL path")); }
    if (url.pathname === "/" ) { res.writeHead(302, { location: "/ui/" }); return void res.end(); }
    if (url.pathname !== "/ui" && !url.pathname.startsWith("/ui/")) return sendError(res, new HttpError(404, "not_found", "the console serves /ui/ only"));
    consoleApp.handle(req, res, url).catch((err) => {
      log.error({ event: "internal_error", route: url.pathname, err: (err as Error)?.stack }, "console handler failed");
      if (!res.headersSent) sendError(res, new HttpError(500, "internal", "internal error (logged on the server)")); else res.destroy();
    });
  });
  guard.attach(server);
  // A certificate the verifier accepts authenticates the connection (the certificate login); else a session does.
  server.on("secureConnection", (s: TLSSocket) => {
    if (guard.isPending(s) && verifyTlsPeer(s, o.verifier, { usage: "client" }).ok) guard.authenticate(s);
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.on("clientError", (_err, socket) => socket.destroy());
  server.on("tlsClientError", (err) => log.debug({ event: "console_tls_error", err: err.message }));
  await new Promise<void>((resolve, reject) => { server.once("error", reject); server.listen(o.port, o.host, () => { server.off("error", reject); resolve(); }); });
  const addr = server.address() as { address: string; port: number };
  const host = addr.address.includes(":") ? `[${addr.address}]` : addr.address;
  const der = new (loadX509().X509Certificate)(creds.cert).rawData;
  const fingerprint = createHash("sha256").update(Buffer.from(der)).digest("hex").replace(/(..)(?!$)/g, "$1:");
  const close = () => new Promise<void>((resolve) => {
    dropLog.stop();
    guard.close();
    server.close(() => resolve());
    server.closeAllConnections();
  });
  return { server, guard, url: `https://${host}:${addr.port}/ui/`, fingerprint, close };
}
