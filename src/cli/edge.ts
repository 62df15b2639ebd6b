// `ember edge`: a public edge (docs/external-access.md). A mesh node like `ember up` (its certificate must grant
// role edge: enroll with a token made with --roles edge) plus a public TLS listener that routes outside clients
// by SNI to the services published to it, over the mesh, marked external. Foreground until SIGINT/SIGTERM.
import type { Command } from "commander";
import { loadNodeConfig, parseHostPort, type ConfigInput } from "../node/config.js";
import { Daemon } from "../node/daemon.js";
import { readBoundedFile } from "../pki/index.js";
import { EDGE_ROLE } from "../wire/coord/names.js";
import { EdgeListener, type PublicCert } from "../edge/listener.js";
import { EDGE_LIMIT_DEFAULTS, type EdgeLimits } from "../edge/limits.js";
import { enrollIfNeeded, timersFromEnv } from "./up.js";
import { CliError } from "./output.js";

const collect = (v: string, acc: string[]) => [...acc, v];

type EdgeOpts = Omit<ConfigInput, "cert" | "key" | "listen"> & {
  token?: string; name?: string; listen: string; meshListen?: string; cert: string[]; key: string[];
  rate: string; burst: string; perSource: string; maxConnections: string; handshakeTimeout: string;
};

function positive(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`${flag} "${text}" must be a positive number`);
  return n;
}

export function registerEdge(program: Command): void {
  program.command("edge")
    .description("run a public edge: a mesh node with role edge plus a TLS listener for the services published to it (ember expose --public)")
    .option("--state <dir>", "state directory (credentials, control socket)")
    .option("--ca <bundle>", "trust bundle (default STATE/bundle.pem)")
    .option("--coord <url>", "coordination server (replicas: URL1,URL2,...)")
    .option("--token <token>", "one-time enrollment token with role edge (used when STATE holds no certificate yet)")
    .option("--name <name>", "identity name to enroll under")
    .option("--listen <host:port>", "public TLS listener", "0.0.0.0:443")
    .option("--mesh-listen <host:port>", "the node's UDP socket (default: any port)")
    .option("--cert <file>", "public certificate chain (PEM), repeatable: picked per hostname by its names", collect, [])
    .option("--key <file>", "private key of each --cert, in the same order", collect, [])
    .option("--rate <n>", "new connections per second per source address", String(EDGE_LIMIT_DEFAULTS.ratePerSource))
    .option("--burst <n>", "connections a source may open at once", String(EDGE_LIMIT_DEFAULTS.burstPerSource))
    .option("--per-source <n>", "concurrent connections per source address", String(EDGE_LIMIT_DEFAULTS.concurrentPerSource))
    .option("--max-connections <n>", "concurrent external connections in all", String(EDGE_LIMIT_DEFAULTS.maxConnections))
    .option("--handshake-timeout <ms>", "TLS handshake (and token request head) deadline", String(EDGE_LIMIT_DEFAULTS.handshakeTimeoutMs))
    .option("--socket <path>", "control socket path (default STATE/ember.sock)")
    .option("--log-level <level>", "log level")
    .option("--portmap <protocols>", "port mapping protocols to try at the gateway, in order (default pcp,nat-pmp,upnp)")
    .option("--no-portmap", "ask the gateway for no port mapping (NAT-PMP, PCP, UPnP)")
    .action(async (o: EdgeOpts) => {
      if (!o.cert.length || o.cert.length !== o.key.length) throw new CliError("give each public certificate with its key: --cert FILE --key FILE (repeatable, in pairs)");
      let certs: PublicCert[];
      try { certs = o.cert.map((c, i) => ({ certPem: readBoundedFile(c, "public certificate"), keyPem: readBoundedFile(o.key[i], "public key") })); } catch (err) { throw new CliError((err as Error).message); }
      const pub = parseHostPort(o.listen, "--listen");
      const limits: EdgeLimits = {
        ratePerSource: positive(o.rate, "--rate"), burstPerSource: positive(o.burst, "--burst"), concurrentPerSource: positive(o.perSource, "--per-source"),
        maxConnections: positive(o.maxConnections, "--max-connections"), handshakeTimeoutMs: positive(o.handshakeTimeout, "--handshake-timeout"),
      };
      const config = await loadNodeConfig({ ...o, listen: o.meshListen, cert: undefined, key: undefined });
      await enrollIfNeeded(config, o);
      const daemon = new Daemon({ config, timers: timersFromEnv() });
      // Fail closed: without role edge every node would refuse this edge's flows; say so now, not per connection.
      if (!daemon.identity().roles.includes(EDGE_ROLE)) {
        throw new CliError(`${daemon.identity().name}'s certificate grants no role "${EDGE_ROLE}": enroll it with a token made with --roles ${EDGE_ROLE}`);
      }
      if (!config.coordUrl) throw new CliError("an edge learns its publications from the coordination server: give --coord URL");
      const mesh = await daemon.start();
      const edge = new EdgeListener({ dialer: daemon.flows, log: daemon.log.child({ layer: "edge" }), certs, limits, tenant: daemon.identity().tenant });
      const apply = () => { const v = daemon.mesh?.peerMap?.edge; edge.setPublications(v?.publications ?? [], v?.tokenKeyPem ?? ""); };
      daemon.events.on("peers", apply);
      apply();
      daemon.control.register("edge", () => edge.stats());
      let addr;
      try { addr = await edge.listen(pub.host, pub.port); } catch (err) {
        await daemon.stop();
        throw new CliError(`public listener ${o.listen}: ${(err as Error).message}`, 1);
      }
      process.stdout.write(JSON.stringify({ event: "edge", name: daemon.name, public: addr, mesh, control: config.controlSocket }) + "\n");
      await new Promise<void>((resolve) => { process.once("SIGINT", resolve); process.once("SIGTERM", resolve); });
      await edge.close();
      await daemon.stop();
    });
}
