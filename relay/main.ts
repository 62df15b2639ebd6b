// Standalone relay entry: `npx tsx relay/main.ts --listen :443 --stun :3478 --cert F --key F --ca BUNDLE`
// (the same flags as `ember relay`). Exit 2 with one `relay: <message>` line on bad flags or files.
import { Command, CommanderError } from "commander";
import { addRelayOptions, type RelayFlags } from "./options.js";
import { runRelay } from "./run.js";

const program = addRelayOptions(new Command("relay"))
  .description("EmberNet relay: forwards end-to-end encrypted frames between nodes by identity, answers STUN")
  .exitOverride()
  .action(async (o: RelayFlags) => { await runRelay(o); });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  process.stderr.write(`relay: ${(err as Error).message}\n`);
  process.exit(2);
}
