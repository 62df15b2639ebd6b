// `ember coord`: runs the coordination server in the foreground (logs: JSON lines on stderr).
import type { Command } from "commander";
import { parseHostPort } from "../node/config.js";
import { parseDuration } from "../pki/index.js";
import { COORD_CONNECTION_DEFAULTS, type CoordConnectionLimits } from "../coord/limits.js";
import type { MapRelay } from "../wire/coord/map.js";
import { LABEL } from "../wire/coord/names.js";
import { CliError } from "./output.js";

/** --relay NAME=HOST:PORT[:STUNPORT] */
const RELAY_SPEC = new RegExp(`^(${LABEL})=([^:\\s]+|\\[[0-9a-fA-F:.]+\\]):(\\d{1,5})(?::(\\d{1,5}))?$`);

function parseRelay(spec: string): MapRelay {
  const m = RELAY_SPEC.exec(spec);
  if (!m) throw new CliError(`--relay "${spec}": expected NAME=HOST:PORT[:STUNPORT]`);
  const port = Number(m[3]);
  const stunPort = m[4] ? Number(m[4]) : undefined;
  if (port < 1 || port > 65535 || (stunPort !== undefined && (stunPort < 1 || stunPort > 65535))) throw new CliError(`--relay "${spec}": port out of range`);
  return { name: m[1], host: m[2].replace(/^\[|\]$/g, ""), port, ...(stunPort ? { stunPort } : {}) };
}

interface CoordFlags {
  data: string; store?: string; caDir: string; listen: string; relay: string[]; minCertTtl?: string; policyTimeout?: string;
  maxConns?: string; maxPending?: string; maxPendingPerSource?: string; handshakeTimeout?: string; anonymousTimeout?: string;
  consoleListen?: string; consoleCert?: string; consoleKey?: string; telemetryRetention?: string; metrics?: string;
}

function connectionLimitsFrom(o: CoordFlags): Partial<CoordConnectionLimits> {
  const int = (text: string, flag: string) => {
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) < 1) throw new CliError(`${flag}: "${text}" is not a positive integer`);
    return Number(text);
  };
  const dur = (text: string, flag: string) => {
    try { return parseDuration(text); } catch (err) { throw new CliError(`${flag}: ${(err as Error).message}`); }
  };
  const l: Partial<CoordConnectionLimits> = {};
  if (o.maxConns) l.maxConnections = int(o.maxConns, "--max-conns");
  if (o.maxPending) l.maxPending = int(o.maxPending, "--max-pending");
  if (o.maxPendingPerSource) l.maxPendingPerSource = int(o.maxPendingPerSource, "--max-pending-per-source");
  if (o.handshakeTimeout) l.handshakeTimeoutMs = dur(o.handshakeTimeout, "--handshake-timeout");
  if (o.anonymousTimeout) l.anonymousTimeoutMs = dur(o.anonymousTimeout, "--anonymous-timeout");
  return l;
}

