#!/usr/bin/env node
// The package's install script: builds the optional N-API addon (native/) with npm's own node-gyp against
// the headers of the Node that runs us. Anything missing (compiler, headers, node-gyp) or a failed build
// prints one line and exits 0: the daemon runs without the addon (src/native/addon.ts reports why).
// EMBER_NATIVE_BUILD=off skips the build.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const nativeDir = join(root, "native");
const skip = (why) => {
  console.log(`embernet: native addon skipped: ${why} (the daemon runs without it)`);
  process.exit(0);
};

if (process.env.EMBER_NATIVE_BUILD === "off") skip("EMBER_NATIVE_BUILD=off");
if (process.platform !== "linux") skip(`the addon is Linux-only (this is ${process.platform})`);

// npm's bundled node-gyp: through npm_execpath when npm runs us, else beside the npm that sits next to node.
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_execpath) candidates.push(join(dirname(process.env.npm_execpath), "..", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  const req = createRequire(import.meta.url);
  for (const spec of ["node-gyp/bin/node-gyp.js", "npm/node_modules/node-gyp/bin/node-gyp.js"]) {
    try { candidates.push(req.resolve(spec)); } catch { /* not there */ }
  }
  const prefix = join(dirname(process.execPath), "..");
  candidates.push(join(prefix, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  candidates.push(join(prefix, "share", "nodejs", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  return candidates.find((c) => existsSync(c));
}

// Local headers only (no download): the prefix whose include/node/common.gypi exists.
function findNodeDir() {
  for (const d of [join(dirname(process.execPath), ".."), "/usr", "/usr/local"]) {
    if (existsSync(join(d, "include", "node", "common.gypi")) && existsSync(join(d, "include", "node", "node_api.h"))) return d;
  }
  return undefined;
}

const nodeGyp = findNodeGyp();
if (!nodeGyp) skip("npm's node-gyp was not found");
const nodedir = findNodeDir();
if (!nodedir) skip(`no Node headers (include/node/common.gypi) under ${join(dirname(process.execPath), "..")}`);
if (!existsSync(join(nodedir, "include", "node", "openssl", "evp.h"))) skip("Node's OpenSSL headers (include/node/openssl) are missing");
const cxx = process.env.CXX || "c++";
if (spawnSync(cxx, ["--version"], { stdio: "ignore" }).status !== 0) skip(`no C++ compiler (${cxx})`);
try {
  createRequire(join(root, "package.json")).resolve("node-addon-api");
} catch {
  skip("node-addon-api is not installed");
}

const jobs = String(Math.min(2, Number(process.env.JOBS) || 2));
const r = spawnSync(process.execPath, [nodeGyp, "rebuild", `--nodedir=${nodedir}`, `--jobs=${jobs}`], {
  cwd: nativeDir,
  stdio: process.env.EMBER_NATIVE_VERBOSE ? "inherit" : ["ignore", "pipe", "pipe"],
  encoding: "utf8",
});
if (r.status !== 0) {
  const out = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n");
  const firstErr = out.find((l) => /error/i.test(l)) ?? out.at(-1) ?? r.error?.message ?? "unknown";
  skip(`the build failed (${firstErr.trim().slice(0, 300)}); EMBER_NATIVE_VERBOSE=1 npm run build:native shows the log`);
}
console.log(`embernet: native addon built: ${join("native", "build", "Release", "ember_native.node")}`);
