// The services this node exposes on the mesh: a name, the port and protocol peers reach it on, and the local
// address the node connects accepted flows to. Announced in the node's status reports, so they appear in
// its peers' maps; policy decides who may reach them (a flow to a service is a flow to this node on the
// service's port and protocol). One owner (the daemon), one setter each for adding and removing.
import type { MapService, ServiceProtocol } from "../coord/protocol.js";
import { parseHostPort } from "../addr/host-port.js";

export interface LocalService extends MapService {
  /** Where accepted flows go, e.g. 127.0.0.1:8080; none when an SDK listener in this process serves it. */
  to?: { host: string; port: number };
}

export class ServiceError extends Error {}

const NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const PROTOCOLS: readonly string[] = ["tcp", "udp", "https"];
export const MAX_LOCAL_SERVICES = 32;
const HTTPS_PORT = 443;

/** "https" is TCP on the mesh (policy treats it so too); udp services carry datagrams. */
export function transportOf(p: ServiceProtocol): "tcp" | "udp" {
  return p === "udp" ? "udp" : "tcp";
}

/**
 * Checks one service definition as an operator writes it (flags or config). The mesh port defaults to 443
 * for https and to the local port otherwise.
 */
export function parseService(def: { name: string; to: string; protocol?: string; port?: string | number }): LocalService {
  const { name } = def;
  if (typeof name !== "string" || !NAME.test(name)) throw new ServiceError(`service name "${String(name).slice(0, 70)}" must be a lowercase DNS label`);
  const protocol = (def.protocol ?? "tcp").toLowerCase();
  if (!PROTOCOLS.includes(protocol)) throw new ServiceError(`service ${name}: protocol "${protocol}" must be tcp, udp or https`);
  let to: { host: string; port: number };
  try { to = parseHostPort(String(def.to ?? ""), `service ${name} --to`, "127.0.0.1"); } catch (err) { throw new ServiceError((err as Error).message); }
  if (to.port === 0) throw new ServiceError(`service ${name}: --to needs a port`);
  const port = def.port === undefined ? (protocol === "https" ? HTTPS_PORT : to.port) : Number(def.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ServiceError(`service ${name}: port "${def.port}" must be 1-65535`);
  return { name, port, protocol: protocol as ServiceProtocol, to };
}

export class ServiceTable {
  private readonly byName = new Map<string, LocalService>();

  constructor(private readonly onChange: () => void = () => {}) {}

  add(s: LocalService): void {
    const clash = [...this.byName.values()].find((o) => o.name !== s.name && o.port === s.port && transportOf(o.protocol) === transportOf(s.protocol));
    if (clash) throw new ServiceError(`service ${s.name}: ${transportOf(s.protocol)} port ${s.port} is already service ${clash.name}`);
    if (!this.byName.has(s.name) && this.byName.size >= MAX_LOCAL_SERVICES) throw new ServiceError(`at most ${MAX_LOCAL_SERVICES} services per node`);
    this.byName.set(s.name, s);
    this.onChange();
  }

  remove(name: string): boolean {
    const had = this.byName.delete(name);
    if (had) this.onChange();
    return had;
  }

  get(name: string): LocalService | undefined {
    return this.byName.get(name);
  }

  /** The service a flow to this port and transport reaches, if any. */
  byPort(port: number, transport: "tcp" | "udp"): LocalService | undefined {
    for (const s of this.byName.values()) if (s.port === port && transportOf(s.protocol) === transport) return s;
    return undefined;
  }

  list(): LocalService[] {
    return [...this.byName.values()];
  }

  /** What the status report announces (no local addresses: they are nobody else's business). */
  announced(): MapService[] {
    return this.list().map(({ name, port, protocol }) => ({ name, port, protocol }));
  }
}
