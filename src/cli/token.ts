// `ember token create`: an admin mints a one-time enrollment token on the coordination server.
import type { Command } from "commander";
import { parseDuration } from "../pki/index.js";
import { AdminClient, type AdminConnectionFlags } from "../coord/admin-client.js";
import { ADMIN_ROLE, INFRA_ROLES } from "../coord/protocol.js";
import { adminCall, withAdminFlags } from "./admin.js";
import { printJson, splitList, CliError } from "./output.js";

export function registerToken(program: Command): void {
  const token = program.command("token").description("enrollment tokens");
  withAdminFlags(token.command("create")
    .description("create an enrollment token (prints it; the server keeps only its hash)")
    .requiredOption("--tenant <tenant>", "tenant of the nodes that enroll with it")
    .option("--groups <groups>", "comma-separated groups granted", "")
    .option("--roles <roles>", "comma-separated roles granted", "")
    .option("--ttl <duration>", "how long the token is valid", "1h")
    .option("--uses <n>", "how many enrollments it allows", "1")
    .option("--cert-ttl <duration>", "lifetime of the certificates it yields", "8h")
    .option("--allow-admin-role", `allow --roles to include "${ADMIN_ROLE}" (the enrolled node becomes an admin of the mesh; audited)`)
    .option("--allow-infra-role", `allow --roles to include ${INFRA_ROLES.map((r) => `"${r}"`).join(" or ")} (the enrolled node is trusted as a relay or server; audited)`)
    .option("--json", "machine-readable output"))
    .action(async (o: AdminConnectionFlags & { tenant: string; groups: string; roles: string; ttl: string; uses: string; certTtl: string; allowAdminRole?: boolean; allowInfraRole?: boolean; json?: boolean }) => {
      const roles = splitList(o.roles);
      const grantsAdmin = roles.includes(ADMIN_ROLE);
      if (grantsAdmin && !o.allowAdminRole) {
        throw new CliError(`--roles ${ADMIN_ROLE}: a node enrolled with this token becomes an admin of the mesh; refused unless --allow-admin-role is given`);
      }
      const infra = roles.filter((r) => INFRA_ROLES.includes(r));
      if (infra.length && !o.allowInfraRole) {
        throw new CliError(`--roles ${infra.join(",")}: a node enrolled with this token is trusted as a relay or coordination server; refused unless --allow-infra-role is given`);
      }
      const uses = Number(o.uses);
      if (!Number.isSafeInteger(uses) || uses < 1) throw new CliError(`--uses "${o.uses}" must be a positive integer`);
      let ttlMs: number, certTtlMs: number;
      try { ttlMs = parseDuration(o.ttl); certTtlMs = parseDuration(o.certTtl); } catch (err) { throw new CliError((err as Error).message); }
      if (grantsAdmin) {
        process.stderr.write(`ember: warning: this token grants role "${ADMIN_ROLE}": the node that enrolls with it can mint tokens, revoke nodes and set the policy\n`);
      }
      const request = { tenant: o.tenant, groups: splitList(o.groups), roles, ttlMs, uses, certTtlMs, ...(grantsAdmin ? { allowAdminRole: true } : {}), ...(infra.length ? { allowInfraRole: true } : {}) };
      const r = await adminCall(() => new AdminClient(o).createToken(request));
      if (o.json) printJson(r);
      else {
        process.stdout.write(`${r.token}\n`);
        process.stderr.write(`token ${r.id}: tenant ${r.tenant}, groups ${r.groups.join(",") || "-"}, ${r.uses} use(s), expires ${r.expiresAt}\n`);
      }
      // Warned, not refused: tokens come first (a policy may name only groups some token grants). docs/coord.md.
      for (const g of r.unnamedGroups ?? []) {
        process.stderr.write(r.policyRules
          ? `ember: warning: no rule of the policy names group "${g}": check the spelling; nodes enrolled with it reach only what rules naming them, their tenant or "*" allow (add a rule with @${g}, ember policy set)\n`
          : `ember: warning: no policy is set yet, so no rule names group "${g}": nodes enrolled with this token reach nothing until one does (ember policy set)\n`);
      }
    });
}
