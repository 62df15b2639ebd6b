// Identity names as clients type them, resolved against the peer map to a Target:
//   NAME                  a peer: this node's tenant first, else the only peer of that name
//   NAME.TENANT           a peer in that tenant
//   SERVICE.NAME          a service the peer announces (its port and protocol)
//   SERVICE.NAME.TENANT   the same, the peer in that tenant
// Case does not matter; a trailing dot and the mesh pseudo-TLD `.ember` (db-1.ember) are ignored.
// A two-label name that reads both as NAME.TENANT and as SERVICE.NAME is the peer: the service
// stays reachable as SERVICE.NAME.TENANT, while the peer would have no other qualified spelling.
import { isIP } from "node:net";
import { NAME_PATTERN } from "../pki/constants.js";
import type { AccessProtocol, DialErrorCode, Directory, DirectoryPeer, ServiceInfo, Target } from "./types.js";

/** The mesh pseudo-TLD: `db-1.ember` is `db-1`, so a PAC file or resolver can route `*.ember` to the proxy. */
export const MESH_TLD = "ember";
const MAX_NAME = 253;
const FORMS = "expected NAME, NAME.TENANT, SERVICE.NAME or SERVICE.NAME.TENANT";

export type Resolution =
  | { ok: true; target: Target; why: string }
  | { ok: false; code: DialErrorCode; reason: string };

type Failure = { ok: false; code: DialErrorCode; reason: string };
/** A name resolved to a peer (and maybe one of its services), before any port is applied. */
type Found = { ok: true; peer: DirectoryPeer; service?: ServiceInfo; why: string };

const fail = (code: DialErrorCode, reason: string): Failure => ({ ok: false, code, reason });

/** Resolves what a client asked for (`host`, its port if any, the transport it speaks) to a mesh target. */
export function resolveName(host: string, port: number | undefined, protocol: AccessProtocol, dir: Directory): Resolution {
  const found = lookupName(host, dir);
  if (!found.ok) return found;
  return applyPort(found, port, protocol);
}

/** Parses a name into its labels (lowercase, trailing dot and `.ember` removed), or says what is wrong with it. */
export function parseName(host: string): { ok: true; labels: string[] } | Failure {
  if (typeof host !== "string") return fail("bad_request", "bad name: not a string");
  const bad = (why: string) => fail("bad_request", `bad name "${shown(host)}": ${why}`);
  if (host.length === 0) return bad(`empty; ${FORMS}`);
  if (host.length > MAX_NAME) return bad(`longer than ${MAX_NAME} characters`);
  if (isIP(host) || isIP(host.replace(/^\[(.*)\]$/, "$1"))) {
    return bad("an IP address, not a name: the mesh reaches peers by identity name (db-1, api.db-1)");
  }
  let name = host.toLowerCase();
  if (name.endsWith(".")) name = name.slice(0, -1);
  if (name.endsWith(`.${MESH_TLD}`)) name = name.slice(0, -MESH_TLD.length - 1);
  const labels = name.split(".");
  if (labels.length > 3) return bad(`${labels.length} labels; ${FORMS}`);
  for (const label of labels) {
    if (label === "") return bad(`empty label; ${FORMS}`);
    if (!NAME_PATTERN.test(label)) {
      return bad(`"${shown(label)}" is not a valid label (letters, digits and '-', 1-63 characters, no '-' at either end)`);
    }
  }
  return { ok: true, labels };
}

