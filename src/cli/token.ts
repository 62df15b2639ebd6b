// `ember token create`: an admin mints a one-time enrollment token on the coordination server.
import type { Command } from "commander";
import { parseDuration } from "../pki/index.js";
import { AdminClient, type AdminConnectionFlags } from "../coord/admin-client.js";
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
    .option("--json", "machine-readable output"))
    .action(async (o: AdminConnectionFlags & { tenant: string; groups: string; roles: string; ttl: string; uses: string; certTtl: string; json?: boolean }) => {
      const uses = Number(o.uses);
      if (!Number.isSafeInteger(uses) || uses < 1) throw new CliError(`--uses "${o.uses}" must be a positive integer`);
      let ttlMs: number, certTtlMs: number;
      try { ttlMs = parseDuration(o.ttl); certTtlMs = parseDuration(o.certTtl); } catch (err) { throw new CliError((err as Error).message); }
      const r = await adminCall(() => new AdminClient(o).createToken({ tenant: o.tenant, groups: splitList(o.groups), roles: splitList(o.roles), ttlMs, uses, certTtlMs }));
      if (o.json) return printJson(r);
      process.stdout.write(`${r.token}\n`);
      process.stderr.write(`token ${r.id}: tenant ${r.tenant}, groups ${r.groups.join(",") || "-"}, ${r.uses} use(s), expires ${r.expiresAt}\n`);
    });
}
