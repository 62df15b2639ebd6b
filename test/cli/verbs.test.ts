// Every verb of `ember` starts from the compiled tree (no TypeScript transpiled at run time) and loads only its
// own module: the verb table is complete, and `ember status` starts without loading the daemon.
import { readFileSync } from "node:fs";
import { PROTOCOL_VERSION } from "../../src/wire/protocol.js";
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { buildProgram, VERBS } from "../../src/cli/verbs.js";
import { EMBER } from "../helpers/cli.js";

function run(args: string[]) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [EMBER, ...args], { encoding: "utf8", timeout: 30_000, env: { ...process.env, EMBER_NO_TSX: "1" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
}

describe("ember verbs", () => {
  it("the verb table names every top-level command exactly once", async () => {
    const all = await buildProgram(undefined);
    expect(all.commands.map((c) => c.name()).sort()).toEqual(Object.keys(VERBS).sort());
    // One verb loads one module: `status` brings its siblings (peers, ping) and nothing else.
    expect((await buildProgram("status")).commands.map((c) => c.name()).sort()).toEqual(["peers", "ping", "status"]);
    expect((await buildProgram("--version")).commands).toHaveLength(0);
  });

  it("every verb starts from dist/ (EMBER_NO_TSX=1 refuses a fallback to tsx) and prints its help", () => {
    for (const verb of Object.keys(VERBS)) {
      const r = run([verb, "--help"]);
      expect(r.stderr, verb).toBe("");
      expect(r.code, `${verb}: ${r.stderr}`).toBe(0);
      expect(r.stdout, verb).toMatch(new RegExp(`Usage: ember ${verb}\\b`));
    }
    const v = run(["--version"]);
    // The version of package.json, the commit dist/ was built from (stamped by the build) and the protocol.
    const version = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version;
    expect(v.stdout.trim()).toMatch(new RegExp(`^ember ${version.replaceAll(".", "\\.")} \\(commit ([0-9a-f]{12}(-dirty)?|unknown), protocol ${PROTOCOL_VERSION}\\)$`));
  });

  it("a CLI verb that talks to the daemon starts fast: it never loads the daemon's modules", () => {
    const times = [0, 1, 2].map(() => run(["status", "--state", "/nonexistent-ember-state"]));
    for (const r of times) expect(r.stderr).toMatch(/no daemon is running/);
    const best = Math.min(...times.map((r) => r.ms));
    console.log(`ember status (no daemon) starts and exits in ${Math.round(best)} ms (best of 3)`);
    expect(best).toBeLessThan(1_500);
  });
});
