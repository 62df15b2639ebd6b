// Enrollment (POST /v1/enroll, no certificate): a one-time token, the name the node asks for and a CSR for the
// key it made. The token is judged by the one rule (tokens.ts checkToken) before anything is signed, and again
// inside the store's transaction that consumes it, so a token is never used twice across replicas.
import { randomBytes } from "node:crypto";
import { issueLeafRecord, toPem, verifyCsr } from "../pki/index.js";
import type { EnrollAnswer } from "../wire/coord/api.js";
import type { MapRelay } from "../wire/coord/map.js";
import { ADMIN_ROLE, NAME_PATTERN, NAME_RULE } from "../wire/coord/names.js";
import { parseToken, TokenFormatError } from "../wire/coord/token.js";
import type { CoordContext } from "./context.js";
import { HttpError, readJson, sendJson, str } from "./http.js";
import { MAX_BODY_BYTES, RESERVED_NAMES } from "./limits.js";
import { hubPeerFromNode } from "./map-hub.js";
import type { OpenCall } from "./routes.js";
import type { NodeRecord } from "./store.js";
import { checkToken, secretMatches } from "./tokens.js";

export interface EnrollmentDeps {
  /** The pin of this server's root CA (tokens carry it). */
  pin: string;
  /** Relays the server hands out: their names are reserved. */
  relays: readonly MapRelay[];
  /** The revocation list an enrolled node starts with. */
  revocationList(): string;
  /** Told of each enrolled node (its publications may become active). */
  nodeChanged(node: NodeRecord): void;
}

/** A CSR that verifies and asks for `name`; 400 naming the problem otherwise. */
export async function checkCsr(pem: string, name: string) {
  let csr;
  try { csr = await verifyCsr(pem); } catch (err) {
    throw new HttpError(400, "bad_csr", (err as Error).message);
  }
  if (csr.commonName !== name) throw new HttpError(400, "csr_name_mismatch", `CSR asks for "${csr.commonName ?? "(no CN)"}", but the request is for "${name}"`);
  return csr;
}

export class Enrollment {
  constructor(private readonly ctx: CoordContext, private readonly deps: EnrollmentDeps) {}

  async enroll(c: OpenCall): Promise<void> {
    const { ctx } = this;
    const body = await readJson(c.req, MAX_BODY_BYTES);
    const name = str(body, "name", 63);
    const csrPem = str(body, "csr", 8192);
    const token = this.tokenOf(str(body, "token", 256));
    this.checkName(name);
    const now = Date.now();
    const stored = await ctx.store.getToken(token.id);
    const verdict = checkToken(stored && secretMatches(token.secret, stored.secretHash) ? stored : undefined, now);
    if (!verdict.ok) throw new HttpError(403, verdict.reason, verdict.detail);
    const t = verdict.token;
    const csr = await checkCsr(csrPem, name);
    const cert = issueLeafRecord(ctx.ca, { name, tenant: t.tenant, groups: t.groups, roles: t.roles, ttlMs: t.certTtlMs, publicKey: csr.publicKey });
    const certPem = toPem(cert.der, "CERTIFICATE");
    const enrollmentId = randomBytes(8).toString("hex");
    const node: NodeRecord = {
      name, tenant: t.tenant, groups: t.groups, roles: t.roles, enrollmentId, status: "active", enrolledAt: now, tokenId: t.id,
      certTtlMs: t.certTtlMs, serial: cert.serial, certPem, notAfter: cert.notAfter.getTime(), endpoints: [],
    };
    const r = await ctx.store.enroll({
      tokenId: t.id, now, node,
      cert: { serial: cert.serial, name, enrollmentId, notAfter: node.notAfter, issuedAt: now, kind: "enroll" },
      // Re-enrollment: a name is free again once its holder was revoked or its certificate has expired.
      nameFree: (existing) => existing.status === "revoked" || existing.notAfter + ctx.verifier.skewMs < now,
    });
    if (!r.ok) throw new HttpError(r.reason === "name_taken" ? 409 : 403, r.reason, r.detail);
    node.overlayIp = r.overlayIp;
    // Committed (synchronous=FULL): from here the enrollment survives a crash, so acknowledge it.
    ctx.timePush("enroll", () => ctx.hub().upsertPeer(hubPeerFromNode(node)));
    this.deps.nodeChanged(node);
    ctx.counters.enrollments++;
    ctx.log.info({ event: "enrolled", name, tenant: t.tenant, groups: t.groups, roles: t.roles, serial: cert.serial, token: t.id, notAfter: cert.notAfter.toISOString() }, "node enrolled");
    if (t.roles.includes(ADMIN_ROLE)) {
      ctx.audit.write({ action: "admin_enrolled", name, tenant: t.tenant, roles: t.roles, serial: cert.serial, token: t.id, tokenCreatedBy: t.createdBy, remote: c.req.socket.remoteAddress },
        `${name} enrolled with role "${ADMIN_ROLE}" (token ${t.id} by ${t.createdBy})`);
    }
    const answer: EnrollAnswer = {
      name, tenant: t.tenant, groups: t.groups, certPem, bundlePem: ctx.ca.bundlePem, revocation: this.deps.revocationList(),
      certTtlMs: t.certTtlMs, notAfter: cert.notAfter.toISOString(), overlayIp: r.overlayIp,
    };
    sendJson(c.res, 200, answer);
  }

  /** The token as the request carries it, which must be for this mesh (its root pin). */
  private tokenOf(text: string) {
    let token;
    try { token = parseToken(text); } catch (err) {
      if (err instanceof TokenFormatError) throw new HttpError(400, "token_malformed", err.message);
      throw err;
    }
    if (token.pin !== this.deps.pin) {
      throw new HttpError(403, "token_foreign", `this token was issued for another mesh: it pins root ${token.pin}, this server's root is ${this.deps.pin}`);
    }
    return token;
  }

  private checkName(name: string): void {
    if (!NAME_PATTERN.test(name)) throw new HttpError(400, "bad_name", `invalid name "${name}": use ${NAME_RULE}`);
    if (RESERVED_NAMES.has(name)) throw new HttpError(400, "bad_name", `name "${name}" is reserved`);
    if (this.deps.relays.some((r) => r.name === name)) throw new HttpError(400, "bad_name", `name "${name}" is reserved: it is the name of a relay this server hands out (--relay)`);
  }
}
