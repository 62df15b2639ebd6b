// The identity a verified certificate stands for: the only source of names, tenants and roles in the mesh.
export interface Identity {
  /** Identity name, e.g. "db-1"; equals the CN and the last SPIFFE path segment. */
  name: string;
  tenant: string;
  groups: string[];
  roles: string[];
  trustDomain: string;
  /** spiffe://<trust-domain>/<tenant>/<name> */
  spiffeId: string;
  serial: string;
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
  /** Raw 32-byte Ed25519 public key of the certificate. */
  publicKey: Uint8Array;
}

export function spiffeId(trustDomain: string, tenant: string, name: string): string {
  return `spiffe://${trustDomain}/${tenant}/${name}`;
}

/** Parses spiffe://td/tenant/name; returns undefined for any other shape. */
export function parseSpiffeId(uri: string): { trustDomain: string; tenant: string; name: string } | undefined {
  const m = /^spiffe:\/\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(uri);
  return m ? { trustDomain: m[1], tenant: m[2], name: m[3] } : undefined;
}

/** The trust-domain ID a CA carries as its URI SAN: spiffe://<trust-domain>. */
export function parseTrustDomainId(uri: string): string | undefined {
  const m = /^spiffe:\/\/([^/]+)$/.exec(uri);
  return m ? m[1] : undefined;
}

export function isAdmin(id: Identity): boolean {
  return id.roles.includes("admin");
}
