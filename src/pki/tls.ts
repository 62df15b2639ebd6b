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

/** Runs the verifier on the certificate chain the peer presented on this TLS socket. */
export function verifyTlsPeer(socket: TLSSocket, verifier: Verifier, opts?: VerifyOptions): VerifyResult {
  const peer = socket.getPeerCertificate(true);
  if (!peer || !peer.raw) return { ok: false, reason: "malformed", detail: "no client certificate presented" };
  const ders: Uint8Array[] = [];
  const seen = new Set<string>();
  for (let c = peer; c && c.raw && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    ders.push(new Uint8Array(c.raw));
    if (ders.length > 3) break;
  }
  return verifier.verifyChain(ders, opts);
}
