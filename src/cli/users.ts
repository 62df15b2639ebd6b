// People (issue 15, docs/users.md): `ember users add|list|disable|enable` on the coordination server (admin),
// and `ember login` / `ember logout` on the node a person uses.
import type { Command } from "commander";
import { AdminClient, type AdminConnectionFlags } from "../coord-client/admin-client.js";
import { parseDuration } from "../pki/issue.js";
import { adminCall, withAdminFlags } from "./admin.js";
import { ask, daemonFlags, type SocketOpts } from "./daemon-client.js";
import { CliError, printJson, printTable } from "./output.js";
import { promptPassword, readStdinLine } from "./password-input.js";

/** How long `ember login` waits for the console's approval at most (the code's own life is 10 minutes). */
const DEVICE_WAIT_MS = 10 * 60_000;

interface Login { user: string; tenant: string; groups: string[]; device: string; notAfter: string; method: string }

function printLogin(r: Login): void {
  process.stdout.write(`logged in as ${r.user} (tenant ${r.tenant}, groups ${r.groups.join(", ") || "-"}) on ${r.device} until ${r.notAfter}\n`);
}

export function registerUsers(program: Command): void {
  const users = program.command("users").description("people of the mesh: policies name them user:NAME, and they log in on devices");
  withAdminFlags(users.command("add").description("add a person: a password, a tenant and groups (policies name them user:NAME)")
    .argument("<name>", "lowercase letters, digits and '-' (like a node's name)")
    .requiredOption("--tenant <tenant>", "the tenant the person belongs to")
    .option("--groups <groups>", "comma-separated groups", "")
    .option("--password-stdin", "read the password from the first line of stdin instead of asking")
    .option("--replace", "replace an existing person's password, tenant and groups")
    .option("--json", "machine-readable output"))
    .action(async (name: string, o: AdminConnectionFlags & { tenant: string; groups: string; passwordStdin?: boolean; replace?: boolean; json?: boolean }) => {
      const client = await adminCall(async () => new AdminClient(o));
      const password = o.passwordStdin ? await readStdinLine() : await promptPassword();
      const groups = o.groups.split(",").map((g) => g.trim()).filter(Boolean);
      const r = await adminCall(() => client.putMeshUser({ username: name, password, tenant: o.tenant, groups, replace: !!o.replace }));
      if (o.json) return printJson(r);
      process.stdout.write(`${r.created ? "added" : "replaced"} user ${r.username} (tenant ${r.tenant}, groups ${r.groups.join(", ") || "-"})\n`);
    });
  withAdminFlags(users.command("list").description("people, their groups and the devices they are logged in on").option("--json", "machine-readable output"))
    .action(async (o: AdminConnectionFlags & { json?: boolean }) => {
      const r = await adminCall(() => new AdminClient(o).listUsers());
      const people = r.users.filter((u: any) => u.tenant !== undefined);
      if (o.json) return printJson(people);
      printTable(["USER", "TENANT", "GROUPS", "STATE", "LOGGED IN ON"], people.map((u: any) => [u.username, u.tenant, u.groups.join(",") || "-", u.disabled ? "disabled" : "active", u.devices.join(",") || "-"]));
    });
  for (const [verb, disabled] of [["disable", true], ["enable", false]] as const) {
    withAdminFlags(users.command(verb).description(disabled ? "disable a person: every login ends now, peers cut their flows" : "let a disabled person log in again")
      .argument("<name>").option("--json", "machine-readable output"))
      .action(async (name: string, o: AdminConnectionFlags & { json?: boolean }) => {
        const r = await adminCall(() => new AdminClient(o).setUserDisabled(name, disabled));
        if (o.json) return printJson(r);
        process.stdout.write(`${disabled ? "disabled" : "enabled"} user ${r.username}${r.loggedOut.length ? `; logged out of ${r.loggedOut.join(", ")}` : ""}\n`);
      });
  }

  daemonFlags(program.command("login").description("log a person in on this node: its flows become theirs (a console approval, or a password)")
    .option("--user <name>", "log in with this person's password instead of a console approval")
    .option("--password-stdin", "with --user: read the password from the first line of stdin")
    .option("--ttl <duration>", "end the login sooner than the server's limit (e.g. 1h)"))
    .action(async (o: SocketOpts & { user?: string; passwordStdin?: boolean; ttl?: string }) => {
      const ttl = o.ttl ? { ttlMs: parseDurationFlag(o.ttl) } : {};
      if (o.user) {
        const password = o.passwordStdin ? await readStdinLine() : await promptPassword(false);
        const r = await ask<Login>(o, "login", { username: o.user, password, ...ttl });
        return o.json ? printJson(r) : printLogin(r);
      }
      if (o.passwordStdin) throw new CliError("--password-stdin needs --user NAME");
      const start = await ask<{ deviceCode: string; userCode: string; verificationUri: string; verificationUriComplete: string; interval: number }>(o, "login-device", ttl);
      process.stderr.write(`To log in, open ${start.verificationUri} and enter the code ${start.userCode}\n(or open ${start.verificationUriComplete})\n`);
      const until = Date.now() + DEVICE_WAIT_MS;
      while (Date.now() < until) {
        await new Promise((r) => setTimeout(r, Math.max(1, start.interval) * 1000));
        const r = await ask<{ done: boolean } & Partial<Login>>(o, "login-poll", { deviceCode: start.deviceCode });
        if (r.done) return o.json ? printJson(r) : printLogin(r as Login);
      }
      throw new CliError("nobody approved the login in time: run ember login again");
    });
  daemonFlags(program.command("logout").description("end the login of the person on this node: its flows are the machine's again"))
    .action(async (o: SocketOpts) => {
      const r = await ask<{ device: string; loggedOut: string | null }>(o, "logout");
      if (o.json) return printJson(r);
      process.stdout.write(r.loggedOut ? `logged ${r.loggedOut} out of ${r.device}\n` : `nobody was logged in on ${r.device}\n`);
    });
}

function parseDurationFlag(text: string): number {
  try { return parseDuration(text); } catch (err) { throw new CliError(`--ttl: ${(err as Error).message}`); }
}
