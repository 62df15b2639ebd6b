// `ember serve`: expose a local service on the mesh through the running daemon (or withdraw / list them).
// Peers see it in their maps as SERVICE.NODE; policy decides who may reach it.
import type { Command } from "commander";
import { ask, daemonFlags, type SocketOpts } from "./daemon-client.js";
import { CliError, printJson, printTable } from "./output.js";

interface ServiceRow { name: string; port: number; protocol: string; to: string }

function show(o: SocketOpts, rows: ServiceRow[]): void {
  if (o.json) return printJson(rows);
  if (!rows.length) { process.stdout.write("no services\n"); return; }
  printTable(["SERVICE", "MESH PORT", "PROTOCOL", "LOCAL TARGET"], rows.map((r) => [r.name, r.port, r.protocol, r.to]));
}

export function registerServe(program: Command): void {
  daemonFlags(program.command("serve")
    .description("expose a local service on the mesh by name (ember serve NAME --to 127.0.0.1:PORT --protocol https|tcp|udp)")
    .argument("[name]", "service name (a lowercase DNS label)"))
    .option("--to <host:port>", "where accepted flows go, e.g. 127.0.0.1:8080")
    .option("--protocol <p>", "https, tcp or udp", "tcp")
    .option("--port <n>", "port peers reach it on (default: 443 for https, else the local port)")
    .option("--remove", "withdraw the named service")
    .option("--list", "list this node's services")
    .action(async (name: string | undefined, o: SocketOpts & { to?: string; protocol: string; port?: string; remove?: boolean; list?: boolean }) => {
      if (o.list || (!name && !o.remove)) return show(o, await ask<ServiceRow[]>(o, "services"));
      if (!name) throw new CliError("--remove needs the service NAME");
      if (o.remove) return show(o, await ask<ServiceRow[]>(o, "unserve", { name }));
      if (!o.to) throw new CliError(`serve ${name}: give --to HOST:PORT (where the service listens on this machine)`);
      const port = o.port === undefined ? undefined : Number(o.port);
      show(o, await ask<ServiceRow[]>(o, "serve", { name, to: o.to, protocol: o.protocol, port }));
    });
}
