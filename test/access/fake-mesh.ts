// A fake mesh for the access tests: a Directory of a few peers in three tenants, and (added below)
// a Dialer that carries flows to real local servers or refuses them with a DialError.
import type { Directory, DirectoryPeer } from "../../src/access/types.js";

export function directory(selfName: string, selfTenant: string, peers: DirectoryPeer[]): Directory {
  return {
    selfName, selfTenant,
    peers: () => peers,
    peer: (name) => peers.find((p) => p.name === name),
  };
}

/** laptop-1 in tenant acme sees these peers. */
export const PEERS: DirectoryPeer[] = [
  { name: "node-a", tenant: "acme", services: [
    { name: "web", port: 8080, protocol: "tcp" }, { name: "echo", port: 7, protocol: "udp" }, { name: "api", port: 443, protocol: "https" },
  ] },
  { name: "node-a", tenant: "globex", services: [{ name: "web", port: 9090, protocol: "tcp" }] },
  { name: "db-1", tenant: "acme", services: [{ name: "postgres", port: 5432, protocol: "tcp" }] },
  { name: "vault", tenant: "acme", services: [{ name: "kv", port: 8200, protocol: "tcp" }] },
  { name: "lonely", tenant: "acme", services: [] },
  { name: "only-g", tenant: "globex", services: [{ name: "ssh", port: 22, protocol: "tcp" }] },
  { name: "shared-1", tenant: "globex", services: [] },
  { name: "shared-1", tenant: "initech", services: [] },
  // "web.node-a" also reads as peer web in tenant node-a: the NAME.TENANT reading wins.
  { name: "web", tenant: "node-b", services: [] },
  { name: "node-b", tenant: "acme", services: [{ name: "web", port: 80, protocol: "tcp" }] },
];

export const DIR = directory("laptop-1", "acme", PEERS);
