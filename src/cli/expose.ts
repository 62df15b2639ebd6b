// `ember expose SERVICE --public` and `ember unexpose SERVICE`: publish one of this node's services to the mesh's
// public edges, or withdraw it (docs/external-access.md); `ember expose --list` shows each publication and why it
// is (in)active; `ember expose token SERVICE --ttl 1h` prints a bearer token for a token-authenticated one.
import type { Command } from "commander";
import { parseDuration, readBoundedFile } from "../pki/index.js";
import { ask, daemonFlags, type SocketOpts } from "./daemon-client.js";
import { CliError, printJson, printTable } from "./output.js";

interface Published { hostname: string; node: string; service: string; port: number; clientAuth: string; active: boolean; rule?: string; edges: string[] }
interface Listed { node: string; edges: string[]; publications: { hostname: string; service: string; port: number; clientAuth: string; active: boolean; reason: string }[] }

const AUTH = ["none", "cert", "token"];

type ExposeOpts = SocketOpts & { public?: boolean; off?: boolean; list?: boolean; hostname?: string; clientAuth?: string; clientCa?: string; ttl?: string };

async function list(o: SocketOpts): Promise<void> {
  const r = await ask<Listed>(o, "exposed");
  if (o.json) return printJson(r);
  if (!r.publications.length) return void process.stdout.write(`no publications (edges of this tenant: ${r.edges.join(", ") || "none"})\n`);
  printTable(["HOSTNAME", "SERVICE", "PORT", "CLIENT AUTH", "STATE"],
    r.publications.map((p) => [p.hostname, p.service, p.port, p.clientAuth, p.active ? "active" : `inactive: ${p.reason}`]));
}

async function unexpose(o: SocketOpts, service: string): Promise<void> {
  const r = await ask(o, "unexpose", { service });
  if (o.json) return printJson(r);
  process.stdout.write(`${service} unpublished: the edges close its connections\n`);
}

async function token(o: ExposeOpts, service: string): Promise<void> {
  let ttlMs: number | undefined;
  try { ttlMs = o.ttl === undefined ? undefined : parseDuration(o.ttl); } catch (err) { throw new CliError((err as Error).message); }
  const r = await ask<{ token: string; hostname: string; expiresAt: string }>(o, "expose-token", { service, ...(ttlMs !== undefined ? { ttlMs } : {}) });
  if (o.json) return printJson(r);
  process.stdout.write(`${r.token}\n`);
  process.stderr.write(`bearer token for https://${r.hostname}/ until ${r.expiresAt} (send it as "Authorization: Bearer TOKEN")\n`);
}

export function registerExpose(program: Command): void {
  daemonFlags(program.command("expose")
    .description("publish a service of this node to the public edges (ember expose SERVICE --public); --list; ember expose token SERVICE")
    .argument("[service]", "service name (as given to ember serve), or \"token\" followed by the service")
    .argument("[token-service]", "with \"token\": the service the bearer token is for"))
    .option("--public", "publish to the mesh's public edges (needs an external policy rule for the service)")
    .option("--off", "unpublish (same as ember unexpose SERVICE)")
    .option("--list", "this node's publications, and why each is (in)active")
    .option("--hostname <name>", "the TLS server name (SNI) outside clients use (default SERVICE.NODE.TENANT)")
    .option("--client-auth <mode>", "none, cert (a client certificate from --client-ca) or token (ember expose token)", "none")
    .option("--client-ca <file>", "PEM CA whose client certificates the edge accepts (--client-auth cert)")
    .option("--ttl <duration>", "lifetime of a bearer token (ember expose token)", "1h")
    .action(async (service: string | undefined, tokenService: string | undefined, o: ExposeOpts) => {
      if (o.list || !service) return list(o);
      if (service === "token" && tokenService) return token(o, tokenService);
      if (tokenService) throw new CliError(`unexpected argument "${tokenService}": ember expose SERVICE --public, or ember expose token SERVICE`);
      if (o.off) return unexpose(o, service);
      if (!o.public) throw new CliError(`expose ${service}: say --public (publish to the public edges) or --off (unpublish)`);
      const clientAuth = o.clientAuth ?? "none";
      if (!AUTH.includes(clientAuth)) throw new CliError(`--client-auth "${clientAuth}": give none, cert or token`);
      if (clientAuth === "cert" && !o.clientCa) throw new CliError("--client-auth cert needs --client-ca FILE");
      if (clientAuth !== "cert" && o.clientCa) throw new CliError("--client-ca goes with --client-auth cert");
      let clientCaPem: string | undefined;
      try { clientCaPem = o.clientCa ? readBoundedFile(o.clientCa, "client CA") : undefined; } catch (err) { throw new CliError((err as Error).message); }
      const r = await ask<Published>(o, "expose", { service, clientAuth, ...(o.hostname ? { hostname: o.hostname } : {}), ...(clientCaPem ? { clientCaPem } : {}) });
      if (o.json) return printJson(r);
      process.stdout.write(`${r.service} published as https://${r.hostname}/ (client auth ${r.clientAuth}; edges: ${r.edges.join(", ") || "none yet"})\n`);
      if (r.rule) process.stdout.write(`allowed by: ${r.rule}\n`);
    });

  daemonFlags(program.command("unexpose")
    .description("withdraw a service from the public edges (their live connections close)")
    .argument("<service>", "service name"))
    .action((service: string, o: SocketOpts) => unexpose(o, service));
}
