// The one certificate verifier of EmberNet: coordination server, relay, node handshakes and the CLI all
// decide trust here. It answers {ok:true, identity} or {ok:false, reason, detail}; it never throws on input.
import { createHash, verify } from "node:crypto";
import { DEFAULT_SKEW_MS, MAX_CHAIN_LENGTH, NAME_PATTERN, OID_EKU_CLIENT_AUTH, OID_EKU_SERVER_AUTH } from "./constants.js";
import { KeyUsage, parseCertificate, type ParsedCertificate } from "./certificate.js";
import { parseSpiffeId, parseTrustDomainId, type Identity } from "./identity.js";
import { parseUserSpiffeId, type UserIdentity } from "./user-cert.js";
import { pemBlocks, PkiInputError, readBoundedFile } from "./pem.js";
import { parseRevocationList, RevocationState, type ListIssuers } from "./revocation.js";
import { rawPublicKey } from "./keys.js";
import { sameBytes } from "./der.js";

export type RejectReason =
  | "malformed" | "unknown_ca" | "bad_signature" | "not_a_ca" | "path_length" | "expired" | "not_yet_valid"
  | "wrong_usage" | "wrong_trust_domain" | "wrong_tenant" | "revoked";

export type VerifyResult =
  | { ok: true; identity: Identity; chain: ParsedCertificate[] }
  | { ok: false; reason: RejectReason; detail: string };

export type UserVerifyResult = { ok: true; user: UserIdentity } | { ok: false; reason: RejectReason; detail: string };

export interface VerifyOptions {
  /** Verification time in ms since the epoch (default: now). */
  now?: number;
  /** Reject unless the identity belongs to this tenant. */
  expectTenant?: string;
  /** Which EKU the use needs; default both, as every mesh identity is client and server. */
  usage?: "client" | "server" | "both";
}

export interface VerifierConfig {
  bundlePem: string;
  skewMs?: number;
  revocation?: RevocationState;
}

const PARSE_CACHE_MAX = 4096;
const ED25519_SPKI_HEADER = Buffer.from("302a300506032b6570032100", "hex");

type Rejection = { ok: false; reason: RejectReason; detail: string };

function fail(reason: RejectReason, detail: string): Rejection {
  return { ok: false, reason, detail };
}

