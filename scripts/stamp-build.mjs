// After tsc: touch the CLI entry of dist/ so bin/ember.mjs sees the build as newer than the sources it
// was made from (tsc leaves unchanged outputs with their old times), and write dist/release.json with the
// commit the build came from (src/release.ts reads it: `ember --version` of an installed tarball, no git there).
import { execFileSync } from "node:child_process";
import { existsSync, utimesSync, writeFileSync } from "node:fs";

const now = new Date();
utimesSync(new URL("../dist/src/cli/main.js", import.meta.url), now, now);

const root = new URL("..", import.meta.url).pathname;
const stampFile = new URL("../dist/release.json", import.meta.url);
function git(args) {
  try { return execFileSync("git", args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim(); } catch { return undefined; }
}
// A checkout's commit; none (a tarball being installed, an export of the tree): keep what the stamp says.
const head = existsSync(new URL("../.git", import.meta.url)) ? git(["rev-parse", "--short=12", "HEAD"]) : undefined;
if (head) {
  const dirty = git(["status", "--porcelain", "--untracked-files=no"]);
  writeFileSync(stampFile, JSON.stringify({ commit: dirty ? `${head}-dirty` : head, builtAt: now.toISOString() }) + "\n");
} else if (!existsSync(stampFile)) {
  writeFileSync(stampFile, JSON.stringify({ commit: process.env.EMBER_BUILD_COMMIT ?? "unknown", builtAt: now.toISOString() }) + "\n");
}
