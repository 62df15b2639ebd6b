// The package's own directory, wherever this file runs from: src/cli (through tsx) or dist/src/cli (built).
// Files shipped beside the code (bin/ember.mjs, examples/) are found from here, never by a fixed "../..".
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRoot(start: string): string {
  for (let d = start; ; d = dirname(d)) {
    const pkg = join(d, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "embernet") return d;
    if (dirname(d) === d) throw new Error(`package.json of embernet not found above ${start}`);
  }
}

export const PACKAGE_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));
/** The `ember` entry point, for child processes. */
export const EMBER_BIN = join(PACKAGE_ROOT, "bin", "ember.mjs");
