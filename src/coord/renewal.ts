// Renewal (POST /v1/renew, mTLS): a node of the current enrollment asks for a certificate for a new key under
// the same name, tenant and grants, well before its own expires (the client renews at a fraction of its life).
import type { KeyObject } from "node:crypto";
import { issueLeafRecord, toPem } from "../pki/index.js";
import type { RenewAnswer } from "../wire/coord/api.js";
import type { CoordContext } from "./context.js";
import { checkCsr } from "./enrollment.js";
import { HttpError, readJson, sendJson, str } from "./http.js";
import { MAX_BODY_BYTES } from "./limits.js";
import { hubPeerFromNode } from "./map-hub.js";
import type { Call } from "./routes.js";
import type { NodeRecord, NodeUser } from "./store.js";

export interface RenewalDeps {
  /** A person logged in on the device: their certificate follows the device's new key. */
  rebindUser(node: NodeRecord, publicKey: KeyObject, now: number): Promise<NodeUser | undefined>;
}

export class Renewal {
  constructor(private readonly ctx: CoordContext, private readonly deps: RenewalDeps) {}

  async renew(c: Call): Promise<void> {
    const { ctx } = this;
    const { id } = c;
    const body = await readJson(c.req, MAX_BODY_BYTES);
    const csr = await checkCsr(str(body, "csr", 8192), id.name);
    const node = await ctx.store.getNode(id.name);
    if (!node || node.status !== "active" || !(await ctx.store.isSerialOf(id.serial, id.name, node.enrollmentId))) {
      throw new HttpError(403, "not_enrolled", `certificate ${id.serial} does not belong to the current enrollment of "${id.name}"`);
    }
    const now = Date.now();
    const ttl = Math.max(node.certTtlMs, 1_000);
    const cert = issueLeafRecord(ctx.ca, { name: node.name, tenant: node.tenant, groups: node.groups, roles: node.roles, ttlMs: ttl, publicKey: csr.publicKey });
    const certPem = toPem(cert.der, "CERTIFICATE");
    const ok = await ctx.store.renew({
      name: node.name, enrollmentId: node.enrollmentId, certPem,
      cert: { serial: cert.serial, name: node.name, enrollmentId: node.enrollmentId, notAfter: cert.notAfter.getTime(), issuedAt: now, kind: "renew" },
    });
    if (!ok) throw new HttpError(403, "not_enrolled", `"${id.name}" was revoked or re-enrolled meanwhile`);
    const user = await this.deps.rebindUser(node, csr.publicKey, now);
    const renewed: NodeRecord = { ...node, serial: cert.serial, certPem, notAfter: cert.notAfter.getTime() };
    if (user) renewed.user = user; else delete renewed.user;
    const hub = ctx.hub();
    const live = hub.peer(node.name);
    const liveStatus = live ? { endpoints: live.endpoints, homeRelay: live.homeRelay, lastSeen: live.lastSeen } : {};
    ctx.timePush("renew", () => hub.upsertPeer({ ...hubPeerFromNode(renewed), ...liveStatus }));
    ctx.counters.renewals++;
    ctx.log.info({ event: "renewed", name: node.name, oldSerial: id.serial, serial: cert.serial, notAfter: cert.notAfter.toISOString() }, "certificate renewed");
    const answer: RenewAnswer = { certPem, bundlePem: ctx.ca.bundlePem, notAfter: cert.notAfter.toISOString(), certTtlMs: ttl };
    sendJson(c.res, 200, answer);
  }
}
