// Checks `ember up` runs before anything that cannot be undone (spending a one-time enrollment token) and before
// the daemon binds: the state directory exists (created 0700) and is writable, every port the user asked for is
// free (the overlay UDP port, the proxy, metrics), and, when enrolling, the coordination server answers and this
// host's clock agrees with it. Each failure is one line naming the cause and the fix.
import { accessSync, constants, mkdirSync, statSync } from "node:fs";
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { dirname } from "node:path";
import { DIAG, fmtOffset, measureClockOffset } from "./diagnostics.js";
import { classifyConnectError, describeConnectFailure, urlTarget } from "../net/connect-errors.js";
import type { NodeConfig } from "./config.js";
import { familiesFor } from "./udp-conn.js";

/** A check failed: the message names the cause and the fix; exitCode 2 for configuration, 1 for the outside world. */
export class PreflightError extends Error {
  constructor(message: string, readonly exitCode: 1 | 2 = 2) { super(message); }
}

/** Creates the state directory (0700) when missing; refuses one that is not a writable directory. */
export function prepareStateDir(dir: string, what = "state directory"): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" });
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM") throw new PreflightError(`${what} ${dir}: permission denied: run as the user that owns it (ember), or give one this user may write (--state DIR)`);
    if (code === "ENOTDIR" || code === "EEXIST") throw new PreflightError(`${what} ${dir}: a file is in the way, not a directory: remove it or give another --state DIR`);
    if (code === "EROFS") throw new PreflightError(`${what} ${dir} is on a read-only file system: give a writable one (--state DIR)`);
    throw new PreflightError(`${what} ${dir}: ${(err as Error).message}`);
  }
}

/** "--listen 127.0.0.1:41641: UDP port 41641 is already in use ..." for a port some other program holds. */
export function portInUse(flag: string, proto: "UDP" | "TCP", host: string, port: number): string {
  return `${flag} ${host}:${port}: ${proto} port ${port} is already in use by another program (another ember up?): stop it, or pick another port with ${flag}${flag === "--listen" ? " (0: any free port)" : ""}`;
}

function bindMessage(err: NodeJS.ErrnoException, flag: string, proto: "UDP" | "TCP", host: string, port: number): string {
  if (err.code === "EADDRINUSE") return portInUse(flag, proto, host, port);
  if (err.code === "EACCES") return `${flag} ${host}:${port}: permission denied (ports below 1024 need CAP_NET_BIND_SERVICE): pick a port above 1023`;
  if (err.code === "EADDRNOTAVAIL") return `${flag} ${host}:${port}: ${host} is not an address of this host: use one it has (or 0.0.0.0)`;
  return `${flag} ${host}:${port}: ${err.code ?? err.message}`;
}

/** The sockets the daemon will bind for this listen host (one per family, src/node/udp-conn.ts), each tried. */
async function tryUdp(host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  const want = familiesFor(host);
  const v4 = want.v4 !== undefined ? await tryUdpSocket(4, want.v4, port) : undefined;
  if (v4 || want.v6 === undefined) return v4;
  const v6 = await tryUdpSocket(6, want.v6, port);
  // With both families, a host without IPv6 runs on IPv4 alone: only a taken port is a failure.
  return v6 && (want.v4 === undefined || v6.code === "EADDRINUSE") ? v6 : undefined;
}

function tryUdpSocket(family: 4 | 6, host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const s = createSocket({ type: family === 6 ? "udp6" : "udp4", ipv6Only: family === 6 });
    s.once("error", (err) => { s.close(); resolve(err); });
    s.bind(port, host, () => s.close(() => resolve(undefined)));
  });
}

function tryTcp(host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", (err) => resolve(err));
    s.listen(port, host, () => s.close(() => resolve(undefined)));
  });
}

/** Every listener the configuration asks for, bound and released at once: the first one taken is named. */
export async function checkPortsFree(cfg: Pick<NodeConfig, "listenHost" | "listenPort" | "proxy" | "metrics">): Promise<void> {
  const checks: [string, "UDP" | "TCP", string, number][] = [];
  if (cfg.listenPort !== 0) checks.push(["--listen", "UDP", cfg.listenHost, cfg.listenPort]);
  if (cfg.proxy && cfg.proxy.port !== 0) checks.push(["--proxy", "TCP", cfg.proxy.host, cfg.proxy.port]);
  if (cfg.metrics && cfg.metrics.port !== 0) checks.push(["--metrics", "TCP", cfg.metrics.host, cfg.metrics.port]);
  for (const [flag, proto, host, port] of checks) {
    const err = proto === "UDP" ? await tryUdp(host, port) : await tryTcp(host, port);
    // Exit 1 like any `ember up` that cannot start: the flag is fine, another program holds the port.
    if (err) throw new PreflightError(bindMessage(err, flag, proto, host, port), 1);
  }
}

/** The control socket's directory must exist and be writable (it is the state directory unless --socket). */
export function checkControlSocketDir(socketPath: string): void {
  prepareStateDir(dirname(socketPath), "control socket directory");
}

/**
 * Before a token is spent: the coordination server answers (refused, timeout, DNS and TLS each named), and
 * this host's clock is within the certificates' skew allowance of the server's (else the certificate it
 * issues would look not yet valid or expired here, and the token would be spent for nothing).
 */
export async function checkServerBeforeEnrolling(replicas: string[], timeoutMs = 5_000): Promise<void> {
  let first: string | undefined;
  for (const url of replicas) {
    let clock;
    try {
      clock = await measureClockOffset(url, timeoutMs);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const d = describeConnectFailure(classifyConnectError(e), "the coordination server", urlTarget(url), e.code ?? e.message);
      first ??= `cannot enroll (the token is not spent): ${d.cause}; fix: ${d.fix}`;
      continue;
    }
    if (Math.abs(clock.offsetMs) <= DIAG.clockErrorMs) return;
    throw new PreflightError(`cannot enroll (the token is not spent): this host's clock is ${fmtOffset(clock.offsetMs)} the coordination server's, beyond the ${DIAG.clockErrorMs / 1000} s certificates allow; fix: synchronise it with NTP (timedatectl set-ntp true), then enroll`, 1);
  }
  throw new PreflightError(first ?? "cannot enroll: no coordination server given (--coord URL)", first ? 1 : 2);
}
