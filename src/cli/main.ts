// The `ember` command: one binary, a verb per role. Each verb lives in its own file under src/cli.
import { Command, CommanderError } from "commander";
import { registerCa } from "./ca.js";
import { registerCert } from "./cert.js";
import { registerDemo } from "./demo.js";
import { registerUp } from "./up.js";
import { registerPeers } from "./peers.js";
import { CliError } from "./output.js";
import { registerCoordVerbs } from "./coord.js";
import { registerRelay } from "./relay.js";
import { registerNetcheck } from "./netcheck.js";
import { registerServe } from "./serve.js";
import { registerAccess } from "./access.js";
import { registerHealthVerbs } from "./health.js";

const program = new Command();
program.name("ember").description("EmberNet: zero-trust overlay network").version("0.1.0").exitOverride();
registerCa(program);
registerCert(program);
registerDemo(program);
registerUp(program);
registerPeers(program);
registerCoordVerbs(program);
registerRelay(program);
registerNetcheck(program);
registerServe(program);
registerAccess(program);
registerHealthVerbs(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`ember: ${(err as Error).message}\n`);
    process.exitCode = err instanceof CliError ? err.exitCode : 2;
  }
}
