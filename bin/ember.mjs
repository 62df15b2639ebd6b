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

// The node daemon keeps V8's young generation small (docs/performance.md "Memory"). V8's default lets it
// grow to 2 x 16 MB semi-spaces in an allocation burst (a map of 1,000 peers arriving), and it stays grown until V8
// finds the process idle: that was 10-30 MB of a 999-peer node's resident memory, varying from node to node.
// --max-semi-space-size works only on node's command line (V8 sizes its heap before any script runs: set here, it
// was measured to do nothing), but a growth factor of 1 set here holds the young generation at its initial 1 MB
// semi-spaces. EMBER_YOUNG_GEN=v8 leaves V8's default; NODE_OPTIONS=--max-semi-space-size=N sets another size.
// The relay too: with 300 more connections it grew 17 MB against 20 MB (58 against 67-69 KiB a connection, its V8
// heap 11 MB against 18 MB), forwarding under load it stayed at 95-96 MB against 104-108 MB, and its forwarding
// capacity was 464-735 against 258-796 Mbit/s per relay CPU second (three runs each, loaded host): no cost seen.
// The coordination server keeps V8's default: its throughput with a 1 MB young generation has not been measured.
const SMALL_YOUNG_GEN_VERBS = new Set(["up", "relay"]);
const sizedByNode = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)].some((a) => a.startsWith("--max-semi-space-size"));
if (SMALL_YOUNG_GEN_VERBS.has(process.argv[2]) && process.env.EMBER_YOUNG_GEN !== "v8" && !sizedByNode) setFlagsFromString("--semi-space-growth-factor=1");

// EMBER_JIT=baseline (opt-in, `ember up` only): no optimizing compiler. An idle node's timers make a few small
// functions hot within minutes, and V8's first TurboFan compile maps about 3 MB of the node binary's compiler code
// and adds its own memory: 55-56 MB at rest against 60-61 MB (5 peers), for 15-26% less `ember forward` capacity
// (bench:streams). For nodes that carry little traffic; docs/performance.md "Memory".
if (process.argv[2] === "up" && process.env.EMBER_JIT === "baseline") setFlagsFromString("--max-opt=1");
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
