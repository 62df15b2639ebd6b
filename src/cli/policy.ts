// `ember policy set|get|check`: the mesh's access policy on the coordination server.
import type { Command } from "commander";
import { readFileSync, statSync } from "node:fs";
import { policySizeProblem } from "../policy/index.js";
import { AdminClient, type AdminConnectionFlags } from "../coord-client/admin-client.js";
import { adminCall, withAdminFlags } from "./admin.js";
import { CliError, printJson } from "./output.js";

interface Issue { line: number; column?: number; message: string; severity: string }

/**
 * The policy file's text, held to the one policy size limit (bytes of UTF-8 source, what the server counts)
 * with the server's own message. The file's size is checked before reading it: decoding never shrinks it.
 */
function readPolicyFile(file: string): string {
  let text: string;
  try {
    const tooLarge = policySizeProblem(statSync(file).size);
    if (tooLarge) throw new CliError(`${file}: ${tooLarge}`);
    text = readFileSync(file, "utf8");
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`policy file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const tooLarge = policySizeProblem(Buffer.byteLength(text, "utf8"));
  if (tooLarge) throw new CliError(`${file}: ${tooLarge}`);
  return text;
}

export function registerPolicy(program: Command): void {
  const policy = program.command("policy").description("access policy (coordination server)");

  withAdminFlags(policy.command("set")
    .description("validate and apply a policy file (nothing is applied when it has errors or failing tests)")
    .argument("<file>", "policy file (YAML)")
    .option("--json", "machine-readable output"))
    .action(async (file: string, o: AdminConnectionFlags & { json?: boolean }) => {
      const source = readPolicyFile(file);
      try {
        const r = await adminCall(() => new AdminClient(o).setPolicy(source));
        if (o.json) return printJson(r);
        for (const w of r.warnings as Issue[]) process.stderr.write(`${file}:${w.line}${w.column ? `:${w.column}` : ""}: warning: ${w.message}\n`);
        process.stdout.write(`policy applied: ${r.rules} rule(s), hash ${r.hash}\n`);
      } catch (err) {
        const body = (err as { body?: { errors?: Issue[]; warnings?: Issue[] } }).body;
        if (!body?.errors) throw err;
        if (o.json) printJson(body);
        else for (const i of [...body.errors, ...(body.warnings ?? [])]) process.stderr.write(`${file}:${i.line}${i.column ? `:${i.column}` : ""}: ${i.severity}: ${i.message}\n`);
        throw new CliError(`policy ${file} has ${body.errors.length} error(s); nothing applied`);
      }
    });

  withAdminFlags(policy.command("get")
    .description("print the policy in force")
    .option("--json", "machine-readable output"))
    .action(async (o: AdminConnectionFlags & { json?: boolean }) => {
      const r = await adminCall(() => new AdminClient(o).getPolicy());
      if (o.json) return printJson(r);
      process.stdout.write(r.source || "# no policy set: default deny\n");
    });

  withAdminFlags(policy.command("check")
    .description("would the policy allow this flow? exit 0 allow, 1 deny")
    .requiredOption("--from <name>", "source node, or user:NAME for a person")
    .requiredOption("--to <name:port[/proto]>", "target node, port and protocol")
    .option("--json", "machine-readable output"))
    .action(async (o: AdminConnectionFlags & { from: string; to: string; json?: boolean }) => {
      const r = await adminCall(() => new AdminClient(o).checkPolicy(o.from, o.to));
      if (o.json) printJson(r);
      else {
        const rule = r.rule ? ` by rule #${r.rule.index} (line ${r.rule.line}: ${r.rule.text})` : "";
        process.stdout.write(`${r.allow ? "ALLOW" : "DENY"} ${o.from} -> ${o.to}${rule}: ${r.reason}\n`);
      }
      if (!r.allow) process.exitCode = 1;
    });
}
