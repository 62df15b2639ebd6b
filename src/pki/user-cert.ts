// User certificates: a person, logged in on one device. The coordination server issues one when a login
// succeeds (src/coord/user-login.ts): the user's name and groups as grants, the device's identity name as the
// `device` grant, and the device's own Ed25519 public key, so the certificate is bound to that node's key and
// means nothing anywhere else. clientAuth only and a four-segment SPIFFE ID (spiffe://TD/TENANT/user/NAME):
// the machine verifier refuses it, and a user verifier refuses a machine's certificate (docs/users.md).
import type { KeyObject } from "node:crypto";
import { buildCertificateDer, randomSerial } from "./build.js";
import type { CaMaterial } from "./ca.js";
import { KeyUsage } from "./certificate.js";
import { LEAF_BACKDATE_MS, NAME_PATTERN, OID_EKU_CLIENT_AUTH } from "./constants.js";
import { validateGrantValue } from "./grants.js";

const MINUTE = 60_000;
/** A login lasts hours, not days: when it ends the person logs in again (docs/users.md). */
export const USER_CERT_DEFAULT_TTL_MS = 8 * 60 * MINUTE;
export const USER_CERT_MAX_TTL_MS = 24 * 60 * MINUTE;
export const USER_CERT_MIN_TTL_MS = 1_000;

/** What a verified user certificate says: who, in which tenant and groups, on which device, until when. */
export interface UserIdentity {
  name: string;
  tenant: string;
  groups: string[];
  device: string;
  serial: string;
  notAfter: Date;
}

export function userSpiffeId(trustDomain: string, tenant: string, name: string): string {
  return `spiffe://${trustDomain}/${tenant}/user/${name}`;
}

/** Parses spiffe://td/tenant/user/name; undefined for any other shape (a machine's ID included). */
export function parseUserSpiffeId(uri: string): { trustDomain: string; tenant: string; name: string } | undefined {
  const m = /^spiffe:\/\/([^/]+)\/([^/]+)\/user\/([^/]+)$/.exec(uri);
  return m && NAME_PATTERN.test(m[3]) ? { trustDomain: m[1], tenant: m[2], name: m[3] } : undefined;
}

export interface UserCertRequest {
  user: string;
  tenant: string;
  groups: string[];
  /** The device's identity name and its certificate's public key (the binding). */
  device: string;
  devicePublicKey: KeyObject;
  ttlMs?: number;
  now?: number;
}

export function issueUserCert(ca: CaMaterial, req: UserCertRequest): { der: Uint8Array; serial: string; notAfter: Date } {
  validateGrantValue("user", req.user);
  validateGrantValue("tenant", req.tenant);
  validateGrantValue("device", req.device);
  const ttl = req.ttlMs ?? USER_CERT_DEFAULT_TTL_MS;
  if (!(ttl >= USER_CERT_MIN_TTL_MS && ttl <= USER_CERT_MAX_TTL_MS)) {
    throw new Error(`user certificate TTL ${ttl} ms is outside ${USER_CERT_MIN_TTL_MS} ms - ${USER_CERT_MAX_TTL_MS / 3_600_000}h`);
  }
  const now = req.now ?? Date.now();
  const serial = randomSerial();
  const notAfter = new Date(Math.floor((now + ttl) / 1000) * 1000);
  const der = buildCertificateDer({
    serial,
    commonName: `user:${req.user}`,
    publicKey: req.devicePublicKey,
    issuerDer: ca.intermediateDer,
    signer: ca.intermediateKeys,
    notBefore: new Date(now - LEAF_BACKDATE_MS),
    notAfter,
    isCa: false,
    keyUsage: KeyUsage.digitalSignature,
    extKeyUsage: [OID_EKU_CLIENT_AUTH],
    uris: [userSpiffeId(ca.trustDomain, req.tenant, req.user)],
    grants: { tenant: req.tenant, groups: [...new Set(req.groups)], roles: [], device: req.device },
  });
  return { der, serial, notAfter };
}
