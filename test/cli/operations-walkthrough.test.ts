// docs/operations.md walks a fresh operator through a first mesh: this runs its shell blocks, exactly as the page
// has them and in its order, in one bash (-e: the first failing command fails the test), with real processes on
// loopback: `ember coord`, `ember relay`, two `ember up` nodes, the proxy, a forward, curl. The ports the page
// shows are replaced by free ones (other tests run beside this one); nothing else is changed, so the page and
// this test cannot drift apart. The page once set a policy whose tests named nodes before they existed.
import { afterAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EMBER } from "../helpers/cli.js";
import { tempDir } from "../helpers/pki.js";
import { freeTcpPort, freeUdpPort } from "../../src/cli/demo-mesh.js";

const PAGE = join(import.meta.dirname, "..", "..", "docs", "operations.md");
const SECTION = "## Walk-through: a first mesh on one machine";
/** The ports the page uses, and which kind of free port replaces each. */
const PORTS: [number, "tcp" | "udp"][] = [[8443, "tcp"], [4443, "tcp"], [3478, "udp"], [8080, "tcp"], [1080, "tcp"], [8081, "tcp"]];

/** The ```sh blocks of the walk-through section, in order. */
function walkthroughBlocks(markdown: string): string[] {
  const start = markdown.indexOf(SECTION);
  if (start < 0) throw new Error(`docs/operations.md has no "${SECTION}"`);
  const rest = markdown.slice(start + SECTION.length);
  const section = rest.slice(0, rest.search(/\n## /) >>> 0 || rest.length);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
}

describe("docs/operations.md walk-through", () => {
  const tmp = tempDir("ember-walk-");
  afterAll(() => tmp.cleanup());

  it("runs as written, in the order written: every use by name succeeds", async () => {
    const blocks = walkthroughBlocks(readFileSync(PAGE, "utf8"));
    expect(blocks.length).toBeGreaterThanOrEqual(8);
    let script = blocks.join("\n");
    for (const [port, kind] of PORTS) {
      expect(script, `the page uses port ${port}`).toMatch(new RegExp(`\\b${port}\\b`));
      const free = kind === "tcp" ? await freeTcpPort() : await freeUdpPort();
      script = script.replace(new RegExp(`\\b${port}\\b`, "g"), String(free));
    }
    // `ember` on the PATH, as the page assumes.
    writeFileSync(join(tmp.dir, "ember"), `#!/bin/sh\nexec "${process.execPath}" "${EMBER}" "$@"\n`);
    chmodSync(join(tmp.dir, "ember"), 0o755);

    const child = spawn("bash", ["-e", "-c", script], {
      cwd: tmp.dir, detached: true, stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PATH: `${tmp.dir}:${process.env.PATH}`, EMBER_COORD: "", EMBER_CERT: "", EMBER_KEY: "", EMBER_CA: "" },
    });
    let stdout = "", stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => { try { process.kill(-child.pid!, "SIGKILL"); } catch { /* gone */ } }, 150_000);
      child.on("exit", (c) => { clearTimeout(t); resolve(c); });
    });
    // Whatever the script left running (it stops its own jobs when it gets that far): its process group, by id.
    try { process.kill(-child.pid!, "SIGKILL"); } catch { /* all gone */ }
    const logs = ["coord.log", "relay.log", "web-1.log", "laptop-1.log"].map((f) => {
      try { return `--- ${f}\n${readFileSync(join(tmp.dir, "ember-walk", f), "utf8").split("\n").slice(-15).join("\n")}`; } catch { return `--- ${f}: none`; }
    }).join("\n");
    expect(code, `stdout:\n${stdout}\nstderr:\n${stderr}\n${logs}`).toBe(0);
    expect(stdout.match(/^hello from web-1$/gm), "through the proxy and through the forward").toHaveLength(2);
    expect(stdout.match(/^policy applied: 1 rule\(s\)/gm)).toHaveLength(2);
    expect(stdout).toMatch(/^ALLOW laptop-1 -> web-1:\d+\/tcp by rule #1/m);
    expect(stderr).toMatch(/no policy is set yet, so no rule names group "web"/);
    expect(stderr).not.toMatch(/\n\s+at /);
  }, 180_000);
});
