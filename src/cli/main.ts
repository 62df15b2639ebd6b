// The `ember` command: one binary, a verb per role (src/cli/verbs.ts loads only the verb being run).
import { CommanderError } from "commander";
import { CliError } from "./output.js";
import { buildProgram } from "./verbs.js";

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
