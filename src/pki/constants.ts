// Certificate profile constants: every OID, lifetime and limit of EmberNet's PKI in one place.

/** Private arc for EmberNet extensions (documented in docs/pki.md; replace with an assigned PEN before 1.0). */
export const OID_EMBER_ARC = "1.3.6.1.4.1.59999.1";
/** The grants extension: SEQUENCE OF UTF8String, each "kind:value" (tenant, group, role). */
export const OID_EMBER_GRANTS = `${OID_EMBER_ARC}.1`;

export const OID_BASIC_CONSTRAINTS = "2.5.29.19";
export const OID_KEY_USAGE = "2.5.29.15";
export const OID_EXT_KEY_USAGE = "2.5.29.37";
export const OID_SUBJECT_ALT_NAME = "2.5.29.17";
export const OID_SUBJECT_KEY_ID = "2.5.29.14";
export const OID_AUTHORITY_KEY_ID = "2.5.29.35";
export const OID_EKU_SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
export const OID_EKU_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

/** Extensions this verifier understands; any other critical extension makes a certificate malformed. */
export const UNDERSTOOD_CRITICAL = new Set([OID_BASIC_CONSTRAINTS, OID_KEY_USAGE, OID_EXT_KEY_USAGE, OID_SUBJECT_ALT_NAME]);

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export const ROOT_TTL_MS = 10 * 365 * DAY;
export const INTERMEDIATE_TTL_MS = 365 * DAY;
/** Leaves live hours, not years: rotation is automatic, so a stolen key expires quickly. */
export const LEAF_DEFAULT_TTL_MS = 8 * HOUR;
export const LEAF_MAX_TTL_MS = 7 * DAY;
/** Rotation tests use a few seconds; nothing shorter makes sense with clock skew allowance. */
export const LEAF_MIN_TTL_MS = 1_000;
/** Leaves are back-dated by this much so a peer whose clock is slightly behind accepts them. */
export const LEAF_BACKDATE_MS = 1 * MINUTE;
/** Default clock-skew allowance of the verifier on both ends of the validity window. */
export const DEFAULT_SKEW_MS = 30_000;

/** Root may sign one CA below it (the cluster intermediate); the intermediate signs only leaves. */
export const ROOT_PATH_LEN = 1;
export const INTERMEDIATE_PATH_LEN = 0;
/** Certificates from leaf to root: a leaf, up to two intermediates (e.g. a regional CA below the cluster CA), the root. */
export const MAX_CHAIN_LENGTH = 4;

/** Hard cap on any PEM/DER input we parse: certificates and CRLs are small; a 10 MB file is an attack or a mistake. */
export const MAX_PEM_BYTES = 1 << 20;
export const MAX_GRANTS = 64;
export const MAX_GRANT_BYTES = 256;

/** Names: the protocol's one pattern (DNS labels), so they work as identity names, SPIFFE path segments and host names alike. */
export { NAME_PATTERN } from "../wire/coord/names.js";
export const TRUST_DOMAIN_PATTERN = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

export const FILE_MODE_PRIVATE = 0o600;
