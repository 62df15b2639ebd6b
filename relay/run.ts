// Start-up shared by `ember relay` and relay/main.ts: flags -> server, print the bound addresses as ONE JSON
// line on stdout (logs are JSON lines on stderr), serve until SIGTERM/SIGINT; SIGHUP re-reads the revocation file.
import { createJsonLogger } from "../src/log/json-logger.js";
import { loadTlsCredentials, parseDuration, Verifier } from "../src/pki/index.js";
import { coordOrigins } from "../src/wire/coord-origins.js";
import { RELAY_DEFAULT_PORT, STUN_DEFAULT_PORT } from "../src/wire/relay.js";
import { parseBytes, parseListen, RelayUsageError, type RelayFlags } from "./options.js";
import { RelayServer, type RelayLimits } from "./server.js";

/** Builds the server from flags; throws RelayUsageError for bad flags or unusable files. */
export function relayFromFlags(o: RelayFlags): RelayServer {
  const limits: Partial<RelayLimits> = {};
  if (o.rate) limits.rateBytesPerSec = parseBytes(o.rate, "--rate");
  if (o.burst) limits.burstBytes = parseBytes(o.burst, "--burst");
  if (o.queue) limits.queueBytes = parseBytes(o.queue, "--queue");
  if (o.maxConns) limits.maxConnections = positiveInt(o.maxConns, "--max-conns");
  if (o.maxPending) limits.maxPending = positiveInt(o.maxPending, "--max-pending");
  if (o.maxPendingPerSource) limits.maxPendingPerSource = positiveInt(o.maxPendingPerSource, "--max-pending-per-source");
  if (o.idleTimeout) {
    try { limits.idleTimeoutMs = parseDuration(o.idleTimeout); } catch (err) { throw new RelayUsageError(`--idle-timeout: ${(err as Error).message}`); }
  }
  if (o.handshakeTimeout) {
    try { limits.handshakeTimeoutMs = parseDuration(o.handshakeTimeout); } catch (err) { throw new RelayUsageError(`--handshake-timeout: ${(err as Error).message}`); }
  }
  if (o.revocationPoll) {
    try { limits.revocationPollMs = parseDuration(o.revocationPoll); } catch (err) { throw new RelayUsageError(`--revocation-poll: ${(err as Error).message}`); }
  }
  // One URL or several replicas (URL1,URL2): the revocation poll moves on to the next when one fails.
  if (o.coord) {
    try { coordOrigins(o.coord); } catch (err) { throw new RelayUsageError(`--coord: ${(err as Error).message}`); }
  }
  const listen = parseListen(o.listen, "--listen", RELAY_DEFAULT_PORT);
  const stun = o.stun === "off" ? undefined : parseListen(o.stun, "--stun", STUN_DEFAULT_PORT);
  const metrics = o.metrics ? parseListen(o.metrics, "--metrics", 9090) : undefined;
  let creds, verifier;
  try {
    creds = loadTlsCredentials(o.cert, o.key, o.ca);
    verifier = new Verifier({ bundlePem: creds.bundlePem });
  } catch (err) {
    throw new RelayUsageError((err as Error).message);
  }
  const log = createJsonLogger({ level: o.logLevel ?? "info", base: { svc: "relay" }, isoTime: true, destination: 2 });
  try {
    return new RelayServer({ listen, stun, metrics, name: o.name, creds, verifier, log, limits, revocationFile: o.revocation, coordUrl: o.coord });
  } catch (err) {
    throw new RelayUsageError((err as Error).message);
  }
}

function positiveInt(text: string, flag: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) throw new RelayUsageError(`${flag}: "${text}" is not a positive integer`);
  return Number(text);
}

/** Starts, prints the JSON line, serves until SIGTERM/SIGINT; SIGHUP re-reads the revocation file. */
export async function runRelay(o: RelayFlags): Promise<never> {
  const relay = relayFromFlags(o);
  let addrs;
  try { addrs = await relay.start(); } catch (err) {
    await relay.close().catch(() => {});
    throw new RelayUsageError(`cannot start: ${(err as Error).message}`);
  }
  process.stdout.write(JSON.stringify({ event: "relay_listening", ...addrs }) + "\n");
  let closing = false;
  const shutdown = () => {
    if (closing) return;
    closing = true;
    void relay.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3_000).unref();
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
  process.on("SIGHUP", () => relay.reload());
  return new Promise<never>(() => {});
}
