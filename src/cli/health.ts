// Health verbs (docs/operations.md has the exit codes): `ember admin create|list|delete` (console logins),
// `ember whois NAME|ADDRESS`, `ember logs --policy|--connections [--follow]`, and the diagnosis
// `ember up` prints when the daemon cannot start (the problems part of `ember status` is problems.ts).
import type { Command } from "commander";
import { readFileSync } from "node:fs";
import { AdminClient, type AdminConnectionFlags } from "../coord-client/admin-client.js";
import type { Problem } from "../wire/coord/telemetry.js";
import { adminCall, withAdminFlags } from "./admin.js";
import { ask, daemonFlags, type SocketOpts } from "./daemon-client.js";
import { CliError, printFields, printJson, printTable } from "./output.js";
import { promptPassword, readStdinLine } from "./password-input.js";

export function registerHealthVerbs(program: Command): void {
  const admin = program.command("admin").description("console (dashboard) logins on the coordination server");
  withAdminFlags(admin.command("create").description("create a console login: username and password (the dashboard's password login)")
    .argument("<username>", "lowercase letters, digits, '.', '_' and '-'")
    .option("--password-stdin", "read the password from the first line of stdin instead of asking")
    .option("--replace", "replace the password of an existing login")
    .option("--json", "machine-readable output"))
    .action(async (username: string, o: AdminConnectionFlags & { passwordStdin?: boolean; replace?: boolean; json?: boolean }) => {
      const client = await adminCall(async () => new AdminClient(o));
      const password = o.passwordStdin ? await readStdinLine() : await promptPassword();
      const r = await adminCall(() => client.putUser(username, password, !!o.replace));
      if (o.json) return printJson(r);
      process.stdout.write(`${r.created ? "created" : "replaced"} console login ${r.username}\n`);
    });
  withAdminFlags(admin.command("list").description("console logins").option("--json", "machine-readable output"))
    .action(async (o: AdminConnectionFlags & { json?: boolean }) => {
      const r = await adminCall(() => new AdminClient(o).listUsers());
      if (o.json) return printJson(r.users);
      printTable(["USERNAME", "CREATED", "BY"], r.users.map((u: any) => [u.username, u.createdAt, u.createdBy]));
    });
  withAdminFlags(admin.command("delete").description("delete a console login (its sessions end within 15 minutes)").argument("<username>").option("--json", "machine-readable output"))
    .action(async (username: string, o: AdminConnectionFlags & { json?: boolean }) => {
      const r = await adminCall(() => new AdminClient(o).deleteUser(username));
      if (o.json) return printJson(r);
      process.stdout.write(`deleted console login ${r.username}\n`);
    });

  daemonFlags(program.command("whois").description("who a peer is: identity, tenant, groups, certificate serial and expiry").argument("<name-or-address>", "peer name, or an address it uses (IP or IP:PORT)"))
    .action(async (query: string, o: SocketOpts) => {
      const r = await ask<any>(o, "whois", { query });
      if (o.json) return printJson(r);
      printFields([
        ["name", r.name + (r.self ? " (this node)" : "")], ["identity", r.identity ?? "-"], ["tenant", r.tenant], ["groups", r.groups.join(", ") || "-"],
        ["roles", r.roles?.join(", ") || "-"], ["serial", r.serial ?? "-"], ["valid", r.notBefore ? `${r.notBefore} .. ${r.notAfter}` : "-"],
        ["source", r.source], ["path", r.path], ["endpoint", r.endpoint], ["home relay", r.homeRelay],
      ]);
    });

  daemonFlags(program.command("logs").description("recent policy decisions or connection events of the running daemon")
    .option("--policy", "policy decisions (allow, deny, cut), with the deciding rule")
    .option("--connections", "handshakes, path changes, relay fallbacks, coordination and relay connections")
    .option("-f, --follow", "keep printing new events until interrupted")
    .option("-n, --lines <n>", "how many recent events", "50"))
    .action(async (o: SocketOpts & { policy?: boolean; connections?: boolean; follow?: boolean; lines: string }) => {
      if (o.policy && o.connections) throw new CliError("--policy or --connections, not both (neither: both kinds)");
      const kind = o.policy ? "policy" : o.connections ? "connections" : undefined;
      const limit = Number(o.lines);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new CliError(`--lines ${o.lines}: give 1..1000`);
      const print = (events: any[]) => {
        for (const e of events) {
          if (o.json) { process.stdout.write(JSON.stringify(e) + "\n"); continue; }
          const rest = Object.entries(e).filter(([k, v]) => !["seq", "at", "kind", "event"].includes(k) && v !== undefined).map(([k, v]) => `${k}=${typeof v === "string" && /\s/.test(v) ? JSON.stringify(v) : v}`).join(" ");
          process.stdout.write(`${e.at}  ${e.event.padEnd(16)} ${rest}\n`);
        }
      };
      let r = await ask<{ events: any[]; last: number }>(o, "logs", { kind, after: 0, limit });
      print(r.events);
      let stop = false;
      process.once("SIGINT", () => { stop = true; });
      while (o.follow && !stop) {
        r = await ask<{ events: any[]; last: number }>(o, "logs", { kind, after: r.last, limit: 1000, waitMs: 10_000 }, 20_000);
        print(r.events);
      }
    });
}

