// A node is reachable as soon as it is up (issue 24): with no relay in the mesh (a LAN-only mesh, or one whose
// relay is down at start) and no STUN answer, a node publishes its interface candidates at once, and the first
// packet to a fresh peer is answered on the first try, not after the 30 s status beat.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { LocalMesh, type DemoNode } from "../../src/cli/demo-mesh.js";
import { tempDir } from "../helpers/pki.js";

const ALLOW_ALL = "version: 1\nrules:\n  - allow: {source: \"*\", target: \"*\"}\n";

describe("a node starts reachable (no relay, no STUN)", () => {
  let tmp: ReturnType<typeof tempDir>;
  let mesh: LocalMesh;
  const nodes: Record<string, DemoNode> = {};

  beforeAll(async () => {
    tmp = tempDir("ember-reach-");
    mesh = new LocalMesh(tmp.dir, () => undefined);
    await mesh.init("reach.test");
    await mesh.startCoord([]);
    await mesh.admin().setPolicy(ALLOW_ALL);
  }, 60_000);

  afterAll(async () => {
    await mesh?.stop();
    tmp?.cleanup();
  }, 30_000);

  it("the first ping between two nodes that just started succeeds on the first try, within 1 s", async () => {
    for (const name of ["lan-a", "lan-b"]) {
      nodes[name] = { name, groups: [], dir: join(tmp.dir, name), socket: join(tmp.dir, name, "ember.sock") };
      await mesh.startNode(nodes[name], "t1");
    }
    // Both are up: each has the other in its map, and neither has sent a status report by a timer yet.
    const started = Date.now();
    const r = await mesh.request<{ rttMs: number }>(nodes["lan-a"], "ping", { name: "lan-b", timeoutMs: 1_000 });
    expect(r.rttMs).toBeGreaterThan(0);
    expect(Date.now() - started).toBeLessThan(1_000);
    const back = await mesh.request<{ rttMs: number }>(nodes["lan-b"], "ping", { name: "lan-a", timeoutMs: 1_000 });
    expect(back.rttMs).toBeGreaterThan(0);
    const peers = await mesh.request<{ name: string; endpoint?: string }[]>(nodes["lan-a"], "peers");
    expect(peers.find((p) => p.name === "lan-b")?.endpoint).toMatch(/^127\.0\.0\.1:\d+$/);
  }, 60_000);
});