/** Finds the peer (and service) a name designates, whatever the port. */
export function lookupName(host: string, dir: Directory): Found | Failure {
  const parsed = parseName(host);
  if (!parsed.ok) return parsed;
  const [a, b, c] = parsed.labels;
  if (parsed.labels.length === 1) return findPeer(dir, a);
  if (parsed.labels.length === 3) return findService(dir, a, b, c);

  // Two labels: NAME.TENANT or SERVICE.NAME.
  const asPeer = findPeer(dir, a, b);
  const asService = findService(dir, a, b);
  if (asPeer.ok) {
    if (!asService.ok) return asPeer;
    return {
      ...asPeer,
      why: `${asPeer.why}; "${a}.${b}" also names service ${a} of ${b}, but NAME.TENANT wins (write ${a}.${b}.TENANT for the service)`,
    };
  }
  if (asService.ok) return asService;
  const tenantKnown = hasTenant(dir, b);
  const peerKnown = peersNamed(dir, b).length > 0;
  if (tenantKnown && !peerKnown) return asPeer;
  if (peerKnown && !tenantKnown) return asService;
  if (tenantKnown && peerKnown) return fail(asService.code, `${asPeer.reason}; and as SERVICE.NAME: ${asService.reason}`);
  const asName = peersNamed(dir, a);
  const hint = asName.length ? `; peer ${a} is in tenant ${tenantList(asName)}` : " (it may not exist, or no policy lets this node reach it)";
  return fail("unknown_name", `unknown name "${a}.${b}": no tenant ${b} and no peer ${b} in this node's peer map${hint}`);
}

/** Applies the client's port and transport to a found peer or service. */
function applyPort(found: Found, port: number | undefined, protocol: AccessProtocol): Resolution {
  const { peer, service } = found;
  const given = port === undefined || port === 0 ? undefined : port;
  if (given !== undefined && (!Number.isInteger(given) || given < 0 || given > 65535)) {
    return fail("bad_request", `bad port ${shown(given)}: outside 1-65535`);
  }
  if (service) {
    const carried: AccessProtocol = service.protocol === "udp" ? "udp" : "tcp";
    if (carried !== protocol) {
      return fail("bad_request", `service ${service.name} of ${peer.name} is ${service.protocol}, not ${protocol}`);
    }
    let why = found.why;
    if (given !== undefined && given !== service.port) why += `; the client asked for port ${given}, the service's port ${service.port} wins`;
    return { ok: true, target: { peer: peer.name, tenant: peer.tenant, port: service.port, protocol, service: service.name }, why };
  }
  if (given === undefined) {
    const hint = peer.services.length ? ` or name one of its services: ${peer.services.map((s) => `${s.name}.${peer.name}`).join(", ")}` : "";
    return fail("bad_request", `${peer.name} is a peer, not a service: give a port${hint}`);
  }
  return { ok: true, target: { peer: peer.name, tenant: peer.tenant, port: given, protocol }, why: found.why };
}

function findPeer(dir: Directory, name: string, tenant?: string): Found | Failure {
  const all = peersNamed(dir, name);
  if (tenant !== undefined) {
    const hit = all.find((p) => p.tenant.toLowerCase() === tenant);
    if (hit) return { ok: true, peer: hit, why: `peer ${hit.name} in tenant ${hit.tenant}` };
    if (all.length) return fail("unknown_name", `no peer ${name} in tenant ${tenant}; ${name} is in tenant ${tenantList(all)}`);
    if (hasTenant(dir, tenant)) return fail("unknown_name", `no peer named ${name} in tenant ${tenant}`);
    return fail("unknown_name", `unknown name "${name}.${tenant}": no peer ${name} and no tenant ${tenant} in this node's peer map`);
  }
  if (all.length === 0) {
    if (name === dir.selfName.toLowerCase()) return fail("unknown_name", `${name} is this node itself: reach its services on 127.0.0.1 directly`);
    return fail("unknown_name", `unknown name "${name}": no such peer in this node's peer map (it may not exist, or no policy lets this node reach it)`);
  }
  const own = all.find((p) => p.tenant.toLowerCase() === dir.selfTenant.toLowerCase());
  if (own) return { ok: true, peer: own, why: `peer ${own.name} in this node's tenant ${own.tenant}` };
  const tenants = new Set(all.map((p) => p.tenant.toLowerCase()));
  if (tenants.size === 1) return { ok: true, peer: all[0], why: `the only peer named ${all[0].name} (tenant ${all[0].tenant})` };
  return fail("unknown_name", `ambiguous name "${name}": peers of that name in tenants ${tenantList(all)}; `
    + `write ${[...tenants].map((t) => `${name}.${t}`).join(" or ")}`);
}

