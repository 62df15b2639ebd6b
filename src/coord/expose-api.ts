// The coordination server's side of external access (docs/external-access.md): nodes publish their own services
// to public edges (`ember expose SERVICE --public`), unpublish them, list them with why each is (in)active, and
// mint bearer tokens for token-authenticated publications. After every change that can alter what an edge
// serves (a publication, the policy, an edge or publisher enrolled or revoked) refresh() recomputes the plan
// and hands it to the map hub, which sends only what changed.
import { randomBytes, X509Certificate } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { Identity } from "../pki/index.js";
import { CLIENT_AUTH, EDGE_TOKEN_ISSUER, EDGE_TOKEN_MAX_TTL_MS, EDGE_TOKEN_TYPE, MAX_CA_PEM_CHARS, MAX_PUBLICATIONS, type ClientAuth } from "../wire/coord/edge.js";
import { EDGE_ROLE, HOSTNAME_PATTERN, NAME_PATTERN } from "../wire/coord/names.js";
import { HttpError, readJson, sendJson, str } from "./http.js";
import type { JwtKey } from "../crypto/jwt.js";
import type { MapHub } from "./map-hub.js";
import type { CompiledPolicy } from "./policy-adapter.js";
import { MAX_BODY_BYTES } from "./limits.js";
import { externalDecision, planEdges, publicationState, type PublicationState } from "./publications.js";
import type { NodeRecord, PublicationRecord, Store } from "./store.js";

const DEFAULT_TOKEN_TTL_MS = 3_600_000;

export interface ExposeDeps {
  store: Store;
  hub: () => MapHub;
  policy: () => CompiledPolicy;
  log: Logger;
  tokenKey: JwtKey;
}

export class ExposeApi {
  /** Active edges by name (role edge in their certificate grants), with their tenant. */
  private readonly edges = new Map<string, string>();
  private publications: PublicationRecord[] = [];
  private readonly tokenKeyPem: string;

  constructor(private readonly deps: ExposeDeps) {
    this.tokenKeyPem = deps.tokenKey.publicKey.export({ type: "spki", format: "pem" }) as string;
  }

  /** Reads edges and publications from the store (start, and after other replicas' changes) and applies them. */
  async reload(): Promise<void> {
    this.edges.clear();
    for (const n of await this.deps.store.listNodes()) if (n.status === "active" && n.roles.includes(EDGE_ROLE)) this.edges.set(n.name, n.tenant);
    this.publications = await this.deps.store.listPublications();
    this.refresh();
  }

  /** A node enrolled or renewed: an edge joins; a publisher may be back. */
  nodeChanged(n: NodeRecord): void {
    const wasEdge = this.edges.has(n.name);
    if (n.roles.includes(EDGE_ROLE)) this.edges.set(n.name, n.tenant);
    else this.edges.delete(n.name);
    if (wasEdge || this.edges.has(n.name) || this.publications.some((p) => p.node === n.name)) this.refresh();
  }

  nodeRevoked(name: string): void {
    const wasEdge = this.edges.delete(name);
    if (wasEdge || this.publications.some((p) => p.node === name)) this.refresh();
  }

  /** Recomputes which publications are active and what each edge sees; the hub pushes the differences. */
  refresh(): void {
    const hub = this.deps.hub();
    const states = this.states();
    const plan = planEdges([...this.edges].map(([name, tenant]) => ({ name, tenant })), states, this.tokenKeyPem);
    hub.setExternal(plan.links, plan.views);
  }

  private states(): PublicationState[] {
    const hub = this.deps.hub();
    return this.publications.map((p) => publicationState(this.deps.policy(), p, hub.principal(p.node)));
  }

  private activeNode(id: Identity) {
    const p = this.deps.hub().principal(id.name);
    if (!p) throw new HttpError(403, "not_enrolled", `"${id.name}" is not an active node`);
    return p;
  }

