// The `ember` command: one binary, a verb per role (src/cli/verbs.ts loads only the verb being run).
import { CommanderError } from "commander";
import { CliError } from "./output.js";
import { buildProgram } from "./verbs.js";

// Output piped into a reader that stopped (`ember status | head -1`): a command ends quietly, as Unix tools do on
// SIGPIPE; a server keeps serving (a log reader that went away is no reason to stop a daemon).
const SERVERS = new Set(["up", "coord", "relay", "edge"]);
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
    if (!SERVERS.has(process.argv[2])) process.exit(process.exitCode ?? 0);
  });
}

try {
  await (await buildProgram(process.argv[2])).parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`ember: ${(err as Error).message}\n`);
    process.exitCode = err instanceof CliError ? err.exitCode : 2;
  }
  // A failed verb ends here, whatever it left open (a half-started listener must not keep the process running).
  process.exit();
}
