// A coordinated mesh on IPv6 alone (loopback ::1): the coordination server at https://[::1]:PORT, a relay on
// [::1] (TLS and STUN), and nodes that enroll, connect by name, go direct over IPv6 and say so.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { LocalMesh, type DemoNode } from "../../src/cli/demo-mesh.js";
import { eventually } from "../helpers/nodes.js";
import { ember } from "../helpers/cli.js";
import { tempDir } from "../helpers/pki.js";

const ALLOW_ALL = "version: 1\nrules:\n  - allow: {source: \"*\", target: \"*\"}\n";

describe("a coordinated mesh over IPv6", () => {
  let tmp: ReturnType<typeof tempDir>;
  let mesh: LocalMesh;
  const nodes: Record<string, DemoNode> = {};

  beforeAll(async () => {
    tmp = tempDir("ember-v6-mesh-");
    mesh = new LocalMesh(tmp.dir, () => undefined, "::1");
    await mesh.init("v6.test");
    const relay = await mesh.startRelay("relay-1");
    await mesh.startCoord([{ name: "relay-1", port: relay.port, stunPort: relay.stunPort }]);
    await mesh.start("relay", ["relay", "--name", "relay-1", "--listen", mesh.at(relay.port), "--stun", mesh.at(relay.stunPort),
      "--cert", relay.certFlags.cert, "--key", relay.certFlags.key, "--ca", relay.certFlags.ca, "--coord", mesh.coordUrl], /listen/);
    await mesh.admin().setPolicy(ALLOW_ALL);
    for (const name of ["v6-alpha", "v6-beta"]) {
      nodes[name] = { name, groups: [], dir: join(tmp.dir, name), socket: join(tmp.dir, name, "ember.sock") };
      await mesh.startNode(nodes[name], "t1");
    }
  }, 120_000);

  afterAll(async () => {
    await mesh?.stop();
    tmp?.cleanup();
  }, 30_000);

  it("enrolls over https://[::1], connects by name over a direct IPv6 path on the first try", async () => {
    expect(mesh.coordUrl).toMatch(/^https:\/\/\[::1\]:\d+/);
    const r = await mesh.request<{ rttMs: number }>(nodes["v6-alpha"], "ping", { name: "v6-beta", timeoutMs: 2_000 });
    expect(r.rttMs).toBeGreaterThan(0);
    const peer = await eventually(async () => {
      const p = (await mesh.request<any[]>(nodes["v6-alpha"], "peers")).find((x) => x.name === "v6-beta");
      return p?.path === "direct" ? p : undefined;
    }, 10_000, "a direct path");
    expect(peer.family).toBe("IPv6");
    expect(peer.endpoint).toMatch(/^\[::1\]:\d+$/);
    const table = ember(["peers", "--state", nodes["v6-alpha"].dir]).stdout;
    expect(table).toMatch(/v6-beta\s+\S+\s+connected\s+\S+\s+direct\s+IPv6/);
  }, 30_000);

  it("holds its relay over IPv6, and STUN on it sees the node's IPv6 socket", async () => {
    const st = await eventually(async () => {
      const s = await mesh.request<any>(nodes["v6-beta"], "status");
      return s.coordination?.relays?.[0]?.connected ? s : undefined;
    }, 10_000, "relay connected");
    expect(st.coordination.homeRelay).toBe("relay-1");
    const nc = JSON.parse(ember(["netcheck", "--state", nodes["v6-beta"].dir, "--json"]).stdout);
    expect(nc.servers[0].mapped.address).toBe("::1");
    expect(st.listen).toMatch(/^\[::1\]:\d+$/);
    expect(nc.servers[0].mapped.port).toBe(Number(st.listen.split(":").pop()));
  }, 30_000);
});
