// Leaf issuance: the certificate profile of a mesh identity. Grants come only from the issuer's
// decision (token, admin command), never from anything the requester wrote into a CSR.
import type { KeyObject } from "node:crypto";
import {
  LEAF_BACKDATE_MS, LEAF_DEFAULT_TTL_MS, LEAF_MAX_TTL_MS, LEAF_MIN_TTL_MS, NAME_PATTERN,
  OID_EKU_CLIENT_AUTH, OID_EKU_SERVER_AUTH,
} from "./constants.js";
import { buildCertificateDer, randomSerial } from "./build.js";
import { KeyUsage } from "./certificate.js";
import type { CaMaterial } from "./ca.js";
import { spiffeId } from "./identity.js";
import { validateGrantValue } from "./grants.js";

export interface LeafRequest {
  name: string;
  tenant: string;
  groups?: string[];
  roles?: string[];
  ttlMs?: number;
  publicKey: KeyObject;
  now?: Date;
}

export function checkTtl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs < LEAF_MIN_TTL_MS) throw new Error(`TTL ${ttlMs} ms is below the minimum of ${LEAF_MIN_TTL_MS} ms`);
  if (ttlMs > LEAF_MAX_TTL_MS) throw new Error(`TTL ${Math.round(ttlMs / 3_600_000)}h exceeds the maximum of ${LEAF_MAX_TTL_MS / 3_600_000}h`);
  return ttlMs;
}

export async function issueLeaf(ca: CaMaterial, req: LeafRequest): Promise<Uint8Array> {
  return issueLeafRecord(ca, req).der;
}

/** What the issuer knows of the leaf it just made, without parsing it back: serial (lowercase hex), notAfter (whole seconds, as encoded). */
export interface IssuedLeaf { der: Uint8Array; serial: string; notAfter: Date }

/** issueLeaf, synchronous, with the leaf's serial and expiry (the coordination server records both). */
export function issueLeafRecord(ca: CaMaterial, req: LeafRequest): IssuedLeaf {
  if (!NAME_PATTERN.test(req.name)) throw new Error(`invalid name "${req.name}": use lowercase letters, digits and '-', 1-63 characters`);
  validateGrantValue("tenant", req.tenant);
  if (req.publicKey.asymmetricKeyType !== "ed25519") throw new Error(`leaf key must be Ed25519, got ${req.publicKey.asymmetricKeyType}`);
  const ttl = checkTtl(req.ttlMs ?? LEAF_DEFAULT_TTL_MS);
  const now = (req.now ?? new Date()).getTime();
  const serial = randomSerial();
  const notAfter = new Date(Math.floor((now + ttl) / 1000) * 1000);
  const der = buildCertificateDer({
    serial,
    commonName: req.name,
    publicKey: req.publicKey,
    issuerDer: ca.intermediateDer,
    signer: ca.intermediateKeys,
    notBefore: new Date(now - LEAF_BACKDATE_MS),
    notAfter,
    isCa: false,
    keyUsage: KeyUsage.digitalSignature,
    extKeyUsage: [OID_EKU_SERVER_AUTH, OID_EKU_CLIENT_AUTH],
    uris: [spiffeId(ca.trustDomain, req.tenant, req.name)],
    grants: { tenant: req.tenant, groups: [...new Set(req.groups ?? [])], roles: [...new Set(req.roles ?? [])] },
  });
  return { der, serial, notAfter };
}

/** Parses durations like 90s, 30m, 8h, 2d (or plain milliseconds). */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new Error(`invalid duration "${text}": use e.g. 90s, 30m, 8h or 2d`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? "ms"]!;
  return Math.round(Number(m[1]) * unit);
}
