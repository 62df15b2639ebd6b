// `ember relay`: runs the relay server in the foreground (relay/; the same flags as relay/main.ts).
import type { Command } from "commander";
import { addRelayOptions, type RelayFlags } from "../../relay/options.js";
import { CliError } from "./output.js";

export function registerRelay(program: Command): void {
  addRelayOptions(program.command("relay"))
    .description("run a relay: TLS for nodes (client certificates), opaque frames by identity, STUN over UDP")
    .action(async (o: RelayFlags) => {
      // Loaded on use: only this verb needs the server.
      const { runRelay } = await import("../../relay/run.js");
      try {
        await runRelay(o);
      } catch (err) {
        throw new CliError((err as Error).message);
      }
    });
}
