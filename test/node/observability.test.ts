// The node CLI's health verbs and the Prometheus metrics, on a real mesh on loopback: `ember ping` prints
// the path and RTT of each try, `ember whois` by name and by address, `ember logs --policy|--connections`
// (and --follow), and /metrics of a node, the relay and the coordination server scraped with a real HTTP
// client and parsed as Prometheus text format.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { freeTcpPort, LocalMesh, type DemoNode } from "../../src/cli/demo-mesh.js";
import { eventually } from "../helpers/nodes.js";
import { ember, EMBER } from "../helpers/cli.js";
import { tempDir } from "../helpers/pki.js";

const POLICY = `version: 1
rules:
  - allow: {source: alpha, target: beta, protocol: tcp, ports: [22]}
  - allow: {source: beta, target: alpha, protocol: any}
`;

/** Prometheus text format (0.0.4), strictly: HELP/TYPE comments and samples; answers name{labels} -> value. */
function parseProm(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const c = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (c) { if (c[1] === "TYPE") { expect(["counter", "gauge", "histogram", "summary", "untyped"]).toContain(c[3]); types.set(c[2], c[3]); } continue; }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+|NaN|[+-]Inf)$/.exec(line);
    expect(m, `not a Prometheus sample line: ${line}`).not.toBeNull();
    out.set(m![1] + (m![2] ?? ""), Number(m![3]));
  }
  return out;
}
const first = (m: Map<string, number>, prefix: string, ...labels: string[]) =>
  [...m].filter(([k]) => k.startsWith(prefix) && labels.every((l) => k.includes(l))).reduce((a, [, v]) => a + v, 0);

