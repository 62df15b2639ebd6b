// mTLS on node:tls with the PKI verifier as the judge. OpenSSL only requests and carries the
// certificates (rejectUnauthorized off); verifyTlsPeer decides, so a refusal carries a reason code.
import type { TLSSocket, SecureContextOptions } from "node:tls";
import { readBoundedFile } from "./pem.js";
import type { Verifier, VerifyResult, VerifyOptions } from "./verify.js";

export interface TlsCredentials {
  /** Leaf PEM followed by the intermediate PEM. */
  certChainPem: string;
  keyPem: string;
  /** Root + intermediate PEM. */
  bundlePem: string;
}

export function loadTlsCredentials(certPath: string, keyPath: string, bundlePath: string): TlsCredentials {
  const bundlePem = readBoundedFile(bundlePath, "trust bundle");
  const leaf = readBoundedFile(certPath, "certificate");
  return { certChainPem: withIntermediates(leaf, bundlePem), keyPem: readBoundedFile(keyPath, "private key"), bundlePem };
}

/** Appends the bundle's non-root CA certificates so peers can build the chain. */
export function withIntermediates(leafPem: string, bundlePem: string): string {
  const blocks = bundlePem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
  // The bundle is written root first; everything after the root is an intermediate.
  return leafPem.trimEnd() + "\n" + blocks.slice(1).join("");
}

export function tlsContextOptions(creds: TlsCredentials): SecureContextOptions & { minVersion: "TLSv1.3"; requestCert: true; rejectUnauthorized: false } {
  return {
    cert: creds.certChainPem, key: creds.keyPem, ca: creds.bundlePem,
    minVersion: "TLSv1.3", requestCert: true, rejectUnauthorized: false,
  };
}

/**
 * The chain the peer presented, leaf first, as DER (at most 4). Read once per socket: TLS 1.3 has no
 * renegotiation, so it cannot change, while verification runs again on every request. getPeerX509Certificate
 * instead of getPeerCertificate(true), which builds a JS object of every field of every certificate.
 */
const presented = new WeakMap<TLSSocket, Uint8Array[]>();
function presentedChain(socket: TLSSocket): Uint8Array[] {
  let ders = presented.get(socket);
  if (!ders) {
    ders = [];
    const seen = new Set<string>();
    for (let c = socket.getPeerX509Certificate(); c && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
      seen.add(c.fingerprint256);
      ders.push(ders.length === 0 ? c.raw : sharedIssuerDer(c.fingerprint256, c.raw));
      if (ders.length > 3) break;
    }
    if (ders.length) presented.set(socket, ders);
  }
  return ders;
}

/**
 * The issuers' DER, one copy for every socket that presents them: each socket's X509Certificate gives its own copy,
 * and a server holding one stream per node kept one copy of the same intermediate per node. Same SHA-256, same
 * bytes; the verifier still checks them on every call. Bounded (a mesh has a handful of CAs; anything past is not kept).
 */
const issuerDers = new Map<string, Uint8Array>();
const MAX_SHARED_ISSUERS = 16;
function sharedIssuerDer(fingerprint256: string, raw: Uint8Array): Uint8Array {
  const held = issuerDers.get(fingerprint256);
  if (held) return held;
  if (issuerDers.size < MAX_SHARED_ISSUERS) issuerDers.set(fingerprint256, raw);
  return raw;
}

/** Runs the verifier on the certificate chain the peer presented on this TLS socket. */
export function verifyTlsPeer(socket: TLSSocket, verifier: Verifier, opts?: VerifyOptions): VerifyResult {
  const ders = presentedChain(socket);
  if (ders.length === 0) return { ok: false, reason: "malformed", detail: "no client certificate presented" };
  return verifier.verifyChain(ders, opts);
}
