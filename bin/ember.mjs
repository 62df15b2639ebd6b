#!/usr/bin/env node
// Entry point of the `ember` CLI. The compiled tree (dist/, built by `npm run build`, which `npm ci` runs
// through the prepare script) is used when it is at least as new as every TypeScript source; otherwise the
// sources run through tsx, so an edited checkout never runs stale code.
import { existsSync, readdirSync, statSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
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

if (existsSync(built) && statSync(built).mtimeMs >= newestSource([join(root, "src"), join(root, "relay")])) {
  await import(pathToFileURL(built).href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(pathToFileURL(join(root, "src", "cli", "main.ts")).href);
}
