// `ember status | head -1` and `ember logs --policy --json | head -1` ended with an EPIPE stack trace. Output into
// a reader that has gone away ends the command quietly, exit 0, as Unix tools do. The reader here is `true`,
// which reads nothing and exits at once, so every write of the command meets a closed pipe.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { EMBER } from "../helpers/cli.js";
import { eventually } from "../helpers/nodes.js";
import { startStaticMesh, type StaticMesh } from "../helpers/static-mesh.js";

const POLICY = `rules:\n  - allow: {source: "@clients", target: b, protocol: tcp, ports: [9000]}\n`;

describe("ember output into a closed pipe", () => {
  let mesh: StaticMesh;

  beforeAll(async () => {
    mesh = await startStaticMesh("ember-pipes-", POLICY);
    // A session, so that `logs` has lines to write.
    await eventually(async () => (await mesh.a.request("ping", { name: "b", timeoutMs: 2_000 }).catch(() => undefined))?.rttMs !== undefined, 20_000, "a session a -> b");
  }, 60_000);
  afterAll(async () => { await mesh?.stop(); }, 30_000);

  it("status, peers and logs end quietly with exit 0", () => {
    for (const args of [["status"], ["status", "--json"], ["peers"], ["logs", "--json"], ["logs", "--connections"], ["logs", "--policy", "--json"]]) {
      const line = [process.execPath, EMBER, ...args, "--state", mesh.a.dir].map((a) => `'${a}'`).join(" ");
      const r = spawnSync("bash", ["-c", `${line} | true; echo "rc=\${PIPESTATUS[0]}" >&2`], { encoding: "utf8", timeout: 30_000 });
      expect(r.stderr.trim(), args.join(" ")).toBe("rc=0");
    }
  }, 60_000);
});
