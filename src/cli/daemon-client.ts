// What every verb that talks to a running daemon shares: which daemon (--state, --socket or EMBER_SOCKET),
// the request over its control socket, and the common flags.
import type { Command } from "commander";
import { join } from "node:path";
import { controlHold, controlRequest, type HeldRequest } from "../node/control-socket.js";
import { CliError } from "./output.js";

export interface SocketOpts { state?: string; socket?: string; json?: boolean }

export function socketPath(o: SocketOpts): string {
  if (o.socket) return o.socket;
  if (o.state) return join(o.state, "ember.sock");
  if (process.env.EMBER_SOCKET) return process.env.EMBER_SOCKET;
  throw new CliError("which daemon? give --state DIR or --socket PATH (or set EMBER_SOCKET)");
}

/** One control request; a refusal or an absent daemon exits 1 with the daemon's message. */
export async function ask<T>(o: SocketOpts, method: string, params: Record<string, unknown> = {}, timeoutMs?: number): Promise<T> {
  try {
    return await controlRequest<T>(socketPath(o), method, params, timeoutMs);
  } catch (err) {
    throw new CliError((err as Error).message, 1);
  }
}

/** A request that holds its connection (what it sets up lasts as long as this process holds it); errors exit 1. */
export async function hold<T>(o: SocketOpts, method: string, params: Record<string, unknown>, onEvent: (e: Record<string, unknown>) => void): Promise<HeldRequest<T>> {
  try {
    return await controlHold<T>(socketPath(o), method, params, onEvent);
  } catch (err) {
    throw new CliError((err as Error).message, 1);
  }
}

/** --state, --socket and --json on a daemon verb. */
export function daemonFlags(c: Command): Command {
  return c.option("--state <dir>", "the daemon's state directory").option("--socket <path>", "control socket").option("--json", "machine-readable output");
}
