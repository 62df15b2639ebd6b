// The compiled tree (dist/) that plain `node` programs import (the SDK through the package's exports). `npm test`
// builds it first (pretest); a bare `vitest run` after editing src/ may not have: then it is built here.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** dist/src/sdk/index.js, built again when any file under src/ is newer than it. */
export function builtSdk(): string {
  const built = join(ROOT, "dist/src/sdk/index.js");
  if (!existsSync(built) || statSync(built).mtimeMs < newestMtime(join(ROOT, "src"))) {
    execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: "ignore" });
  }
  return built;
}
