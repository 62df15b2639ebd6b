// netcheck: what the node's UDP socket looks like from outside. Asks several STUN servers in parallel on
// the SAME socket, gathers candidates (local interfaces, reflexive addresses, static endpoints) and
// classifies the mapping: the same mapped address seen by two servers at different IP:port means the NAT
// maps endpoint-independently (peers can reach the address STUN learned); different ones mean
// endpoint-dependent (each destination gets its own mapping: direct paths need prediction or the relay).
import { networkInterfaces } from "node:os";
import type { Socket } from "node:dgram";
import { StunClient, StunError, STUN_DEFAULT_TIMEOUT_MS, type MappedAddress, type StunServerAddress } from "./stun.js";

export type MappingBehaviour = "endpoint-independent" | "endpoint-dependent" | "unknown" | "udp-blocked";

export interface ServerReport {
  server: string;
  mapped?: MappedAddress;
  rttMs?: number;
  error?: string;
}

export interface NetcheckCandidate {
  type: "local" | "reflexive" | "static";
  address: string;
  port: number;
}

export interface NetcheckReport {
  localPort: number;
  servers: ServerReport[];
  mapping: MappingBehaviour;
  /** Human-readable why for the mapping verdict. */
  mappingDetail: string;
  /** The answering server with the lowest latency (home relay choice), if any answered. */
  fastest?: string;
  candidates: NetcheckCandidate[];
  durationMs: number;
  /** The same check on the node's IPv6 socket, when it has one beside its IPv4 one. */
  ipv6?: NetcheckReport;
  /** The IPv4 socket's check, when the IPv6 one speaks for the node (no STUN server answered over IPv4). */
  ipv4?: NetcheckReport;
  /** Port mapping at the default gateway: which protocol it offers, if any (and the daemon's mapping). */
  portmap?: import("./portmap/portmapper.js").PortmapReport | import("./portmap/portmapper.js").PortmapProbe;
}

export interface NetcheckOptions {
  servers: StunServerAddress[];
  timeoutMs?: number;
  staticEndpoints?: MappedAddress[];
  /** For tests: the interface table (default os.networkInterfaces()). */
  interfaces?: ReturnType<typeof networkInterfaces>;
}

export function serverLabel(s: StunServerAddress): string {
  return s.host.includes(":") ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}

/** Local interface addresses, loopback excluded unless there is nothing else. */
export function localCandidates(port: number, family: "IPv4" | "IPv6" | "any", ifaces = networkInterfaces()): NetcheckCandidate[] {
  const all: { address: string; internal: boolean }[] = [];
  for (const list of Object.values(ifaces)) {
    for (const a of list ?? []) {
      if (family !== "any" && a.family !== family) continue;
      if (a.family === "IPv6" && a.address.toLowerCase().startsWith("fe80")) continue; // link-local needs a scope id
      all.push({ address: a.address, internal: a.internal });
    }
  }
  const external = all.filter((a) => !a.internal);
  const chosen = external.length ? external : all;
  return [...new Set(chosen.map((a) => a.address))].map((address) => ({ type: "local" as const, address, port }));
}

/** Classifies mapping behaviour from the servers' answers (see docs/netcheck.md). */
export function classifyMapping(servers: ServerReport[]): { mapping: MappingBehaviour; detail: string } {
  const answered = servers.filter((s) => s.mapped);
  if (servers.length === 0) return { mapping: "unknown", detail: "no STUN server configured" };
  if (answered.length === 0) return { mapping: "udp-blocked", detail: `none of ${servers.length} STUN server(s) answered over UDP` };
  const distinctServers = new Set(answered.map((s) => s.server));
  if (distinctServers.size < 2) return { mapping: "unknown", detail: "only one STUN server answered: two at different IP:port are needed to compare mappings" };
  const mapped = new Set(answered.map((s) => `${s.mapped!.address}:${s.mapped!.port}`));
  if (mapped.size === 1) return { mapping: "endpoint-independent", detail: `${distinctServers.size} servers saw the same mapping ${[...mapped][0]}` };
  return { mapping: "endpoint-dependent", detail: `${distinctServers.size} servers saw ${mapped.size} different mappings: ${[...mapped].join(", ")}` };
}

/**
 * Runs the check on an open, bound socket whose message handler already routes datagrams to stun.handle().
 * Never throws for network failures: each server's error is in its report.
 */
export async function netcheck(socket: Socket, stun: StunClient, opts: NetcheckOptions): Promise<NetcheckReport> {
  const t0 = performance.now();
  const timeoutMs = opts.timeoutMs ?? STUN_DEFAULT_TIMEOUT_MS;
  const local = socket.address();
  const servers = await Promise.all(opts.servers.map(async (server): Promise<ServerReport> => {
    try {
      const r = await stun.request(server, timeoutMs);
      return { server: serverLabel(server), mapped: r.mapped, rttMs: Math.round(r.rttMs * 100) / 100 };
    } catch (err) {
      return { server: serverLabel(server), error: err instanceof StunError ? `${err.code}: ${err.message}` : (err as Error).message };
    }
  }));
  const { mapping, detail } = classifyMapping(servers);
  const family = local.family === "IPv6" && local.address !== "::" ? "IPv6" : local.address === "::" ? "any" : "IPv4";
  const bound = local.address === "0.0.0.0" || local.address === "::" ? undefined : local.address;
  const candidates: NetcheckCandidate[] = bound
    ? [{ type: "local", address: bound, port: local.port }]
    : localCandidates(local.port, family, opts.interfaces);
  const seen = new Set(candidates.map((c) => `${c.address}:${c.port}`));
  const add = (c: NetcheckCandidate) => {
    const k = `${c.address}:${c.port}`;
    if (!seen.has(k)) { seen.add(k); candidates.push(c); }
  };
  for (const s of servers) if (s.mapped) add({ type: "reflexive", ...s.mapped });
  for (const e of opts.staticEndpoints ?? []) add({ type: "static", address: e.address, port: e.port });
  const fastest = servers.filter((s) => s.rttMs !== undefined).sort((a, b) => a.rttMs! - b.rttMs!)[0]?.server;
  return {
    localPort: local.port, servers, mapping, mappingDetail: detail, ...(fastest ? { fastest } : {}), candidates,
    durationMs: Math.round(performance.now() - t0),
  };
}
