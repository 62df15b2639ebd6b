// The SDK's runnable example (examples/sdk/echo.mjs) as a user runs it: plain node, `import "embernet"`
// through the package's exports (the compiled tree), two embedded nodes, a dial by name, an echo, and the
// peer's verified identity on both ends.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { builtSdk, ROOT as root } from "../helpers/built.js";

describe("SDK example", () => {
  it("two embedded nodes: dial by name, echo, identities", () => {
    builtSdk();
    const r = spawnSync(process.execPath, [join(root, "examples/sdk/echo.mjs")], { cwd: root, encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n").sort()).toEqual([
      "node-a: connected to node-b (tenant demo)",
      "node-a: echo: hello over the mesh",
      "node-b: connection from node-a (tenant demo, groups clients)",
    ]);
  }, 90_000);
});
