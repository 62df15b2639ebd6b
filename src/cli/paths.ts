// Files of the package the CLI needs at run time, found from this module whether it runs as TypeScript source
// (src/cli/*.ts through tsx) or compiled (dist/src/cli/*.js): the package root is the nearest directory up
// that holds package.json.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return dir;
}

export const PACKAGE_ROOT = packageRoot();
/** The `ember` entry point (bin/ember.mjs), for the child processes `ember demo` starts. */
export const EMBER_BIN = join(PACKAGE_ROOT, "bin", "ember.mjs");
