// Parsing of one certificate into the facts the verifier and the CLI need. Parsing is not trust:
// nothing here says a certificate is valid, only what it claims.
import { createHash, X509Certificate as NodeX509 } from "node:crypto";
import { x509 } from "./x509-provider.js";
import {
  OID_BASIC_CONSTRAINTS, OID_EKU_CLIENT_AUTH, OID_EKU_SERVER_AUTH, OID_EMBER_GRANTS, OID_EXT_KEY_USAGE,
  OID_KEY_USAGE, OID_SUBJECT_ALT_NAME, OID_SUBJECT_KEY_ID, OID_AUTHORITY_KEY_ID, UNDERSTOOD_CRITICAL,
} from "./constants.js";
import { decodeGrants, type Grants } from "./grants.js";
import { ab, PkiInputError } from "./pem.js";

export interface ParsedCertificate {
  der: Uint8Array;
  /** Hex SHA-256 of the DER: the certificate's fingerprint and cache key. */
  fingerprint: string;
  native: NodeX509;
  subject: string;
  issuer: string;
  commonName: string | undefined;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  pathLength: number | undefined;
  /** KeyUsageFlags bitmask, undefined when the extension is absent. */
  keyUsage: number | undefined;
  extKeyUsage: string[] | undefined;
  uris: string[];
  /** Decoded grants, or the decoding error; undefined when the extension is absent. */
  grants: Grants | Error | undefined;
  unknownCritical: string[];
  selfIssued: boolean;
  /** Hex key identifiers (SKI of this key, AKI naming the issuer's key) when present. */
  subjectKeyId: string | undefined;
  authorityKeyId: string | undefined;
}

export const KeyUsage = x509.KeyUsageFlags;
export const EKU_SERVER_AUTH = OID_EKU_SERVER_AUTH;
export const EKU_CLIENT_AUTH = OID_EKU_CLIENT_AUTH;

export function parseCertificate(der: Uint8Array): ParsedCertificate {
  let cert: InstanceType<typeof x509.X509Certificate>;
  let native: NodeX509;
  try {
    native = new NodeX509(der);
    cert = new x509.X509Certificate(ab(der));
  } catch (err) {
    throw new PkiInputError(`not a DER X.509 certificate (${(err as Error).message})`);
  }
  let isCa = false, pathLength: number | undefined, keyUsage: number | undefined, extKeyUsage: string[] | undefined;
  let grants: Grants | Error | undefined;
  let subjectKeyId: string | undefined, authorityKeyId: string | undefined;
  const uris: string[] = [];
  const unknownCritical: string[] = [];
  for (const ext of cert.extensions) {
    try {
      switch (ext.type) {
        case OID_BASIC_CONSTRAINTS: {
          const bc = new x509.BasicConstraintsExtension(ext.rawData);
          isCa = bc.ca; pathLength = bc.pathLength; break;
        }
        case OID_KEY_USAGE: keyUsage = new x509.KeyUsagesExtension(ext.rawData).usages; break;
        case OID_EXT_KEY_USAGE: extKeyUsage = new x509.ExtendedKeyUsageExtension(ext.rawData).usages.map(String); break;
        case OID_SUBJECT_ALT_NAME:
          for (const n of new x509.SubjectAlternativeNameExtension(ext.rawData).names.items) {
            if (n.type === "url") uris.push(n.value);
          }
          break;
        case OID_SUBJECT_KEY_ID: subjectKeyId = new x509.SubjectKeyIdentifierExtension(ext.rawData).keyId.toLowerCase(); break;
        case OID_AUTHORITY_KEY_ID: authorityKeyId = new x509.AuthorityKeyIdentifierExtension(ext.rawData).keyId?.toLowerCase(); break;
        case OID_EMBER_GRANTS:
          try { grants = decodeGrants(new Uint8Array(ext.value)); } catch (err) { grants = err as Error; }
          break;
        default:
          if (ext.critical && !UNDERSTOOD_CRITICAL.has(ext.type)) unknownCritical.push(ext.type);
      }
    } catch (err) {
      throw new PkiInputError(`extension ${ext.type} is malformed (${(err as Error).message})`);
    }
  }
  const cn = cert.subjectName.getField("CN");
  return {
    der,
    fingerprint: createHash("sha256").update(der).digest("hex"),
    native,
    subject: cert.subject,
    issuer: cert.issuer,
    commonName: cn[0],
    serial: cert.serialNumber.toLowerCase(),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    isCa, pathLength, keyUsage, extKeyUsage, uris, grants, unknownCritical,
    selfIssued: cert.subject === cert.issuer,
    subjectKeyId, authorityKeyId,
  };
}
