// Client certificates at the public edge, for publications with client auth "cert": the outside client's leaf
// must be issued and signed by the CA given at publication, and valid now. A direct check with node:crypto
// (no intermediates: the publication's CA issues the client certificates itself; docs/external-access.md).
import { X509Certificate } from "node:crypto";

export type ClientCertResult = { ok: true; subject: string } | { ok: false; reason: string };

export function checkClientCert(leaf: X509Certificate | undefined, caPem: string, now = Date.now()): ClientCertResult {
  if (!leaf) return { ok: false, reason: "no client certificate" };
  let ca: X509Certificate;
  try { ca = new X509Certificate(caPem); } catch { return { ok: false, reason: "the publication's client CA does not parse" }; }
  if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) return { ok: false, reason: "client certificate not issued by the publication's client CA" };
  if (now < Date.parse(leaf.validFrom) || now > Date.parse(leaf.validTo)) return { ok: false, reason: "client certificate outside its validity period" };
  if (leaf.ca) return { ok: false, reason: "a CA certificate is not a client certificate" };
  return { ok: true, subject: leaf.subject.replace(/\n/g, ", ").slice(0, 200) };
}
