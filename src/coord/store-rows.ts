// Rows of the tables both stores share (sqlite-store.ts, pg-store.ts) -> records: one mapping, so a column
// added to one store cannot be forgotten in the other's reader. Both give numbers for time columns.
import { intToIpv4 } from "./overlay-address.js";
import type { ConsoleUser, NodeRecord, TokenRecord } from "./store.js";

export type Row = Record<string, any>;

export function nodeFromRow(r: Row): NodeRecord {
  return {
    name: r.name, tenant: r.tenant, groups: JSON.parse(r.groups), roles: JSON.parse(r.roles), enrollmentId: r.enrollment_id,
    status: r.status, enrolledAt: r.enrolled_at, tokenId: r.token_id, certTtlMs: r.cert_ttl_ms, serial: r.serial,
    certPem: r.cert_pem, notAfter: r.not_after, endpoints: JSON.parse(r.endpoints),
    homeRelay: r.home_relay ?? undefined, natType: r.nat_type ?? undefined, lastSeen: r.last_seen ?? undefined,
    ...(r.protocol != null ? { protocol: Number(r.protocol) } : {}), ...(r.software_version != null ? { version: r.software_version } : {}),
    ...(r.overlay_address != null ? { overlayIp: intToIpv4(r.overlay_address) } : {}),
    ...(r.user_name != null ? { user: { name: r.user_name, groups: JSON.parse(r.user_groups), certPem: r.user_cert_pem, notAfter: r.user_not_after } } : {}),
  };
}

export function tokenFromRow(r: Row): TokenRecord {
  return {
    id: r.id, secretHash: r.secret_hash, tenant: r.tenant, groups: JSON.parse(r.groups), roles: JSON.parse(r.roles),
    usesLeft: r.uses_left, usesTotal: r.uses_total, expiresAt: r.expires_at, certTtlMs: r.cert_ttl_ms,
    createdAt: r.created_at, createdBy: r.created_by,
  };
}

export function userFromRow(r: Row): ConsoleUser {
  return {
    username: r.username, passwordHash: r.password_hash, createdAt: r.created_at, createdBy: r.created_by,
    ...(r.tenant != null ? { tenant: r.tenant, groups: JSON.parse(r.groups ?? "[]"), disabled: !!r.disabled } : {}),
  };
}