  /** POST /v1/expose: publish the caller's service. */
  async publish(id: Identity, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const node = this.activeNode(id);
    const b = await readJson(req, MAX_BODY_BYTES);
    const service = str(b, "service", 63);
    if (!NAME_PATTERN.test(service)) throw new HttpError(400, "bad_service", `service "${service.slice(0, 70)}" is not a lowercase DNS label`);
    const port = b.port;
    if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) throw new HttpError(400, "bad_request", `"port" must be 1-65535`);
    if (b.protocol !== "tcp" && b.protocol !== "https") {
      throw new HttpError(400, "bad_protocol", `service ${service} is ${String(b.protocol)}: an edge carries TCP services only (tcp or https)`);
    }
    const hostname = b.hostname === undefined ? `${service}.${id.name}.${node.tenant}` : str(b, "hostname", 253).toLowerCase();
    if (!HOSTNAME_PATTERN.test(hostname)) throw new HttpError(400, "bad_hostname", `hostname "${hostname.slice(0, 80)}" is not a DNS name of two or more lowercase labels`);
    const clientAuth = (b.clientAuth ?? "none") as ClientAuth;
    if (!CLIENT_AUTH.includes(clientAuth)) throw new HttpError(400, "bad_client_auth", `clientAuth must be none, cert or token`);
    let clientCaPem: string | undefined;
    if (clientAuth === "cert") {
      clientCaPem = str(b, "clientCaPem", MAX_CA_PEM_CHARS);
      try { if (!new X509Certificate(clientCaPem).ca) throw new Error("it is not a CA certificate (basicConstraints CA:TRUE)"); } catch (err) {
        throw new HttpError(400, "bad_client_ca", `client CA: ${(err as Error).message}`);
      }
    }
    // Refused unless the policy in force lets an outside client reach this service on this node.
    const d = externalDecision(this.deps.policy(), node, port as number);
    if (!d.allow) {
      this.deps.log.warn({ event: "expose_refused", node: id.name, service, port, reason: d.reason }, "publication refused: no external rule");
      throw new HttpError(403, "no_external_rule",
        `the policy has no external rule allowing service:${service} on ${id.name} (tcp port ${port}); add one such as ` +
        `allow: {source: external, target: "service:${service}", ports: [${port}]} (${d.reason})`);
    }
    const mine = this.publications.filter((p) => p.node === id.name && p.service !== service).length;
    if (this.publications.length >= MAX_PUBLICATIONS || mine >= 32) throw new HttpError(409, "too_many_publications", `at most ${MAX_PUBLICATIONS} publications in the mesh and 32 per node`);
    const record: PublicationRecord = {
      hostname, tenant: node.tenant, node: id.name, service, port: port as number, protocol: b.protocol, clientAuth,
      ...(clientCaPem ? { clientCaPem } : {}), createdAt: Date.now(), createdBy: id.name,
    };
    const r = await this.deps.store.putPublication(record);
    if (!r.ok) throw new HttpError(409, "hostname_taken", `hostname ${hostname} is already published for ${r.holder.service} on ${r.holder.node}`);
    this.publications = await this.deps.store.listPublications();
    this.refresh();
    this.deps.log.info({ event: "exposed", hostname, node: id.name, service, port, clientAuth, rule: d.rule?.text }, "service published to the edges");
    sendJson(res, 200, { hostname, node: id.name, service, port, protocol: b.protocol, clientAuth, active: true, rule: d.rule?.text, edges: this.edgesOf(node.tenant) });
  }

  /** POST /v1/unexpose */
  async unpublish(id: Identity, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const b = await readJson(req, MAX_BODY_BYTES);
    const service = str(b, "service", 63);
    if (!(await this.deps.store.deletePublication(id.name, service))) throw new HttpError(404, "not_published", `service ${service.slice(0, 63)} of ${id.name} is not published`);
    this.publications = await this.deps.store.listPublications();
    this.refresh();
    this.deps.log.info({ event: "unexposed", node: id.name, service }, "service unpublished");
    sendJson(res, 200, { node: id.name, service, published: false });
  }

  /** GET /v1/exposed: the caller's publications, each with whether it is active and why not. */
  list(id: Identity, res: ServerResponse): void {
    const rows = this.states().filter((s) => s.record.node === id.name).map((s) => ({
      hostname: s.record.hostname, service: s.record.service, port: s.record.port, protocol: s.record.protocol, clientAuth: s.record.clientAuth,
      active: s.active, reason: s.reason, ...(s.rule ? { rule: s.rule } : {}), createdAt: new Date(s.record.createdAt).toISOString(),
    }));
    sendJson(res, 200, { node: id.name, publications: rows, edges: this.edgesOf(this.deps.hub().principal(id.name)?.tenant) });
  }

  private edgesOf(tenant: string | undefined): string[] {
    return [...this.edges].filter(([, t]) => t === tenant).map(([n]) => n).sort();
  }

  /** A bearer token for one token-authenticated publication of the caller, bound to its hostname (aud). */
  /** POST /v1/expose/token: a bearer token for a token-authenticated publication of the caller. */
  async token(id: Identity, req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.activeNode(id);
    const b = await readJson(req, MAX_BODY_BYTES);
    const service = str(b, "service", 63);
    const ttlMs = b.ttlMs === undefined ? DEFAULT_TOKEN_TTL_MS : b.ttlMs;
    if (typeof ttlMs !== "number" || !Number.isSafeInteger(ttlMs) || ttlMs < 1_000 || ttlMs > EDGE_TOKEN_MAX_TTL_MS) {
      throw new HttpError(400, "bad_request", `"ttlMs" must be 1000-${EDGE_TOKEN_MAX_TTL_MS}`);
    }
    const p = this.publications.find((x) => x.node === id.name && x.service === service);
    if (!p) throw new HttpError(404, "not_published", `service ${service.slice(0, 63)} of ${id.name} is not published`);
    if (p.clientAuth !== "token") throw new HttpError(409, "not_token_auth", `${p.hostname} is published with client auth "${p.clientAuth}", not "token"`);
    const now = Math.floor(Date.now() / 1000);
    const exp = now + Math.ceil(ttlMs / 1000);
    const token = this.deps.tokenKey.sign(EDGE_TOKEN_TYPE, {
      iss: EDGE_TOKEN_ISSUER, aud: p.hostname, sub: `${service}.${id.name}`, iat: now, exp, jti: randomBytes(12).toString("base64url"),
    });
    this.deps.log.info({ event: "edge_token_issued", hostname: p.hostname, node: id.name, service, expiresAt: new Date(exp * 1000).toISOString() }, "edge bearer token issued");
    sendJson(res, 200, { token, hostname: p.hostname, expiresAt: new Date(exp * 1000).toISOString() });
  }
}