/**
 * `ember up` could not start the daemon. A certificate that is not yet valid or expired by this host's clock
 * is most often a wrong clock: measure the offset against the coordination server, name it, keep it for
 * `ember status`, and report it to the coordination server (the console's node page), then exit 1.
 */
export async function explainStartFailure(err: Error, cfg: { stateDir: string; coordUrl?: string; bundlePath: string; certPath: string; keyPath: string }): Promise<never> {
  const { saveStartFailure } = await import("../node/health.js");
  const { diagnose, measureClockOffset } = await import("../node/diagnostics.js");
  const certProblem = /not_yet_valid/.test(err.message) ? "not_yet_valid" : /expired/.test(err.message) ? "expired" : undefined;
  let problems: Problem[] = [];
  if (certProblem && cfg.coordUrl) {
    let clock;
    try { clock = await measureClockOffset(cfg.coordUrl); } catch (e) { process.stderr.write(`ember: could not measure the clock offset: ${(e as Error).message}\n`); }
    problems = diagnose({ now: Date.now(), relays: [], stunServers: [], peers: [], denied: [], clock, certificate: { notBefore: 0, notAfter: 0, problem: certProblem } });
    if (clock && Math.abs(clock.offsetMs) > 30_000 && Math.abs(clock.offsetMs) < 24 * 3_600_000) await reportSkew(cfg, clock.offsetMs, problems);
  } else if (certProblem) {
    problems = diagnose({ now: Date.now(), relays: [], stunServers: [], peers: [], denied: [], certificate: { notBefore: 0, notAfter: 0, problem: certProblem } });
  }
  saveStartFailure(cfg.stateDir, { error: err.message, problems });
  for (const p of problems) process.stderr.write(`ember: ${p.code}: ${p.summary}\nember: fix: ${p.fix}\n`);
  throw new CliError(err.message, 1);
}

/**
 * Tells the coordination server why this node cannot start. Its certificate looks not yet valid (or expired)
 * only by our wrong clock; the server's clock judges it, so the report goes through. Our side widens the
 * skew it allows the server's certificate by the measured offset, for this one report only.
 */
async function reportSkew(cfg: { stateDir: string; coordUrl?: string; bundlePath: string; certPath: string; keyPath: string }, offsetMs: number, problems: Problem[]): Promise<void> {
  const { Verifier } = await import("../pki/index.js");
  const { TelemetryClient } = await import("../node/telemetry.js");
  // EmberNet's own pino-compatible logger: pino's CommonJS export has no named `pino` once bundled.
  const { createJsonLogger } = await import("../log/json-logger.js");
  try {
    const bundlePem = readFileSync(cfg.bundlePath, "utf8");
    const verifier = new Verifier({ bundlePem, skewMs: Math.abs(offsetMs) + 60_000 });
    const creds = { certPem: readFileSync(cfg.certPath, "utf8"), keyPem: readFileSync(cfg.keyPath, "utf8"), bundlePem };
    const t = new TelemetryClient({ coordUrl: cfg.coordUrl!, stateDir: cfg.stateDir, log: createJsonLogger({ level: "silent" }), verifier, credentials: () => creds, snapshot: () => ({ peers: [], problems }) });
    t.record({ t: "coord", at: Date.now(), ok: false, data: { what: "daemon start refused", problem: problems[0]?.code ?? "unknown" } });
    await t.flush();
    await t.stop();
    if (t.stats.lastError) process.stderr.write(`ember: could not report to the coordination server: ${t.stats.lastError}\n`);
    else process.stderr.write("ember: reported to the coordination server (console node page)\n");
  } catch (e) {
    process.stderr.write(`ember: could not report to the coordination server: ${(e as Error).message}\n`);
  }
}
