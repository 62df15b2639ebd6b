// The flags of `ember relay` and relay/main.ts, and their parsers (no server code here: the CLI loads this eagerly).
import { Command, Option } from "commander";
import { isIP } from "node:net";
import { ANY_HOST } from "../src/net/any-address.js";
import { RELAY_DEFAULT_PORT, RELAY_DEFAULTS, STUN_DEFAULT_PORT } from "../src/wire/relay.js";

export interface HostPort { host: string; port: number }

export class RelayUsageError extends Error {}

export interface RelayFlags {
  listen: string; stun: string; cert: string; key: string; ca: string; name?: string; revocation?: string; coord?: string;
  metrics?: string; revocationPoll?: string; rate?: string; burst?: string; queue?: string; maxConns?: string; idleTimeout?: string; logLevel?: string;
  maxPending?: string; maxPendingPerSource?: string; handshakeTimeout?: string;
}

/** HOST:PORT, :PORT, PORT or [v6]:PORT; port 0 asks the OS for a free one. */
export function parseListen(text: string, what: string, defaultPort: number): HostPort {
  const t = text.trim();
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*))(?::(\d{1,5}))?$/.exec(t) ?? /^()()(\d{1,5})$/.exec(t);
  if (!m) throw new RelayUsageError(`${what}: "${text}" is not HOST:PORT`);
  // No host: every address of both families (src/net/any-address.ts).
  const host = m[1] ?? (m[2] || ANY_HOST);
  if (/^\d+$/.test(t)) return checkPort({ host: ANY_HOST, port: Number(t) }, what);
  if (m[1] && isIP(m[1]) !== 6) throw new RelayUsageError(`${what}: "${m[1]}" is not an IPv6 address`);
  return checkPort({ host, port: m[3] === undefined ? defaultPort : Number(m[3]) }, what);
}

function checkPort(hp: HostPort, what: string): HostPort {
  if (hp.port > 65535) throw new RelayUsageError(`${what}: port ${hp.port} is out of range`);
  return hp;
}

/** Byte counts like 65536, 512k, 4M, 4MiB (k/M/G are powers of 1024). */
export function parseBytes(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?$/i.exec(text.trim());
  if (!m) throw new RelayUsageError(`${what}: "${text}" is not a byte count (e.g. 65536, 512k, 4M)`);
  const v = Math.round(Number(m[1]) * 1024 ** " kmg".indexOf((m[2] || " ").toLowerCase()));
  if (v <= 0) throw new RelayUsageError(`${what}: must be positive`);
  return v;
}

export function addRelayOptions(cmd: Command): Command {
  return cmd
    .requiredOption("--cert <file>", "relay certificate (leaf with role \"relay\")")
    .requiredOption("--key <file>", "relay private key")
    .requiredOption("--ca <file>", "trust bundle (root + intermediate PEM)")
    .option("--listen <host:port>", "TLS listen address for nodes", `:${RELAY_DEFAULT_PORT}`)
    .option("--stun <host:port>", "STUN (UDP) listen address, or \"off\"", `:${STUN_DEFAULT_PORT}`)
    .option("--name <name>", "relay name; must equal the certificate's identity name")
    .option("--revocation <file>", "signed revocation list file, re-read when it changes (and on SIGHUP)")
    .option("--coord <url>", "coordination server URL (replicas: URL1,URL2,...); GET /v1/revocation is polled with the relay's certificate")
    .option("--revocation-poll <duration>", `coordination server poll interval (default ${RELAY_DEFAULTS.revocationPollMs / 1000}s)`)
    .option("--metrics <host:port>", "plain-HTTP /status and /metrics listener (bind to loopback)")
    .option("--rate <bytes/s>", `per-node forwarding rate (default ${RELAY_DEFAULTS.rateBytesPerSec})`)
    .option("--burst <bytes>", `per-node burst (default ${RELAY_DEFAULTS.burstBytes})`)
    .option("--queue <bytes>", `per-destination write buffer limit (default ${RELAY_DEFAULTS.queueBytes})`)
    .option("--max-conns <n>", `TCP connection limit, authenticated or not (default ${RELAY_DEFAULTS.maxConnections}; lowered to fit ulimit -n)`)
    .option("--max-pending <n>", `connections not yet authenticated; when full the oldest is closed (default ${RELAY_DEFAULTS.maxPending}, at most half of --max-conns)`)
    .option("--max-pending-per-source <n>", `connections not yet authenticated from one address (IPv6: one /64) (default ${RELAY_DEFAULTS.maxPendingPerSource})`)
    .option("--handshake-timeout <duration>", `TLS handshake and certificate check deadline, from accept (default ${RELAY_DEFAULTS.handshakeTimeoutMs / 1000}s)`)
    .option("--idle-timeout <duration>", `close connections silent this long (default ${RELAY_DEFAULTS.idleTimeoutMs / 1000}s)`)
    .addOption(new Option("--log-level <level>", "log level").choices(["debug", "info", "warn", "error"]).default(process.env.EMBER_LOG_LEVEL ?? "info"));
}

