// `ember up`: run the node daemon in the foreground until SIGINT/SIGTERM.
import type { Command } from "commander";
import { existsSync } from "node:fs";
import { hostname } from "node:os";
import { loadNodeConfig, type ConfigInput, type NodeConfig } from "../node/config.js";
import { Daemon } from "../node/daemon.js";
import { FAIL_BACK_ENV, parseFailBack } from "../coord/fail-back.js";
import { CliError } from "./output.js";
import { checkControlSocketDir, checkPortsFree, checkServerBeforeEnrolling, prepareStateDir, PreflightError } from "../node/preflight.js";
import { classifyConnectError, describeConnectFailure, urlTarget } from "../net/connect-errors.js";
import { RequestError } from "../pki/mtls-client.js";

const collect = (v: string, acc: string[]) => [...acc, v];

export function registerUp(program: Command): void {
  program.command("up")
    .description("run the node daemon (foreground)")
    .option("--config <file>", "YAML config file")
    .option("--state <dir>", "state directory (control socket; credentials when enrolled)")
    .option("--cert <file>", "certificate (default STATE/cert.pem)")
    .option("--key <file>", "private key (default STATE/key.pem)")
    .option("--ca <bundle>", "trust bundle (default STATE/bundle.pem)")
    .option("--listen <host:port>", "UDP listen address (default: a free port on both IPv4 and IPv6; 0.0.0.0:PORT for IPv4 only)", undefined)
    .option("--peer <name=host:port>", "static peer (repeatable)", collect, [])
    .option("--socket <path>", "control socket path (default STATE/ember.sock)")
    .option("--coord <url>", "coordination server, e.g. https://coord.example:8443 (replicas: URL1,URL2,...)")
    .option("--token <token>", "one-time enrollment token (used when STATE holds no certificate yet)")
    .option("--name <name>", "identity name to enroll under (default: host name)")
    .option("--enroll-only", "enroll with --token and exit without starting the daemon (provisioning)")
    .option("--log-level <level>", "log level", undefined)
    .option("--mtu <bytes>", "path MTU of direct paths, 1280-1500 (default 1280: fits every path)")
    .option("--policy <file>", "local policy file, for a mesh without a coordination server")
    .option("--metrics <[127.0.0.1:]port>", "Prometheus metrics on this loopback port (GET /metrics)")
    .option("--proxy <[127.0.0.1:]port>", "run the SOCKS5/HTTP proxy on this loopback port (names resolve through the mesh)")
    .option("--portmap <protocols>", "port mapping protocols to try at the gateway, in order (default pcp,nat-pmp,upnp)")
    .option("--no-portmap", "ask the gateway for no port mapping (NAT-PMP, PCP, UPnP)")
    .option("--tun <name>", "TUN mode: a TUN device with this node's overlay address (needs root and the native addon)")
    .action(async (o: ConfigInput & { token?: string; name?: string; enrollOnly?: boolean }) => {
      const config = await loadNodeConfig(o);
      // Checked before anything is enrolled or bound: the CoordClient would refuse it later, less clearly.
      try { parseFailBack(process.env[FAIL_BACK_ENV]); } catch (err) { throw new CliError((err as Error).message); }
      if (o.enrollOnly && !o.token) throw new CliError("--enroll-only needs --token TOKEN and --coord URL");
      if (o.enrollOnly && existsSync(config.certPath)) throw new CliError(`${config.certPath} exists: this state directory is already enrolled`);
      // What needs no server (state directory, ports) is checked before a one-time token can be spent.
      await preflight(() => prepareStateDir(config.stateDir));
      if (!o.enrollOnly) await preflight(async () => { checkControlSocketDir(config.controlSocket); await checkPortsFree(config); });
      if ((await enrollIfNeeded(config, o)) && o.enrollOnly) return;
      let daemon: Daemon | undefined;
      let addr: { host: string; port: number };
      try {
        daemon = new Daemon({ config, timers: timersFromEnv() });
        addr = await daemon.start();
      } catch (err) {
        // Nothing the user asked for runs half-started: what did start is stopped, and the process exits.
        await daemon?.stop().catch(() => undefined);
        // Name the cause (a wrong clock, most often) for `ember status` and the console, then exit 1.
        const { explainStartFailure } = await import("./health.js");
        return explainStartFailure(err as Error, config);
      }
      // One line, so supervisors and tests can read the bound address.
      process.stdout.write(JSON.stringify({ event: "up", name: daemon.name, listen: addr, control: config.controlSocket }) + "\n");
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
      await daemon.stop();
    });
}

/** Enrolls with --token when the state directory holds no certificate yet (true when it enrolled); `ember edge` too. */
export async function enrollIfNeeded(config: NodeConfig, o: { token?: string; name?: string }): Promise<boolean> {
  if (o.token && !existsSync(config.certPath)) {
    if (!config.coordUrl) throw new CliError("--token needs --coord URL (the server that issued it)");
    const { enroll } = await import("../coord/client.js");
    const name = o.name ?? hostname().toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 63);
    await preflight(() => checkServerBeforeEnrolling(config.coordReplicas));
    let r;
    try {
      r = await enroll({ coordUrl: config.coordReplicas.join(","), token: o.token, name, stateDir: config.stateDir });
    } catch (err) {
      throw enrollFailure(err as Error, config.coordUrl);
    }
    process.stderr.write(`enrolled as ${name} (tenant ${r.tenant}, certificate until ${r.notAfter}) in ${config.stateDir}\n`);
    return true;
  }
  if (!existsSync(config.certPath)) throw new CliError(`no certificate at ${config.certPath}: enroll with --coord URL --token TOKEN, or give --cert/--key/--ca`);
  return false;
}

/** Runs pre-flight checks; their failure is the CLI's one-line error with its exit code. */
async function preflight(check: () => void | Promise<void>): Promise<void> {
  try { await check(); } catch (err) {
    if (err instanceof PreflightError) throw new CliError(err.message, err.exitCode);
    throw err;
  }
}

/**
 * A refused enrollment (token used or expired, name taken) is the operator's input to fix: exit 2 with the
 * server's reason. A server that cannot be reached is the outside world: exit 1 naming the server and the cause.
 */
function enrollFailure(err: Error, coordUrl: string | undefined): CliError {
  if (err instanceof RequestError || !isNetworkFailure(err)) return new CliError(err.message, 2);
  const d = describeConnectFailure(classifyConnectError(err), "the coordination server", urlTarget(coordUrl), (err as NodeJS.ErrnoException).code ?? err.message);
  return new CliError(`enrollment failed: ${d.cause}; fix: ${d.fix}`, 1);
}

/** A system or TLS error of the connection itself (it has a code), not a refusal put in words. */
function isNetworkFailure(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === "string" && classifyConnectError(err as NodeJS.ErrnoException) !== "other";
}

/** Tests shorten session timers (rekey, keepalive, dead-peer) through EMBER_TEST_TIMERS='{"rekeyAfterTimeMs":2000}'. */
export function timersFromEnv() {
  const raw = process.env.EMBER_TEST_TIMERS;
  if (!raw) return undefined;
  try { return JSON.parse(raw) as Record<string, number>; } catch { throw new Error("EMBER_TEST_TIMERS is not JSON"); }
}
