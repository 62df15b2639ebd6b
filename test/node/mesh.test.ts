// A coordinated mesh of real processes on loopback (coordination server, relay, nodes enrolled with
// tokens): sessions survive a coordination outage (kill -9), and a revocation drops the revoked node's
// sessions at its peers and keeps it out.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { LocalMesh, type DemoNode } from "../../src/cli/demo-mesh.js";
import { eventually } from "../helpers/nodes.js";
import { ember } from "../helpers/cli.js";
import { tempDir } from "../helpers/pki.js";

const ALLOW_ALL = "version: 1\nrules:\n  - allow: {source: \"*\", target: \"*\"}\n";

describe("coordinated mesh", () => {
  let tmp: ReturnType<typeof tempDir>;
  let mesh: LocalMesh;
  let coordProc: import("node:child_process").ChildProcess;
  const nodes: Record<string, DemoNode> = {};

  beforeAll(async () => {
    tmp = tempDir("ember-mesh-");
    mesh = new LocalMesh(tmp.dir, () => undefined);
    await mesh.init("mesh.test");
    const relay = await mesh.startRelay("relay-1");
    await mesh.startCoord([{ name: "relay-1", port: relay.port, stunPort: relay.stunPort }]);
    coordProc = mesh.procs[mesh.procs.length - 1];
    await mesh.start("relay", ["relay", "--name", "relay-1", "--listen", `127.0.0.1:${relay.port}`, "--stun", `127.0.0.1:${relay.stunPort}`,
      "--cert", relay.certFlags.cert, "--key", relay.certFlags.key, "--ca", relay.certFlags.ca, "--coord", mesh.coordUrl], /listen/);
    await mesh.admin().setPolicy(ALLOW_ALL);
    for (const name of ["alpha", "beta", "gamma"]) {
      nodes[name] = { name, groups: [], dir: join(tmp.dir, name), socket: join(tmp.dir, name, "ember.sock") };
      await mesh.startNode(nodes[name], "t1");
    }
  }, 120_000);

  afterAll(async () => {
    await mesh?.stop();
    tmp?.cleanup();
  }, 30_000);

  const ping = (from: string, to: string) => mesh.request<{ rttMs: number }>(nodes[from], "ping", { name: to, timeoutMs: 2_000 });

  it("connects every pair by name", async () => {
    for (const [a, b] of [["alpha", "beta"], ["beta", "gamma"], ["gamma", "alpha"]]) {
      const r = await eventually(() => ping(a, b).catch(() => undefined), 30_000, `${a} -> ${b}`);
      expect(r.rttMs).toBeGreaterThan(0);
    }
  }, 90_000);

  it("a service exposed with ember serve appears in every peer's map, and leaves it when withdrawn", async () => {
    const serve = ember(["serve", "web", "--to", "127.0.0.1:8080", "--protocol", "https", "--state", nodes.alpha.dir, "--json"]);
    expect(serve.code, serve.stderr).toBe(0);
    expect(JSON.parse(serve.stdout)).toEqual([{ name: "web", port: 443, protocol: "https", to: "127.0.0.1:8080" }]);
    const seen = (from: string) => mesh.request<{ name: string; services: unknown[] }[]>(nodes[from], "peers")
      .then((ps) => ps.find((p) => p.name === "alpha")?.services);
    for (const n of ["beta", "gamma"]) {
      expect(await eventually(async () => ((await seen(n))?.length ? seen(n) : undefined), 10_000, `${n} sees alpha's service`))
        .toEqual([{ name: "web", port: 443, protocol: "https" }]);
    }
    const bad = ember(["serve", "Web!", "--to", "127.0.0.1:8080", "--state", nodes.alpha.dir]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/service name "Web!" must be a lowercase DNS label/);
    const clash = ember(["serve", "web2", "--to", "127.0.0.1:9000", "--port", "443", "--state", nodes.alpha.dir]);
    expect(clash.stderr).toMatch(/tcp port 443 is already service web/);
    expect(ember(["serve", "web", "--remove", "--state", nodes.alpha.dir]).code).toBe(0);
    await eventually(async () => ((await seen("beta"))?.length === 0 ? true : undefined), 10_000, "withdrawn service leaves beta's map");
  }, 40_000);

  it("a node listens on nothing but its one overlay UDP socket (invariant 4: control plane and relay are outbound)", () => {
    const pid = nodes.alpha.proc!.pid!;
    const r = spawnSync("ss", ["-H", "-n", "-a", "-p", "-t", "-u"], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const mine = r.stdout.split("\n").filter((l) => l.includes(`pid=${pid},`));
    const tcpListen = mine.filter((l) => /^tcp\s+LISTEN/.test(l));
    const udp = mine.filter((l) => l.startsWith("udp"));
    const tcpOut = mine.filter((l) => /^tcp\s+ESTAB/.test(l));
    expect(tcpListen, mine.join("\n")).toEqual([]);
    expect(udp, mine.join("\n")).toHaveLength(1);
    const st = JSON.parse(ember(["status", "--state", nodes.alpha.dir, "--json"]).stdout);
    expect(udp[0]).toContain(st.listen);
    expect(tcpOut.length).toBeGreaterThanOrEqual(2); // its map stream to the coordination server and its relay link
  });

  it("ember status and ember netcheck ask the running daemon", async () => {
    const st = JSON.parse(ember(["status", "--state", nodes.alpha.dir, "--json"]).stdout);
    expect(st.coordination.homeRelay).toBe("relay-1");
    const beta = st.peers.find((p: any) => p.name === "beta");
    expect(beta).toMatchObject({ state: "connected" });
    expect(beta.path === "direct" || beta.path === "relay:relay-1").toBe(true);
    expect(beta.rxBytes).toBeGreaterThan(0);
    expect(beta.lastHandshake).toBeDefined();
    // Overlay addresses from the coordination server: the node's own, and each peer's as its map says.
    expect(st.overlayIp).toMatch(/^100\.\d+\.\d+\.\d+$/);
    const betaSt = JSON.parse(ember(["status", "--state", nodes.beta.dir, "--json"]).stdout);
    expect(beta.overlayIp).toBe(betaSt.overlayIp);
    expect(beta.overlayIp).not.toBe(st.overlayIp);
    const table = ember(["peers", "--state", nodes.alpha.dir]);
    expect(table.stdout).toContain("OVERLAY IP");
    expect(table.stdout).toContain(beta.overlayIp);
    const nc = ember(["netcheck", "--state", nodes.alpha.dir, "--json"]);
    expect(nc.code, nc.stderr).toBe(0);
    const report = JSON.parse(nc.stdout);
    // The daemon's own socket: the STUN server saw the daemon's listen port, not a fresh one.
    const port = Number(String(st.listen).split(":").pop());
    expect(report.servers[0].mapped).toEqual({ address: "127.0.0.1", port });
    expect(report.servers[0].rttMs).toBeGreaterThan(0);
  }, 60_000);

  it("keeps sessions and traffic while the coordination server is down", async () => {
    coordProc.kill("SIGKILL");
    await new Promise((r) => coordProc.once("exit", r));
    const end = Date.now() + 6_000;
    let rounds = 0;
    while (Date.now() < end) {
      expect((await ping("alpha", "beta")).rttMs).toBeGreaterThan(0);
      expect((await ping("beta", "alpha")).rttMs).toBeGreaterThan(0);
      rounds++;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(rounds).toBeGreaterThan(5);
    const st = await mesh.request<any>(nodes.alpha, "status");
    expect(st.peers.map((p: any) => p.name).sort()).toEqual(["beta", "gamma"]);
  }, 60_000);

  it("restarts the coordination server on the same data, nodes reconnect, and a revocation drops the node everywhere", async () => {
    await mesh.startCoordAgain();
    await eventually(async () => (await mesh.admin().listNodes()).nodes?.filter((n: any) => n.online).length === 3 || undefined, 30_000, "nodes reconnected");
    await mesh.admin().revoke("gamma");
    // Peers drop gamma: it leaves their maps and its sessions end; pings to it fail.
    await eventually(async () => {
      const peers = await mesh.request<any[]>(nodes.alpha, "peers");
      return !peers.some((p) => p.name === "gamma" && p.state === "connected") || undefined;
    }, 5_000, "alpha dropped gamma");
    await expect(ping("alpha", "gamma")).rejects.toThrow();
    await expect(ping("gamma", "beta")).rejects.toThrow();
    expect((await ping("alpha", "beta")).rttMs).toBeGreaterThan(0);
  }, 90_000);
});