describe("health verbs and metrics on a loopback mesh", () => {
  let tmp: ReturnType<typeof tempDir>;
  let mesh: LocalMesh;
  const nodes: Record<string, DemoNode> = {};
  const ports: Record<string, number> = {};

  beforeAll(async () => {
    process.env.EMBER_TELEMETRY_INTERVAL_MS = "1000";
    tmp = tempDir("ember-obs-");
    mesh = new LocalMesh(tmp.dir, () => undefined);
    await mesh.init("obs.test");
    const relay = await mesh.startRelay("relay-1");
    for (const k of ["coord", "coordMetrics", "relayMetrics", "alpha", "beta"]) ports[k] = await freeTcpPort();
    const { line } = await mesh.start("coordination server", ["coord", "--data", join(tmp.dir, "coord-data"), "--ca-dir", mesh.ca.dir, "--listen", `127.0.0.1:${ports.coord}`,
      "--relay", `relay-1=127.0.0.1:${relay.port}:${relay.stunPort}`, "--metrics", `127.0.0.1:${ports.coordMetrics}`], /coordination server https:\/\//);
    mesh.coordUrl = /(https:\/\/\S+)/.exec(line)![1];
    await mesh.start("relay", ["relay", "--name", "relay-1", "--listen", `127.0.0.1:${relay.port}`, "--stun", `127.0.0.1:${relay.stunPort}`, "--metrics", `127.0.0.1:${ports.relayMetrics}`,
      "--cert", relay.certFlags.cert, "--key", relay.certFlags.key, "--ca", relay.certFlags.ca, "--coord", mesh.coordUrl], /listen/);
    await mesh.admin().setPolicy(POLICY);
    for (const name of ["alpha", "beta"]) {
      nodes[name] = { name, groups: [], dir: join(tmp.dir, name), socket: join(tmp.dir, name, "ember.sock") };
      await mesh.startNode(nodes[name], "acme", ["--metrics", `127.0.0.1:${ports[name]}`]);
    }
    await eventually(() => mesh.request(nodes.alpha, "ping", { name: "beta", timeoutMs: 2_000 }).catch(() => undefined), 30_000, "alpha -> beta");
  }, 120_000);

  afterAll(async () => {
    delete process.env.EMBER_TELEMETRY_INTERVAL_MS;
    await mesh?.stop();
    tmp?.cleanup();
  }, 30_000);

  it("ember ping prints the path and round trip of each try", () => {
    const r = ember(["ping", "beta", "-c", "3", "--state", nodes.alpha.dir]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(3);
    for (const l of lines) expect(l).toMatch(/^pong from beta via (direct 127\.0\.0\.1:\d+|relay:relay-1) in \d+\.\d{3} ms$/);
    const j = JSON.parse(ember(["ping", "beta", "-c", "2", "--state", nodes.alpha.dir, "--json"]).stdout);
    expect(j).toMatchObject({ name: "beta", sent: 2, received: 2 });
    expect(j.tries[0]).toMatchObject({ seq: 1, path: expect.stringMatching(/^(direct|relay:relay-1)$/), rttMs: expect.any(Number) });
    const none = ember(["ping", "nobody", "-c", "1", "--state", nodes.alpha.dir]);
    expect(none.code).toBe(1);
    expect(none.stdout).toMatch(/no pong from nobody: unknown peer "nobody"/);
  });

  it("ember whois names a peer by name and by address: identity, tenant, groups, serial and expiry", async () => {
    const byName = JSON.parse(ember(["whois", "beta", "--state", nodes.alpha.dir, "--json"]).stdout);
    expect(byName).toMatchObject({ name: "beta", self: false, tenant: "acme", identity: "spiffe://obs.test/acme/beta", source: "verified session certificate" });
    expect(byName.serial).toMatch(/^[0-9a-f]+$/);
    expect(Date.parse(byName.notAfter)).toBeGreaterThan(Date.now());
    const peers = await mesh.request<any[]>(nodes.alpha, "peers");
    const addr = peers.find((p) => p.name === "beta").endpoint as string;
    const byAddr = JSON.parse(ember(["whois", addr.startsWith("relay") ? "127.0.0.1" : addr, "--state", nodes.alpha.dir, "--json"]).stdout);
    expect(byAddr.name).toBe("beta");
    const text = ember(["whois", "beta", "--state", nodes.alpha.dir]).stdout;
    expect(text).toMatch(/^serial\s+[0-9a-f]+$/m);
    const missing = ember(["whois", "198.18.99.99", "--state", nodes.alpha.dir]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no peer named or seen at "198.18.99.99"/);
  });

  it("ember logs --connections and --policy, and --follow prints new decisions as they happen", async () => {
    const conns = ember(["logs", "--connections", "--state", nodes.alpha.dir, "--json"]).stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(conns.map((e) => e.event)).toEqual(expect.arrayContaining(["coord_connected", "handshake_ok"]));
    expect(conns.every((e) => e.kind === "connections" && typeof e.seq === "number" && typeof e.at === "string")).toBe(true);
    // Follow the policy log, then make a denied flow: alpha -> beta:5432 (only 22 is allowed).
    const follow = spawn(process.execPath, [EMBER, "logs", "--policy", "--follow", "--json", "--state", nodes.alpha.dir], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      const seen: any[] = [];
      createInterface({ input: follow.stdout! }).on("line", (l) => seen.push(JSON.parse(l)));
      await new Promise((r) => setTimeout(r, 1_500));
      const f = await mesh.request<{ listen: string }>(nodes.alpha, "forward", { listenPort: 0, host: "beta", port: 5432, protocol: "tcp" });
      const port = Number(f.listen.split(":").pop());
      await new Promise<void>((resolve) => { const s = connect(port, "127.0.0.1"); s.on("close", () => resolve()); s.on("error", () => resolve()); });
      const line = await eventually(() => seen.find((e) => e.event === "flow_denied"), 10_000, "a flow_denied line from --follow");
      expect(line).toMatchObject({ kind: "policy", verdict: "deny", side: "sender", flow: "alpha.acme -> beta.acme:5432/tcp", reason: "default deny", peer: "beta" });
    } finally {
      follow.kill("SIGTERM");
    }
    const text = ember(["logs", "--policy", "--state", nodes.alpha.dir]).stdout;
    expect(text).toMatch(/flow_denied\s+verdict=deny side=sender flow="alpha\.acme -> beta\.acme:5432\/tcp"/);
    // ember status names the missing rule.
    const st = JSON.parse(ember(["status", "--state", nodes.alpha.dir, "--json"]).stdout);
    expect(st.problems.find((p: any) => p.code === "policy_missing").summary).toMatch(/nearest rule 1 .*port: the rule allows 22, the flow is to 5432/);
  }, 60_000);

  it("metrics of a node, the relay and the coordination server, scraped over HTTP and parsed as Prometheus text", async () => {
    const scrape = async (port: number) => {
      const r = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      return parseProm(await r.text());
    };
    const node = await scrape(ports.alpha);
    expect(first(node, "ember_node_sessions")).toBeGreaterThanOrEqual(1);
    expect(first(node, "ember_node_handshakes_total", 'result="ok"')).toBeGreaterThanOrEqual(1);
    expect(first(node, "ember_node_bytes_total", 'direction="tx"')).toBeGreaterThan(0);
    expect(first(node, "ember_node_policy_decisions_total", 'verdict="deny"', 'side="sender"')).toBeGreaterThanOrEqual(1);
    expect(first(node, "ember_node_coordination_connected")).toBe(1);
    expect(first(node, "ember_node_peer_rtt_ms", 'peer="beta"')).toBeGreaterThan(0);
    expect([...node.keys()].every((k) => k.includes('node="alpha"'))).toBe(true);
    const coord = await scrape(ports.coordMetrics);
    expect(first(coord, "ember_coord_nodes_connected")).toBe(2);
    expect(first(coord, "ember_coord_events_total", 'event="enrollments"')).toBe(2);
    expect(first(coord, "ember_coord_map_push_seconds_count")).toBeGreaterThan(0);
    expect(first(coord, "ember_coord_tokens_total", 'result="granted"')).toBeGreaterThanOrEqual(2);
    expect(first(coord, "ember_coord_telemetry_events_total", 'result="stored"')).toBeGreaterThan(0);
    const relay = await scrape(ports.relayMetrics);
    expect(first(relay, "ember_relay_connected_nodes")).toBe(2);
    expect([...relay.keys()].some((k) => k.startsWith("ember_relay_drops_total") && k.includes('reason="queue_full"'))).toBe(true);
  });
});
