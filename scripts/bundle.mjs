// After tsc: the `ember` CLI and its daemons as a few ESM files (dist/bundle/), which bin/ember.mjs runs when they
// are fresh. Node's ESM loader costs memory per module instance (about 150 of our own for `ember up`, plus the
// libraries'): docs/performance.md "Memory" has what the bundle saves. Each verb stays its own chunk (src/cli/verbs.ts
// imports it dynamically), so a daemon does not load what only other verbs need. Native and optional packages stay
// outside (their .node files are found by their own package code), as does tsx. Paths computed from import.meta.url
// (package root, native addon, dashboard) walk up to package.json, so dist/bundle/ finds them as dist/src/ does.
// BUNDLE_OUT: another directory; BUNDLE_META: write esbuild's metafile there (what each chunk holds, by input).
import { build } from "esbuild";
import { rmSync } from "node:fs";

const outdir = process.env.BUNDLE_OUT ?? new URL("../dist/bundle/", import.meta.url).pathname;
rmSync(outdir, { recursive: true, force: true });
const result = await build({
  // policy-worker: the coordination server's policy compiler starts it as ./policy-worker.js beside its own code.
  entryPoints: { ember: "src/cli/main.ts", "policy-worker": "src/coord/policy-worker.ts" },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  chunkNames: "[name]-[hash]",
  sourcemap: "linked",
  logLevel: "warning",
  // Whitespace and syntax minified, names kept (stack traces and error classes read as in the sources): V8 keeps
  // every script's source in the heap for lazy compilation, and `ember up` loads 1.2 MB of it unminified.
  minifyWhitespace: true,
  minifySyntax: true,
  metafile: !!process.env.BUNDLE_META,
  external: ["sodium-native", "better-sqlite3", "pg", "pg-native", "tsx", "tsx/*", "playwright-core", "msgpackr-extract"],
  // The bundled CommonJS libraries call require() for Node's built-ins; an ES module has none of its own.
  banner: { js: 'import { createRequire as __emberCreateRequire } from "node:module"; const require = __emberCreateRequire(import.meta.url);' },
});
if (process.env.BUNDLE_META) (await import("node:fs")).writeFileSync(process.env.BUNDLE_META, JSON.stringify(result.metafile));
