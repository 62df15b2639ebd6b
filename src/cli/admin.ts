// What every admin verb shares: the connection flags and how a failed call becomes a CLI error.
import type { Command } from "commander";
import { AdminConfigError } from "../coord/admin-client.js";
import { RequestError } from "../pki/mtls-client.js";
import { CliError } from "./output.js";

/** Adds --coord/--cert/--key/--ca/--state to a verb (each also from EMBER_COORD/CERT/KEY/CA). */
export function withAdminFlags(cmd: Command): Command {
  return cmd
    .option("--coord <url>", "coordination server URL; replicas: URL1,URL2,... tried in order (env EMBER_COORD)")
    .option("--cert <file>", "admin certificate (env EMBER_CERT)")
    .option("--key <file>", "admin private key (env EMBER_KEY)")
    .option("--ca <bundle>", "trust bundle (env EMBER_CA)")
    .option("--state <dir>", "directory holding cert.pem, key.pem and bundle.pem");
}

/**
 * Runs an admin call for the CLI: configuration faults and server refusals exit 2 naming the server's
 * reason code; an unreachable server says so.
 */
export async function adminCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CliError) throw err;
    if (err instanceof AdminConfigError) throw new CliError(err.message);
    if (err instanceof RequestError) {
      throw Object.assign(new CliError(`coordination server refused (${err.status} ${err.code}): ${err.detail}`), { body: err.body });
    }
    throw new CliError(`coordination server unreachable or refused: ${(err as Error).message}`);
  }
}
