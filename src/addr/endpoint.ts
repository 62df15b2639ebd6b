import { isIP } from "node:net";

// Where a datagram came from or goes to: a direct UDP address, or a relay that forwards it by identity.
// Sessions are bound to identities, never to endpoints; an endpoint is only the current path.
export type Endpoint =
  | { kind: "udp"; host: string; port: number }
  /** Via a relay server, which forwards by the peer's identity name. */
  | { kind: "relay"; relay: string; peer: string };

export function endpointKey(ep: Endpoint): string {
  return ep.kind === "udp" ? `${ep.host}:${ep.port}` : `relay:${ep.relay}/${ep.peer}`;
}

export function sameEndpoint(a: Endpoint | undefined, b: Endpoint | undefined): boolean {
  if (!a || !b || a.kind !== b.kind) return false;
  return a.kind === "udp" ? a.host === (b as typeof a).host && a.port === (b as typeof a).port : a.relay === (b as typeof a).relay && a.peer === (b as typeof a).peer;
}

export function describeEndpoint(ep: Endpoint | undefined): string {
  return ep ? (ep.kind === "udp" ? `${ep.host.includes(":") ? `[${ep.host}]` : ep.host}:${ep.port}` : `relay ${ep.relay}`) : "-";
}

/** The family of a literal address ("::ffff:a.b.c.d" counts as IPv4); 4 for anything else (names resolve as IPv4). */
export function familyOf(host: string): 4 | 6 {
  return isIP(host) === 6 && !isV4Mapped(host) ? 6 : 4;
}

export function isV4Mapped(host: string): boolean {
  return host.toLowerCase().startsWith("::ffff:") && isIP(host.slice(7)) === 4;
}

/** "a.b.c.d:port" or "[v6]:port" (as status reports and call-me-maybe carry them) to a UDP endpoint; undefined if not one. */
export function parseEndpointString(s: string): Endpoint | undefined {
  const m = /^\[?([0-9a-fA-F:.]+)\]?:(\d{1,5})$/.exec(s.trim());
  if (!m) return undefined;
  const port = Number(m[2]);
  return port > 0 && port < 65536 ? { kind: "udp", host: m[1], port } : undefined;
}