function findService(dir: Directory, service: string, name: string, tenant?: string): Found | Failure {
  const found = findPeer(dir, name, tenant);
  if (!found.ok) return found;
  const { peer } = found;
  const svc = peer.services.find((s) => s.name.toLowerCase() === service);
  if (!svc) {
    const list = peer.services.length ? `its services: ${peer.services.map(describeService).join(", ")}` : "it announces no services";
    return fail("unknown_name", `${peer.name} (tenant ${peer.tenant}) has no service "${service}"; ${list}`);
  }
  const carried = svc.protocol === "https" ? " (https, carried as tcp)" : "";
  return { ok: true, peer, service: svc, why: `service ${svc.name} of ${found.why}${carried}` };
}

function peersNamed(dir: Directory, name: string): DirectoryPeer[] {
  const out: DirectoryPeer[] = [];
  for (const p of dir.peers()) if (p.name.toLowerCase() === name) out.push(p);
  return out;
}

function hasTenant(dir: Directory, tenant: string): boolean {
  for (const p of dir.peers()) if (p.tenant.toLowerCase() === tenant) return true;
  return false;
}

function tenantList(peers: DirectoryPeer[]): string {
  return [...new Set(peers.map((p) => p.tenant))].sort().join(", ");
}

export function describeService(s: ServiceInfo): string {
  return `${s.name} (${s.port}/${s.protocol})`;
}

/** `ember resolve NAME [--port N] [--udp] --json`: the machine-readable answer. */
export interface ResolutionReport {
  query: string;
  ok: boolean;
  /** Present when ok, and port present when one applies (a bare peer asked without a port has none). */
  peer?: string;
  tenant?: string;
  service?: string;
  port?: number;
  protocol?: AccessProtocol;
  why?: string;
  /** The peer's announced services, whenever a peer was found. */
  services?: ServiceInfo[];
  code?: DialErrorCode;
  reason?: string;
}

/**
 * For `ember resolve NAME`: human text and the JSON report. Without a port, a peer still resolves
 * (the report lists its services); with one, the answer is exactly what the proxy would dial.
 */
export function describeResolution(query: string, dir: Directory, opts: { port?: number; protocol?: AccessProtocol } = {}):
  { ok: boolean; text: string; json: ResolutionReport } {
  const protocol = opts.protocol ?? "tcp";
  const found = lookupName(query, dir);
  if (!found.ok) return failed(query, found);
  const services = found.peer.services.map((s) => ({ ...s }));
  const base = { query, ok: true, peer: found.peer.name, tenant: found.peer.tenant, services };
  const svcLine = services.length ? `\n  services of ${found.peer.name}: ${services.map(describeService).join(", ")}` : "";
  if (!found.service && (opts.port === undefined || opts.port === 0)) {
    const json: ResolutionReport = { ...base, why: found.why };
    return { ok: true, json, text: `${shown(query)} -> ${found.peer.name} (tenant ${found.peer.tenant}), any port\n  why: ${found.why}${svcLine}` };
  }
  const r = applyPort(found, opts.port, protocol);
  if (!r.ok) return failed(query, r);
  const t = r.target;
  const json: ResolutionReport = { ...base, port: t.port, protocol: t.protocol, why: r.why, ...(t.service ? { service: t.service } : {}) };
  const svc = t.service ? `, service ${t.service}` : "";
  return { ok: true, json, text: `${shown(query)} -> ${t.peer} (tenant ${t.tenant}) port ${t.port}/${t.protocol}${svc}\n  why: ${r.why}${svcLine}` };
}

function failed(query: string, f: Failure): { ok: false; text: string; json: ResolutionReport } {
  return { ok: false, json: { query, ok: false, code: f.code, reason: f.reason }, text: `${shown(query)}: cannot resolve (${f.code}): ${f.reason}` };
}

/** Input echoed in messages: bounded and printable. */
export function shown(s: unknown): string {
  const t = String(s);
  return (t.length > 64 ? `${t.slice(0, 64)}…` : t).replace(/[^\x20-\x7e…]/g, "?");
}
