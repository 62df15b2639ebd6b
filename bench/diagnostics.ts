// What a bench knows when it fails: the last lines every daemon it started wrote, and what each EmberNet node
// says of itself and its peers (`ember status --json`, `ember peers --json`). Printed to stderr, so a run that
// failed in CI can be read without running it again.
import { execFile, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

const EMBER = join(import.meta.dirname, "..", "bin", "ember.mjs");
const TAIL_LINES = 40;
/** A daemon that does not answer its control socket within this long is reported as not answering. */
const ASK_TIMEOUT_MS = 10_000;

export class Diagnostics {
  private readonly tails = new Map<string, string[]>();
  /** What else is worth printing, asked only on failure (each answer a block of text). */
  private readonly sources: [label: string, ask: () => Promise<string>][] = [];

  constructor(private readonly bench: string) {}

  /** Keeps the last lines of the child's stdout and stderr (where they are pipes) under `label`. */
  watch(label: string, child: ChildProcess): void {
    const tail: string[] = [];
    this.tails.set(label, tail);
    const keep = (line: string) => { tail.push(line); if (tail.length > TAIL_LINES) tail.shift(); };
    for (const stream of [child.stdout, child.stderr]) if (stream) createInterface({ input: stream }).on("line", keep);
    child.once("exit", (code, signal) => keep(`(exited ${code ?? signal})`));
  }

  /** A block of text to print on failure, from `ask` (e.g. EmberLab.diagnose). */
  source(label: string, ask: () => Promise<string>): void {
    this.sources.push([label, ask]);
  }

  /** An EmberNet node, by its state directory (its control socket lives there): asked for status and peers on failure. */
  emberNode(name: string, stateDir: string): void {
    for (const verb of ["status", "peers"]) this.source(`${name}: ember ${verb} --json`, () => emberCli(verb, stateDir));
  }

  /** Prints everything known to stderr. Never throws: it runs while the bench is already failing. */
  async print(): Promise<void> {
    const out: string[] = [`${this.bench}: diagnostics`];
    for (const [label, ask] of this.sources) out.push(`--- ${label}\n${await ask().catch((e) => `(failed: ${(e as Error).message})`)}`);
    for (const [label, tail] of this.tails) out.push(`--- ${label}: last ${tail.length} log lines\n${tail.join("\n")}`);
    process.stderr.write(out.join("\n") + "\n");
  }
}

function emberCli(verb: string, stateDir: string): Promise<string> {
  return new Promise((resolve) => {
    execFile(process.execPath, [EMBER, verb, "--json", "--state", stateDir], { encoding: "utf8", timeout: ASK_TIMEOUT_MS },
      (err, stdout, stderr) => resolve(err ? `(${err.killed ? "no answer" : `failed: ${stderr.trim() || err.message}`})` : stdout.trim()));
  });
}
