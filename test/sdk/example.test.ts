// The SDK's runnable example (examples/sdk/echo.mjs) as a user runs it: plain node, `import "embernet"`
// through the package's exports (the compiled tree), two embedded nodes, a dial by name, an echo, and the
// peer's verified identity on both ends.
import { describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "../..");

describe("SDK example", () => {
  it("two embedded nodes: dial by name, echo, identities", () => {
    const built = join(root, "dist/src/sdk/index.js");
    // `npm test` builds first (pretest); a bare `vitest run` after editing the SDK may not have.
    if (!existsSync(built) || statSync(built).mtimeMs < statSync(join(root, "src/sdk/index.ts")).mtimeMs) {
      execFileSync("npm", ["run", "build"], { cwd: root, stdio: "ignore" });
    }
    const r = spawnSync(process.execPath, [join(root, "examples/sdk/echo.mjs")], { cwd: root, encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n").sort()).toEqual([
      "node-a: connected to node-b (tenant demo)",
      "node-a: echo: hello over the mesh",
      "node-b: connection from node-a (tenant demo, groups clients)",
    ]);
  }, 90_000);
});
