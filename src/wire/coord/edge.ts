// External access (docs/external-access.md) on the coordination protocol: what the peer map tells an edge (its
// publications and the key its bearer tokens are signed with), and the checks both ends run on them. The routes a
// node publishes through are api.ts EDGE_PATHS; the role an edge needs is names.ts EDGE_ROLE.
import { HOSTNAME_PATTERN, NAME_PATTERN } from "./names.js";
import type { ServiceProtocol } from "./services.js";

export type ClientAuth = "none" | "cert" | "token";
export const CLIENT_AUTH: readonly ClientAuth[] = ["none", "cert", "token"];

/** A published service as an edge needs it: where SNI `hostname` goes, and how outside clients authenticate. */
export interface MapPublication {
  hostname: string;
  node: string;
  service: string;
  port: number;
  protocol: ServiceProtocol;
  clientAuth: ClientAuth;
  /** The CA (PEM) whose certificates the edge accepts, for clientAuth "cert". */
  clientCaPem?: string;
}

/** The `edge` field of a map frame, for nodes with role edge only: always the whole view (it is small). */
export interface EdgeView {
  /** The coordination server's token signing key (SPKI PEM): the edge verifies bearer tokens with it. */
  tokenKeyPem: string;
  publications: MapPublication[];
}

/** Bearer tokens for token-authenticated publications (signed by the coordination server's JwtKey). */
export const EDGE_TOKEN_TYPE = "ember-edge+jwt";
export const EDGE_TOKEN_ISSUER = "ember-coord";
export const EDGE_TOKEN_MAX_TTL_MS = 30 * 86_400_000;

export const MAX_CA_PEM_CHARS = 16 * 1024;
/** Publications one edge may be told of (one map frame stays small). */
export const MAX_PUBLICATIONS = 1024;

/** The edge's view as a map frame carries it, checked field by field; the message names the first problem. */
export function checkEdgeView(x: unknown): EdgeView {
  const o = x as Record<string, unknown>;
  if (!o || typeof o !== "object" || Array.isArray(o)) throw new Error("edge view must be a map");
  if (typeof o.tokenKeyPem !== "string" || o.tokenKeyPem.length > 4096) throw new Error("edge view tokenKeyPem must be PEM text");
  if (!Array.isArray(o.publications) || o.publications.length > MAX_PUBLICATIONS) throw new Error(`edge view publications must be a list of at most ${MAX_PUBLICATIONS}`);
  const seen = new Set<string>();
  const publications = o.publications.map((p, i) => {
    const q = checkPublication(p, `publications[${i}]`);
    if (seen.has(q.hostname)) throw new Error(`publications[${i}]: hostname ${q.hostname} appears twice`);
    seen.add(q.hostname);
    return q;
  });
  return { tokenKeyPem: o.tokenKeyPem, publications };
}

function checkPublication(x: unknown, at: string): MapPublication {
  const p = x as Record<string, unknown>;
  if (!p || typeof p !== "object") throw new Error(`${at} must be a map`);
  if (typeof p.hostname !== "string" || !HOSTNAME_PATTERN.test(p.hostname)) throw new Error(`${at}.hostname must be a lowercase DNS name`);
  if (typeof p.node !== "string" || !NAME_PATTERN.test(p.node)) throw new Error(`${at}.node must be a node name`);
  if (typeof p.service !== "string" || !NAME_PATTERN.test(p.service)) throw new Error(`${at}.service must be a service name`);
  if (!Number.isInteger(p.port) || (p.port as number) < 1 || (p.port as number) > 65535) throw new Error(`${at}.port must be 1-65535`);
  if (p.protocol !== "tcp" && p.protocol !== "https") throw new Error(`${at}.protocol must be tcp or https (an edge carries TCP only)`);
  if (typeof p.clientAuth !== "string" || !CLIENT_AUTH.includes(p.clientAuth as ClientAuth)) throw new Error(`${at}.clientAuth must be none, cert or token`);
  if (p.clientAuth === "cert" && (typeof p.clientCaPem !== "string" || p.clientCaPem.length > MAX_CA_PEM_CHARS)) throw new Error(`${at}.clientCaPem must be PEM text for clientAuth cert`);
  return {
    hostname: p.hostname, node: p.node, service: p.service, port: p.port as number, protocol: p.protocol, clientAuth: p.clientAuth as ClientAuth,
    ...(p.clientAuth === "cert" ? { clientCaPem: p.clientCaPem as string } : {}),
  };
}
