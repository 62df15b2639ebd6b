// The package as a user installs it (CHANGELOG.md "Added"): `npm pack`, then `npm install -g` of the tarball into
// a temporary prefix (nothing of this checkout's node_modules is used; dependencies come from the registry or
// npm's cache), then from another directory: `ember --version`, `ember demo` with the native addon and without
// it (the pure-JS path), and the SDK imported by name from a project that links the global install.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { builtSdk, ROOT } from "../helpers/built.js";
import { tempDir } from "../helpers/pki.js";

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
/** The environment of a user's shell: none of the npm_* variables an `npm test` run would pass down. */
const userEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_")));
const run = (cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }) => {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: { ...userEnv, ...opts.env }, encoding: "utf8", timeout: opts.timeoutMs ?? 120_000 });
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "", error: r.error };
};

describe("the packed tarball installed globally", () => {
  let tmp: ReturnType<typeof tempDir>;
  let tarball = "";
  let prefix = "";
  let installed = "";
  let elsewhere = "";
  let install: ReturnType<typeof run>;
  let installMs = 0;

  beforeAll(() => {
    tmp = tempDir("ember-package-");
    builtSdk(); // dist/ as fresh as the sources: what `npm pack` ships (its prepare step builds the same)
    const p = run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", tmp.dir], { cwd: ROOT });
    expect(p.code, p.stderr).toBe(0);
    tarball = join(tmp.dir, (JSON.parse(p.stdout) as { filename: string }[])[0].filename);
    prefix = join(tmp.dir, "prefix");
    elsewhere = join(tmp.dir, "elsewhere");
    mkdirSync(elsewhere);
    const t0 = Date.now();
    install = run("npm", ["install", "-g", "--prefix", prefix, "--no-audit", "--no-fund", "--allow-scripts=embernet,better-sqlite3,esbuild", tarball],
      { cwd: elsewhere, timeoutMs: 600_000 });
    installMs = Date.now() - t0;
    installed = join(prefix, "lib", "node_modules", "embernet");
    console.log(`npm install -g of ${tarball.split("/").pop()}: ${(installMs / 1000).toFixed(0)} s`);
  }, 700_000);
  afterAll(() => tmp?.cleanup());

  it("the tarball holds the build, the addon's sources and what runs beside the code, and no sources or tests", () => {
    const list = run("tar", ["-tzf", tarball], { cwd: tmp.dir }).stdout.split("\n").filter(Boolean);
    for (const f of ["package/bin/ember.mjs", "package/dist/bundle/ember.js", "package/dist/src/sdk/index.js", "package/dist/src/sdk/index.d.ts",
      "package/dist/release.json", "package/native/binding.gyp", "package/scripts/build-native.mjs", "package/dashboard/app.js",
      "package/examples/policy/demo.yaml", "package/CHANGELOG.md"]) expect(list, f).toContain(f);
    expect(list.filter((f) => /^package\/(src|test|bench)\//.test(f) || f.startsWith("package/native/build/") || f.includes("node_modules"))).toEqual([]);
  });

  it("installs with a working ember that names its version, commit and protocol", () => {
    expect(install.code, `${install.stdout}\n${install.stderr}`).toBe(0);
    const v = run(join(prefix, "bin", "ember"), ["--version"], { cwd: elsewhere });
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout.trim()).toMatch(new RegExp(`^ember ${pkg.version.replaceAll(".", "\\.")} \\(commit [0-9a-f]{12}(-dirty)?, protocol \\d+\\)$`));
  });

  it("builds the native addon when a compiler is there; its build script skips cleanly when none is", () => {
    const compiler = spawnSync(process.env.CXX || "c++", ["--version"]).status === 0;
    expect(existsSync(join(installed, "native", "build", "Release", "ember_native.node"))).toBe(compiler);
    const skip = run(process.execPath, [join(installed, "scripts", "build-native.mjs")], { cwd: installed, env: { CXX: "/nonexistent/c++" } });
    expect(skip.code).toBe(0);
    expect(skip.stdout).toMatch(/native addon skipped: no C\+\+ compiler/);
  });

  for (const native of ["on", "off"] as const) {
    it(`runs ember demo from another directory (native addon ${native})`, () => {
      const r = run(join(prefix, "bin", "ember"), ["demo", "--json"], { cwd: elsewhere, env: { EMBER_PORTMAP: "off", ...(native === "off" ? { EMBER_NATIVE: "off" } : {}) }, timeoutMs: 120_000 });
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(out.flows.map((f: { allow: boolean }) => f.allow)).toEqual([true, false, false]);
    }, 150_000);
  }

  it("imports the SDK by name from a project that links the global install", () => {
    const app = join(tmp.dir, "app");
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    writeFileSync(join(app, "app.mjs"), 'import { EmberNode, DialError } from "embernet";\nconsole.log(typeof EmberNode.start, typeof DialError);\n');
    const link = run("npm", ["link", "embernet", "--no-audit", "--no-fund"], { cwd: app, env: { npm_config_prefix: prefix } });
    expect(link.code, link.stderr).toBe(0);
    const r = run(process.execPath, ["app.mjs"], { cwd: app });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("function function");
  });
});
