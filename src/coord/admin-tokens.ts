// `ember token create` (POST /v1/admin/tokens): enrollment tokens with the tenant, groups and roles the node that
// enrolls with one gets. A token granting role admin or an infrastructure role (relay, server) needs an explicit
// confirmation in the request and leaves an audit entry; a group no rule names yet is reported, not refused.
import { LEAF_MAX_TTL_MS } from "../pki/index.js";
import { validateGrantValue } from "../pki/grants.js";
import { ADMIN_ROLE, INFRA_ROLES, SERVER_ROLE } from "../wire/coord/names.js";
import type { CoordContext } from "./context.js";
import { HttpError, int, labels, readJson, sendJson, str } from "./http.js";
import { CERT_DEFAULT_TTL_MS, MAX_BODY_BYTES, TOKEN_DEFAULT_TTL_MS, TOKEN_MAX_USES } from "./limits.js";
import { groupsNamed, type CompiledPolicy } from "./policy-adapter.js";
import type { Call } from "./routes.js";
import { newToken } from "./tokens.js";

export interface TokenAdminDeps {
  /** Lowest leaf TTL a token may ask for (CoordServerOptions.minCertTtlMs). */
  minCertTtlMs: number;
  policy(): CompiledPolicy;
}

/** The grants a token request asks for, checked; refusals name the flag that confirms a powerful role. */
function requestedGrants(b: Record<string, unknown>) {
  const tenant = str(b, "tenant", 63);
  const groups = labels(b, "groups");
  const roles = labels(b, "roles");
  if (b.allowAdminRole !== undefined && typeof b.allowAdminRole !== "boolean") throw new HttpError(400, "bad_request", `"allowAdminRole" must be true or false`);
  if (b.allowInfraRole !== undefined && typeof b.allowInfraRole !== "boolean") throw new HttpError(400, "bad_request", `"allowInfraRole" must be true or false`);
  const grantsAdmin = roles.includes(ADMIN_ROLE);
  if (grantsAdmin && b.allowAdminRole !== true) {
    throw new HttpError(403, "admin_role_refused",
      `a token granting role "${ADMIN_ROLE}" makes the node that enrolls with it an admin of the mesh; refused unless the request sets allowAdminRole (ember token create --allow-admin-role)`);
  }
  const infra = roles.filter((r) => INFRA_ROLES.includes(r));
  if (infra.length && b.allowInfraRole !== true) {
    throw new HttpError(403, "infra_role_refused",
      `a token granting role "${infra[0]}" lets the node that enrolls with it act as a ${infra[0] === SERVER_ROLE ? "coordination server" : "relay"} towards nodes; refused unless the request sets allowInfraRole (ember token create --allow-infra-role)`);
  }
  try {
    validateGrantValue("tenant", tenant);
    for (const g of groups) validateGrantValue("group", g);
    for (const r of roles) validateGrantValue("role", r);
  } catch (err) { throw new HttpError(400, "bad_request", (err as Error).message); }
  return { tenant, groups, roles, grantsAdmin, infra };
}

export class TokenAdmin {
  constructor(private readonly ctx: CoordContext, private readonly deps: TokenAdminDeps) {}

  async create(c: Call): Promise<void> {
    const { ctx } = this;
    const { id } = c;
    const b = await readJson(c.req, MAX_BODY_BYTES);
    const { tenant, groups, roles, grantsAdmin, infra } = requestedGrants(b);
    const ttlMs = int(b, "ttlMs", TOKEN_DEFAULT_TTL_MS, 1_000, 30 * 86_400_000);
    const uses = int(b, "uses", 1, 1, TOKEN_MAX_USES);
    const certTtlMs = int(b, "certTtlMs", CERT_DEFAULT_TTL_MS, 1, LEAF_MAX_TTL_MS);
    if (certTtlMs < this.deps.minCertTtlMs) {
      throw new HttpError(400, "bad_request", `certificate TTL ${certTtlMs} ms is below this server's minimum of ${this.deps.minCertTtlMs} ms`);
    }
    const now = Date.now();
    const t = newToken(ctx.ca.rootDer);
    await ctx.store.createToken({
      id: t.id, secretHash: t.secretHash, tenant, groups, roles, usesLeft: uses, usesTotal: uses, expiresAt: now + ttlMs,
      certTtlMs, createdAt: now, createdBy: id.name,
    });
    const expiresAt = new Date(now + ttlMs).toISOString();
    ctx.log.info({ event: "token_created", token: t.id, tenant, groups, roles, uses, expiresAt, by: id.name }, "token created");
    if (infra.length) {
      ctx.audit.write({ action: "infra_token_created", by: id.name, bySerial: id.serial, token: t.id, tenant, groups, roles, uses, expiresAt },
        `token ${t.id} grants role "${infra.join(",")}" (created by ${id.name})`);
    }
    if (grantsAdmin) {
      ctx.audit.write({ action: "admin_token_created", by: id.name, bySerial: id.serial, token: t.id, tenant, groups, roles, uses, expiresAt },
        `token ${t.id} grants role "${ADMIN_ROLE}" (created by ${id.name})`);
    }
    // Tokens come before the policy that names their groups (a policy may name only groups some token grants), so a
    // group no rule names is not refused: the answer says which, and the CLI warns (a typo shows at once).
    const policy = this.deps.policy();
    const named = groupsNamed(policy);
    const unnamedGroups = groups.filter((g) => !named.has(g));
    sendJson(c.res, 200, { token: t.token, id: t.id, tenant, groups, roles, uses, expiresAt, certTtlMs, unnamedGroups, policyRules: policy.rules.length });
  }
}