function fmtSkew(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

export class Verifier {
  readonly trustDomain: string;
  readonly skewMs: number;
  readonly revocation: RevocationState;
  private readonly roots = new Map<string, ParsedCertificate>();
  private readonly bundleCas: ParsedCertificate[] = [];
  private readonly listIssuers: ListIssuers = new Map();
  private readonly parsed = new Map<string, ParsedCertificate>();
  private readonly signatureOk = new Map<string, boolean>();

  constructor(cfg: VerifierConfig) {
    this.skewMs = cfg.skewMs ?? DEFAULT_SKEW_MS;
    this.revocation = cfg.revocation ?? new RevocationState();
    const ders = pemBlocks(cfg.bundlePem, "CERTIFICATE", "trust bundle");
    let trustDomain: string | undefined;
    for (const der of ders) {
      const cert = parseCertificate(der);
      if (!cert.isCa) throw new PkiInputError(`trust bundle: "${cert.subject}" is not a CA certificate`);
      this.bundleCas.push(cert);
      this.listIssuers.set(cert.fingerprint, cert.publicKey);
      if (cert.selfIssued) {
        if (!this.signedBy(cert, cert)) throw new PkiInputError(`trust bundle: root "${cert.subject}" has a bad self-signature`);
        this.roots.set(cert.fingerprint, cert);
        const td = cert.uris.map(parseTrustDomainId).find((x) => x !== undefined);
        if (td) trustDomain ??= td;
      }
    }
    if (this.roots.size === 0) throw new PkiInputError("trust bundle: no self-signed root CA in it");
    if (!trustDomain) throw new PkiInputError("trust bundle: the root names no trust domain (URI SAN spiffe://<domain>)");
    this.trustDomain = trustDomain;
  }

  /** SHA-256 of each trusted root certificate's DER, raw: the silent port's mac1 keys derive from them (docs/crypto.md). */
  rootFingerprints(): Uint8Array[] {
    return [...this.roots.keys()].map((hex) => Buffer.from(hex, "hex"));
  }

  static fromBundleFile(path: string, opts: Omit<VerifierConfig, "bundlePem"> = {}): Verifier {
    return new Verifier({ ...opts, bundlePem: readBoundedFile(path, "trust bundle") });
  }

  /** Accepts a newer signed revocation list (text of the file); refuses older or forged ones. */
  applyRevocationList(text: string): { ok: true } | { ok: false; reason: string; detail: string } {
    let list;
    try {
      list = parseRevocationList(text, this.listIssuers, this.trustDomain);
    } catch (err) {
      return { ok: false, reason: "malformed", detail: (err as Error).message };
    }
    return this.revocation.accept(list);
  }

  /** Verifies a PEM text holding the leaf first and optionally its intermediate(s). */
  verifyPem(pem: string, opts?: VerifyOptions): VerifyResult {
    let ders: Uint8Array[];
    try {
      ders = pemBlocks(pem, "CERTIFICATE", "certificate");
    } catch (err) {
      return fail("malformed", (err as Error).message);
    }
    return this.verifyChain(ders, opts);
  }

  /** Verifies DER certificates: [leaf, ...intermediates the peer presented]. */
  verifyChain(ders: readonly Uint8Array[], opts: VerifyOptions = {}): VerifyResult {
    const path = this.checkPath(ders, opts.now ?? Date.now());
    if (!path.ok) return path;
    const { leaf, chain } = path;
    if (leaf.keyUsage === undefined || !(leaf.keyUsage & KeyUsage.digitalSignature)) return fail("wrong_usage", "leaf lacks keyUsage digitalSignature");
    const usage = opts.usage ?? "both";
    const eku = leaf.extKeyUsage ?? [];
    if ((usage !== "client" && !eku.includes(OID_EKU_SERVER_AUTH)) || (usage !== "server" && !eku.includes(OID_EKU_CLIENT_AUTH))) {
      return fail("wrong_usage", `leaf extended key usage lacks ${usage === "both" ? "serverAuth+clientAuth" : usage + "Auth"}`);
    }

    if (leaf.grants === undefined) return fail("malformed", "leaf has no grants extension");
    if (leaf.grants instanceof Error) return fail("malformed", `grants extension: ${leaf.grants.message}`);
    if (leaf.grants.device !== undefined) return fail("wrong_usage", "a user certificate cannot be used as a machine identity");
    if (leaf.uris.length !== 1) return fail("malformed", `leaf must carry exactly one URI SAN, has ${leaf.uris.length}`);
    const sid = parseSpiffeId(leaf.uris[0]);
    if (!sid) return fail("malformed", `URI SAN "${leaf.uris[0]}" is not spiffe://<domain>/<tenant>/<name>`);
    if (sid.trustDomain !== this.trustDomain) return fail("wrong_trust_domain", `identity is in "${sid.trustDomain}", this mesh is "${this.trustDomain}"`);
    if (!NAME_PATTERN.test(sid.name) || sid.name !== leaf.commonName) return fail("malformed", `CN "${leaf.commonName}" does not match the URI SAN name "${sid.name}"`);
    if (sid.tenant !== leaf.grants.tenant) return fail("malformed", `URI SAN tenant "${sid.tenant}" differs from the granted tenant "${leaf.grants.tenant}"`);
    if (opts.expectTenant !== undefined && leaf.grants.tenant !== opts.expectTenant) {
      return fail("wrong_tenant", `identity belongs to tenant "${leaf.grants.tenant}", expected "${opts.expectTenant}"`);
    }

    return {
      ok: true,
      chain,
      identity: {
        name: sid.name, tenant: leaf.grants.tenant, groups: leaf.grants.groups, roles: leaf.grants.roles,
        trustDomain: sid.trustDomain, spiffeId: leaf.uris[0], serial: leaf.serial, fingerprint: leaf.fingerprint,
        notBefore: leaf.notBefore, notAfter: leaf.notAfter, publicKey: this.leafRawKey(leaf),
      },
    };
  }

  /**
   * A user certificate (src/pki/user-cert.ts) bound to `device`, the verified machine identity presenting it:
   * the same chain, validity and revocation checks as a machine's, then the user profile (clientAuth only, a
   * spiffe://TD/TENANT/user/NAME URI, a device grant naming the device) and the binding itself: the device's
   * tenant and its very public key, so a copied user certificate is worthless on any other node.
   */
  verifyUser(ders: readonly Uint8Array[], device: Pick<Identity, "name" | "tenant"> & { publicKey: Uint8Array | "own-map" }, now = Date.now()): UserVerifyResult {
    const path = this.checkPath(ders, now);
    if (!path.ok) return path;
    const { leaf } = path;
    const eku = leaf.extKeyUsage ?? [];
    if (leaf.keyUsage === undefined || !(leaf.keyUsage & KeyUsage.digitalSignature) || !eku.includes(OID_EKU_CLIENT_AUTH) || eku.includes(OID_EKU_SERVER_AUTH)) {
      return fail("wrong_usage", "a user certificate has keyUsage digitalSignature and clientAuth only");
    }
    if (leaf.grants === undefined || leaf.grants instanceof Error) return fail("malformed", `user certificate grants: ${leaf.grants instanceof Error ? leaf.grants.message : "missing"}`);
    const uid = leaf.uris.length === 1 ? parseUserSpiffeId(leaf.uris[0]) : undefined;
    if (!uid) return fail("malformed", "a user certificate carries one URI SAN spiffe://<domain>/<tenant>/user/<name>");
    if (uid.trustDomain !== this.trustDomain) return fail("wrong_trust_domain", `user is in "${uid.trustDomain}", this mesh is "${this.trustDomain}"`);
    if (leaf.commonName !== `user:${uid.name}`) return fail("malformed", `CN "${leaf.commonName}" does not name user ${uid.name}`);
    if (uid.tenant !== leaf.grants.tenant) return fail("malformed", `URI SAN tenant "${uid.tenant}" differs from the granted tenant "${leaf.grants.tenant}"`);
    if (leaf.grants.device !== device.name) return fail("wrong_usage", `bound to device "${leaf.grants.device ?? "(none)"}", presented by "${device.name}"`);
    if (uid.tenant !== device.tenant) return fail("wrong_tenant", `user of tenant "${uid.tenant}" on a device of tenant "${device.tenant}"`);
    // "own-map": a node reading its own login from its own coordination server's map needs no key binding.
    if (device.publicKey !== "own-map" && !sameBytes(this.leafRawKey(leaf), device.publicKey)) return fail("wrong_usage", `not bound to ${device.name}'s key`);
    return {
      ok: true,
      user: { name: uid.name, tenant: uid.tenant, groups: leaf.grants.groups, device: device.name, serial: leaf.serial, notAfter: leaf.notAfter },
    };
  }

  /** Parsing, the path to a trusted root (signatures, CA flags, path lengths), validity and revocation. */
  private checkPath(ders: readonly Uint8Array[], now: number): { ok: true; leaf: ParsedCertificate; chain: ParsedCertificate[] } | Rejection {
    if (ders.length === 0) return fail("malformed", "no certificate presented");
    if (ders.length > MAX_CHAIN_LENGTH) return fail("malformed", `chain of ${ders.length} certificates is longer than ${MAX_CHAIN_LENGTH}`);
    let presented: ParsedCertificate[];
    try {
      presented = ders.map((d) => this.parse(d));
    } catch (err) {
      return fail("malformed", (err as Error).message);
    }
    const leaf = presented[0];
    if (leaf.unknownCritical.length) return fail("malformed", `unknown critical extension(s) ${leaf.unknownCritical.join(", ")}`);
    if (leaf.isCa) return fail("wrong_usage", "a CA certificate cannot be used as a node identity");

    // Build the path leaf -> ... -> trusted root.
    const candidates = [...this.bundleCas, ...presented.slice(1)];
    const chain: ParsedCertificate[] = [leaf];
    let current = leaf;
    while (!this.roots.has(current.fingerprint)) {
      const byName = candidates.filter((c) => c.subject === current.issuer && c !== current);
      const byKey = byName.filter((c) => !current.authorityKeyId || !c.subjectKeyId || c.subjectKeyId === current.authorityKeyId);
      if (byKey.length === 0) {
        return fail("unknown_ca", byName.length
          ? `issuer "${current.issuer}" has the right name but a different key: another CA, not this trust bundle's`
          : `issuer "${current.issuer}" is not in the trust bundle`);
      }
      const parent = byKey.find((c) => this.signedBy(current, c));
      if (!parent) return fail("bad_signature", `signature of "${current.subject}" does not verify with the key of "${current.issuer}" (altered after signing?)`);
      if (!parent.isCa || parent.keyUsage === undefined || !(parent.keyUsage & KeyUsage.keyCertSign)) {
        return fail("not_a_ca", `"${parent.subject}" signed "${current.subject}" but is not a CA (basicConstraints/keyCertSign)`);
      }
      const casBelow = chain.length - 1; // CA certificates between parent and the leaf
      if (parent.pathLength !== undefined && casBelow > parent.pathLength) {
        return fail("path_length", `"${parent.subject}" allows ${parent.pathLength} CA(s) below it, the chain has ${casBelow}`);
      }
      chain.push(parent);
      if (chain.length > MAX_CHAIN_LENGTH) return fail("path_length", `chain longer than ${MAX_CHAIN_LENGTH}`);
      current = parent;
    }

    for (const cert of chain) {
      if (now > cert.notAfter.getTime() + this.skewMs) {
        return fail("expired", `"${cert.subject}" expired at ${cert.notAfter.toISOString()} (${fmtSkew(now - cert.notAfter.getTime())} ago)`);
      }
      if (now < cert.notBefore.getTime() - this.skewMs) {
        return fail("not_yet_valid", `"${cert.subject}" is valid only from ${cert.notBefore.toISOString()}, ${fmtSkew(cert.notBefore.getTime() - now)} ahead of this host's clock (skew allowance ${fmtSkew(this.skewMs)}): check NTP on this host and on the issuer`);
      }
    }

    for (const cert of chain) {
      if (!cert.selfIssued && this.revocation.isRevoked(cert.serial)) {
        return fail("revoked", `serial ${cert.serial} ("${cert.subject}") is on revocation list #${this.revocation.number}`);
      }
    }
    return { ok: true, leaf, chain };
  }

  private rawKeys = new Map<string, Uint8Array>();
  private leafRawKey(leaf: ParsedCertificate): Uint8Array {
    let k = this.rawKeys.get(leaf.fingerprint);
    if (!k) {
      // An Ed25519 SPKI is a fixed 12-byte header and the raw key: no KeyObject round trip needed.
      // A copy (callers get it), from Node's Buffer pool: a 32-byte ArrayBuffer of its own cost ~300 bytes per entry.
      k = leaf.spki.length === 44 && sameBytes(leaf.spki.subarray(0, 12), ED25519_SPKI_HEADER) ? Buffer.from(leaf.spki.subarray(12)) : rawPublicKey(leaf.publicKey);
      this.rawKeys.set(leaf.fingerprint, k);
      if (this.rawKeys.size > PARSE_CACHE_MAX) this.rawKeys.delete(this.rawKeys.keys().next().value!);
    }
    return k;
  }

  /** Parsing is the costly part of verification; the facts of a DER never change, so cache them by hash. */
  private parse(der: Uint8Array): ParsedCertificate {
    const fp = createHash("sha256").update(der).digest("hex");
    let cert = this.parsed.get(fp);
    if (!cert) {
      cert = parseCertificate(der);
      this.parsed.set(cert.fingerprint, cert); // the certificate's own string (the same hex): one copy per entry
      if (this.parsed.size > PARSE_CACHE_MAX) this.parsed.delete(this.parsed.keys().next().value!);
    }
    return cert;
  }

  private signedBy(child: ParsedCertificate, parent: ParsedCertificate): boolean {
    const key = `${child.fingerprint}:${parent.fingerprint}`;
    let ok = this.signatureOk.get(key);
    if (ok === undefined) {
      // Ed25519 (every EmberNet certificate): one node:crypto call on the signed bytes; anything else through OpenSSL's X509_verify.
      try {
        ok = child.ed25519 && parent.publicKey.asymmetricKeyType === "ed25519"
          ? verify(null, child.ed25519.tbs, parent.publicKey, child.ed25519.signature)
          : child.native.verify(parent.native.publicKey);
      } catch { ok = false; }
      this.signatureOk.set(key, ok);
      if (this.signatureOk.size > PARSE_CACHE_MAX) this.signatureOk.delete(this.signatureOk.keys().next().value!);
    }
    return ok;
  }
}
