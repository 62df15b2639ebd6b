// A peer that stopped and started again (an upgrade in place, a reboot) is dialled at once and the first flow
// works (invariant 9): the mux it closed while stopping ("node stopping") must not refuse our first dial until the
// peer happens to send first. Found by the mixed-version NAT-lab test (test/release/mixed-version.test.ts).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, createServer, type Server } from "node:net";
import { join } from "node:path";
import { startStaticMesh, type StaticMesh } from "../helpers/static-mesh.js";
import { startNode, type NodeProc } from "../helpers/nodes.js";

const POLICY = "rules:\n  - allow: {source: \"@clients\", target: \"@servers\", protocol: tcp, ports: [9000]}\n";

/** One TCP round trip through a's forward to echo.b: what came back. */
function echoOnce(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect(port, "127.0.0.1");
    let got = "";
    c.setEncoding("utf8");
    c.on("data", (d: string) => { got += d; if (got.length >= text.length) c.end(); });
    c.on("close", () => resolve(got));
    c.on("error", reject);
    c.on("connect", () => c.write(text));
    setTimeout(() => { c.destroy(); resolve(got); }, 10_000).unref();
  });
}

describe("a restarted peer", () => {
  let mesh: StaticMesh;
  let echo: Server;
  let echoPort = 0;
  /** b started again: the mesh's stop() knows only the first b. */
  let restarted: NodeProc | undefined;

  beforeAll(async () => {
    echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    echoPort = (echo.address() as { port: number }).port;
    mesh = await startStaticMesh("ember-peer-restart-", POLICY);
  }, 60_000);
  afterAll(async () => { await restarted?.stop(); await mesh?.stop(); echo?.close(); });

  it("is reached by the first flow after it comes back, with no retry", async () => {
    await mesh.b.request("serve", { name: "echo", to: `127.0.0.1:${echoPort}`, port: 9000 });
    const f = await mesh.a.request<{ listen: string }>("forward", { listenPort: 0, host: "b", port: 9000, protocol: "tcp" });
    const port = Number(f.listen.split(":").pop());
    expect(await echoOnce(port, "before the restart")).toBe("before the restart");
    // b stops (its mux tells a "node stopping") and starts again on the same address and state.
    const bPort = mesh.b.port, aPort = mesh.a.port;
    await mesh.b.stop();
    await mesh.a.waitForLog(/peer closed the stream mux/, 10_000);
    restarted = await startNode({ name: "b", dir: join(mesh.dir, "b"), port: bPort, peers: { a: aPort }, extraArgs: ["--policy", mesh.policyFile] });
    await restarted.request("serve", { name: "echo", to: `127.0.0.1:${echoPort}`, port: 9000 });
    const first = await echoOnce(port, "first flow after the restart").catch((e) => `error: ${(e as Error).message}`);
    expect(first, mesh.a.logs.filter((l) => /forward|stream|flow/.test(l)).slice(-8).join("\n")).toBe("first flow after the restart");
  }, 60_000);
});
