// `ember resolve` and `ember forward`: names and port forwards through the running daemon.
import type { Command } from "commander";
import { parseForwardTarget, ForwardError } from "../access/index.js";
import { ask, daemonFlags, hold, type SocketOpts } from "./daemon-client.js";
import { CliError, printJson } from "./output.js";

interface ResolveAnswer { ok: boolean; text: string; json: Record<string, unknown> }
interface ForwardStats { listen: string; to: string; protocol: string }

export function registerAccess(program: Command): void {
  daemonFlags(program.command("resolve")
    .description("what a name resolves to through the peer map, and why (or why not): NAME, NAME.TENANT, SERVICE.NAME")
    .argument("<name>", "a name as a client would type it"))
    .option("--port <n>", "the port a client would ask for")
    .option("--udp", "resolve for a UDP flow")
    .action(async (name: string, o: SocketOpts & { port?: string; udp?: boolean }) => {
      const port = o.port === undefined ? undefined : Number(o.port);
      if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) throw new CliError(`--port ${o.port}: give 1-65535`);
      const r = await ask<ResolveAnswer>(o, "resolve", { name, port, protocol: o.udp ? "udp" : "tcp" });
      if (o.json) printJson(r.json);
      else process.stdout.write(r.text + "\n");
      if (!r.ok) process.exitCode = 1;
    });

  daemonFlags(program.command("forward")
    .description("forward a local port to a mesh name until interrupted (ember forward 5432 db-1:5432, ember forward 5353 dns.db-1/udp)")
    .argument("<local-port>", "loopback port to listen on (0: any free port)")
    .argument("<target>", "NAME[:PORT][/tcp|/udp]"))
    .option("--detach", "leave the forward running in the daemon and exit (stop it with --remove)")
    .option("--remove", "stop the forward on <local-port> (target ignored)")
    .action(async (localPort: string, target: string, o: SocketOpts & { detach?: boolean; remove?: boolean }) => {
      const listenPort = Number(localPort);
      if (!Number.isInteger(listenPort) || listenPort < 0 || listenPort > 65535) throw new CliError(`local port "${localPort}" must be 0-65535`);
      if (o.remove) {
        const r = await ask(o, "unforward", { listenPort });
        return o.json ? printJson(r) : void process.stdout.write(`forward on 127.0.0.1:${listenPort} stopped\n`);
      }
      let t;
      try { t = parseForwardTarget(target); } catch (err) { throw new CliError(err instanceof ForwardError ? err.message : String(err)); }
      if (o.detach) {
        const f = await ask<ForwardStats>(o, "forward", { listenPort, host: t.host, port: t.port, protocol: t.protocol });
        return o.json ? printJson(f) : void process.stdout.write(`forwarding ${f.listen} -> ${f.to} (${f.protocol}); stop it with ember forward ${f.listen.split(":").pop()} --remove\n`);
      }
      // In the foreground the forward lives as long as this connection to the daemon: Ctrl-C, a kill or a crash of
      // this process ends it, and the daemon tells us each client it refused (a policy denial names its rule).
      const held = await hold<ForwardStats>(o, "forward", { listenPort, host: t.host, port: t.port, protocol: t.protocol, hold: true }, (e) => {
        if (e.event === "refused") process.stderr.write(`ember: ${e.from} -> ${e.to} refused (${e.code}): ${e.reason}\n`);
      });
      const f = held.result;
      if (o.json) printJson(f);
      else process.stdout.write(`forwarding ${f.listen} -> ${f.to} (${f.protocol}); Ctrl-C stops it\n`);
      const signal = await Promise.race([
        new Promise<string>((resolve) => { process.once("SIGINT", () => resolve("SIGINT")); process.once("SIGTERM", () => resolve("SIGTERM")); }),
        held.closed.then(() => "daemon"),
      ]);
      if (signal === "daemon") throw new CliError(`the daemon closed the forward on ${f.listen} (it stopped?)`, 1);
      // Unforward first, so the port is free when we exit; closing the connection alone would also end it.
      await ask(o, "unforward", { listenPort: Number(f.listen.split(":").pop()) }).catch(() => undefined);
      held.release();
      await held.closed;
    });
}
