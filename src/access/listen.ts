// Where access listeners may bind: loopback only. The proxy and forwards have no authentication of
// their own (the mesh identity is this node's), so anyone who can reach them acts as this node.
import { isIP } from "node:net";

export class ListenError extends Error {
  override name = "ListenError";
}

export const DEFAULT_LISTEN_HOST = "127.0.0.1";

export function isLoopback(host: string): boolean {
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1" || host === "0:0:0:0:0:0:0:1";
}

/** Throws ListenError for a host that is not a loopback address, unless explicitly allowed. */
export function checkListenHost(host: string, allowNonLoopback = false): void {
  if (!isIP(host)) throw new ListenError(`listen address "${String(host).slice(0, 64)}" is not an IP address: use 127.0.0.1`);
  if (!isLoopback(host) && !allowNonLoopback) {
    throw new ListenError(`listen address ${host} is not loopback: the proxy and forwards serve only this host's applications (127.0.0.1)`);
  }
}

export function checkListenPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ListenError(`listen port ${String(port).slice(0, 16)} is outside 0-65535`);
}

/** A clear message for a failed bind. */
export function bindFailure(err: NodeJS.ErrnoException, host: string, port: number): ListenError {
  const where = `${host}:${port}`;
  if (err.code === "EADDRINUSE") return new ListenError(`${where} is already in use: pick another port`);
  if (err.code === "EACCES") return new ListenError(`${where}: permission denied (ports below 1024 need privileges)`);
  return new ListenError(`${where}: ${err.code ?? err.message}`);
}