export function registerCoord(program: Command): void {
  program.command("coord")
    .description("run the coordination server (enrollment, rotation, revocation, policy, peer maps)")
    .requiredOption("--data <dir>", "data directory (SQLite database unless --store; token signing key, audit log, telemetry)")
    .option("--store <url>", "postgres://USER@HOST:PORT/DATABASE: state in PostgreSQL, shared by active-active replicas (docs/coord.md)")
    .requiredOption("--ca-dir <dir>", "CA directory holding the cluster intermediate (from ember ca init)")
    .option("--listen <host:port>", "HTTPS listen address", "127.0.0.1:8443")
    .option("--relay <name=host:port[:stun]>", "relay handed to nodes in the peer map (repeatable)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option("--min-cert-ttl <duration>", "lowest certificate TTL tokens may ask for (default 5m; lower only for tests)")
    .option("--policy-timeout <duration>", "deadline for checking one uploaded policy (default 20s)")
    .option("--max-conns <n>", `TCP connection limit, authenticated or not (default ${COORD_CONNECTION_DEFAULTS.maxConnections}; lowered to fit ulimit -n)`)
    .option("--max-pending <n>", `connections without a verified client certificate; when full the oldest is closed (default ${COORD_CONNECTION_DEFAULTS.maxPending})`)
    .option("--max-pending-per-source <n>", `of those, from one address (IPv6: one /64) (default ${COORD_CONNECTION_DEFAULTS.maxPendingPerSource})`)
    .option("--handshake-timeout <duration>", `TLS handshake deadline (default ${COORD_CONNECTION_DEFAULTS.handshakeTimeoutMs / 1000}s)`)
    .option("--anonymous-timeout <duration>", `lifetime of a connection without a client certificate (default ${COORD_CONNECTION_DEFAULTS.anonymousTimeoutMs / 1000}s)`)
    .option("--console-listen <host:port>", "serve the web console (dashboard) on its own HTTPS port (docs/dashboard.md)")
    .option("--console-cert <file>", "the console's web certificate (ECDSA or RSA; default: self-signed, kept in --data)")
    .option("--console-key <file>", "its private key")
    .option("--telemetry-retention <duration>", "keep node telemetry this long (default 7d)")
    .option("--metrics <host:port>", "Prometheus metrics on plain HTTP (bind to loopback or a management network)")
    .action(async (o: CoordFlags) => {
      let host: string, port: number;
      try { ({ host, port } = parseHostPort(o.listen, "--listen", "127.0.0.1")); } catch (err) { throw new CliError((err as Error).message); }
      const envMin = process.env.EMBER_COORD_MIN_CERT_TTL;
      const minText = o.minCertTtl ?? envMin;
      let minCertTtlMs: number | undefined;
      if (minText) {
        try { minCertTtlMs = parseDuration(minText); } catch (err) { throw new CliError(`--min-cert-ttl: ${(err as Error).message}`); }
      }
      let policyTimeoutMs: number | undefined;
      if (o.policyTimeout) {
        try { policyTimeoutMs = parseDuration(o.policyTimeout); } catch (err) { throw new CliError(`--policy-timeout: ${(err as Error).message}`); }
      }
      const connectionLimits = connectionLimitsFrom(o);
      const { openStore, StoreSpecError } = await import("../coord/open-store.js");
      let store;
      try { store = openStore(o.store, o.data); } catch (err) {
        if (err instanceof StoreSpecError) throw new CliError(err.message);
        throw err;
      }
      const relays = o.relay.map(parseRelay);
      let consoleOpt: { host: string; port: number; certFile?: string; keyFile?: string } | undefined;
      if (o.consoleListen) {
        try { consoleOpt = { ...parseHostPort(o.consoleListen, "--console-listen", "127.0.0.1"), certFile: o.consoleCert, keyFile: o.consoleKey }; } catch (err) { throw new CliError((err as Error).message); }
      }
      let telemetryRetentionMs: number | undefined;
      if (o.telemetryRetention) {
        try { telemetryRetentionMs = parseDuration(o.telemetryRetention); } catch (err) { throw new CliError(`--telemetry-retention: ${(err as Error).message}`); }
      }
      // Loaded on use: the server pulls in SQLite and the policy engine, which other verbs do not need.
      const { CoordServer } = await import("../coord/server.js");
      let server: InstanceType<typeof CoordServer>;
      try {
        let metrics: { host: string; port: number } | undefined;
        if (o.metrics) metrics = parseHostPort(o.metrics, "--metrics", "127.0.0.1");
        server = new CoordServer({ dataDir: o.data, store, caDir: o.caDir, host, port, relays, minCertTtlMs, policyTimeoutMs, connectionLimits, console: consoleOpt, telemetryRetentionMs, metrics });
        const url = await server.start();
        process.stdout.write(`coordination server ${url} (root pin ${server.pin})\n`);
        if (server.metricsPort) process.stdout.write(`metrics http://${metrics!.host}:${server.metricsPort}/metrics\n`);
        if (server.consoleUrl) process.stdout.write(`console ${server.consoleUrl} (certificate sha256 ${server.consoleFingerprint})\n`);
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      let closing = false;
      const shutdown = (sig: string) => {
        if (closing) return;
        closing = true;
        server.log.info({ event: "shutdown", signal: sig }, "shutting down");
        void server.close().finally(() => process.exit(0));
      };
      process.on("SIGTERM", () => shutdown("SIGTERM"));
      process.on("SIGINT", () => shutdown("SIGINT"));
      await new Promise(() => {}); // serve until a signal
    });
}

