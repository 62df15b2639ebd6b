#!/usr/bin/env node
// Entry point of the `ember` CLI. The build (`npm run build`, which `npm ci` runs through the prepare script) is
// used when it is at least as new as every TypeScript source: the bundle (dist/bundle/, a few ESM files: smaller
// resident memory than the module tree, docs/performance.md "Memory"), else the compiled tree (dist/src/);
// otherwise the sources run through tsx, so an edited checkout never runs stale code. EMBER_BUNDLE=off skips the
// bundle (to compare the two).
import { existsSync, readdirSync, statSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, join } from "node:path";

// The long-running daemons keep V8's young generation small (docs/performance.md "Memory"): its default of up to
// 3 x 16 MB semi-spaces is sized for allocation-heavy servers and was a third of an idle node's resident memory.
// Set before anything else is loaded, so the heap never grows past it. EMBER_SEMI_SPACE_MB overrides (0: V8's).
const DAEMON_VERBS = new Set(["up", "relay", "coord"]);
const semiSpaceMb = Number(process.env.EMBER_SEMI_SPACE_MB ?? 2);
if (DAEMON_VERBS.has(process.argv[2]) && semiSpaceMb > 0) setFlagsFromString(`--max-semi-space-size=${semiSpaceMb} --semi-space-growth-factor=2`);

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bundled = join(root, "dist", "bundle", "ember.js");
const built = join(root, "dist", "src", "cli", "main.js");

/** Newest modification time of the .ts files under these directories (a few hundred stats: about a millisecond). */
function newestSource(dirs) {
  let newest = 0;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".ts")) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of dirs) if (existsSync(d)) walk(d);
  return newest;
}

const sourcesAt = newestSource([join(root, "src"), join(root, "relay")]);
const fresh = (f) => existsSync(f) && statSync(f).mtimeMs >= sourcesAt;
if (process.env.EMBER_BUNDLE !== "off" && fresh(bundled)) {
  await import(pathToFileURL(bundled).href);
} else if (fresh(built)) {
  await import(pathToFileURL(built).href);
} else if (process.env.EMBER_NO_TSX === "1") {
  // Tests and packaging checks: the compiled tree must be used.
  process.stderr.write(`ember: ${existsSync(built) ? "dist/ is older than the sources" : "dist/ is missing"}; run npm run build\n`);
  process.exit(2);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(pathToFileURL(join(root, "src", "cli", "main.ts")).href);
}
