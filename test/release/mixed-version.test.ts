// A mixed-version mesh in the NAT lab (docs/decisions.md "Compatibility window"): the previous release, as
// CHANGELOG.md names it, built from git history (previous-release.ts), against this tree.
//   1. New coordination server and relay; an old node and new nodes behind NATs: sessions, a direct path and the
//      relay path between old and new, 10 MB each way byte-exact on each, policy and revocation pushed by the new
//      server and obeyed by the old node, each node's version recorded by the server and `ember status` warning
//      about the old peer. Then the old node is upgraded in place (same state directory and config): the same
//      identity and certificate, its state migrated, the session and its services back, 10 MB each way again.
//   2. Old coordination server and relay; new nodes: enrollment, map, status reports, a direct path and the relay.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, type Host } from "../natlab/lab.js";
import { EmberLab, TENANT, type LabNode } from "../natlab/ember-mesh.js";
import { startTool } from "../natlab/tools.js";
import { ResultTable } from "../natlab/table.js";
import { EMBER } from "../helpers/cli.js";
import { tempDir } from "../helpers/pki.js";
import { buildPreviousRelease, type PreviousBuild } from "./previous-release.js";
import { PROTOCOL_VERSION } from "../../src/wire/protocol.js";
import { RELEASE } from "../../src/release.js";

const avail = Lab.available();
if (!avail.ok) console.log(`mixed-version NAT-lab test skipped: ${avail.why}`);

const MB = 1024 * 1024;
const TRANSFER = 10 * MB;
const SINK_PORT = 9000;
const ALLOW_ALL = "version: 1\nrules:\n  - allow: {source: \"*\", target: \"*\"}\n";
/** Both nodes announce the sink from their config file (the old node's file is read again after the upgrade). */
const NODE_CONFIG = `services:\n  sink: {to: "127.0.0.1:${SINK_PORT}", protocol: tcp, port: ${SINK_PORT}}\n`;

let prev: PreviousBuild;
const table = new ResultTable();

beforeAll(() => {
  if (!avail.ok) return;
  prev = buildPreviousRelease((l) => console.log(l));
  console.log(`mixed-version mesh: this tree (ember ${RELEASE.version}, protocol ${PROTOCOL_VERSION}) against ember ${prev.version} from commit ${prev.commit}`);
}, 900_000);

afterAll(() => {
  if (prev) console.log(`\nmixed versions: ${RELEASE.version} against ${prev.version} (commit ${prev.commit})\n${table.render()}\n`);
});

interface Transfer { bytes: number; sha256: string; remoteSha256?: string; remoteBytes: number; ms: number; mbps: number; error?: string }

/**
 * A fresh lab with a coordination server and one relay of `serverBin`'s release, and the sinks and helpers each
 * scenario uses; close() tears it all down.
 */
async function openMesh(prefix: string, serverBin: string) {
  const tmp = tempDir(prefix);
  const dir = tmp.dir;
  const lab = await Lab.create();
  const m = new EmberLab(lab, join(dir, "mesh"));
  m.bin = { coord: serverBin, relay: serverBin, admin: serverBin };
  await m.startServices({ relays: 1 });
  /** A host behind its own router (r + name) of this NAT kind. */
  const host = async (name: string, nat: "eim" | "none") => lab.addHost(name, await lab.addRouter(`r${name}`, nat));
  const sinks = new Set<string>();
  const configFile = join(dir, "node.yaml");
  writeFileSync(configFile, NODE_CONFIG);
  /** A node with the sink service (a hashing TCP server in its namespace) from the config file. */
  const node = async (name: string, host: Host, bin: string): Promise<LabNode> => {
    if (!sinks.has(host.name)) {
      sinks.add(host.name);
      const t = startTool(lab, host, "transfer", ["sink", "--port", String(SINK_PORT)]);
      expect(await t.nextJson(20_000)).toMatchObject({ ready: true });
    }
    if (bin === EMBER) m.nodeBin.delete(name); else m.nodeBin.set(name, bin);
    return m.startNode(name, host, {}, ["--config", configFile]);
  };
  /** `from` forwards a local port to sink.TO and sends `bytes` through it. */
  const transfer = async (from: LabNode, to: LabNode, bytes = TRANSFER): Promise<Transfer> => {
    const f = await m.request<{ listen: string }>(from, "forward", { listenPort: 0, host: `sink.${to.name}`, protocol: "tcp" });
    const port = Number(f.listen.split(":").pop());
    try {
      const t = startTool(lab, from.host, "transfer", ["send", "--port", String(port), "--bytes", String(bytes)]);
      return await m.diagnosed([from, to], () => t.nextJson<Transfer>(180_000));
    } finally {
      await m.request(from, "unforward", { listenPort: port }).catch(() => undefined);
    }
  };
  const exact = (r: Transfer, bytes = TRANSFER) => r.bytes === bytes && r.remoteBytes === bytes && r.sha256 === r.remoteSha256;
  /** TRANSFER bytes from `from` to `to`'s sink, in the table as `scenario`, and asserted byte-exact. */
  const checked = async (scenario: string, from: LabNode, to: LabNode): Promise<Transfer> => {
    const r = await transfer(from, to);
    table.add({ scenario, expected: "10 MB byte-exact", observed: `${exact(r) ? "sha256 equal" : "MISMATCH"}, ${r.mbps} Mbit/s`, ms: r.ms, ok: exact(r) });
    expect(exact(r), `${scenario}: ${JSON.stringify(r)}`).toBe(true);
    return r;
  };
  /** First pong from a to b, then a direct path (pinging: a resting pair moves only when data does). */
  const direct = async (a: LabNode, b: LabNode) => {
    const pongMs = await m.firstPong(a, b, 60_000);
    const d = await m.waitPathPinging(a, b, (p) => p === "direct", 90_000);
    expect(d.path, await m.diagnose([a, b])).toBe("direct");
    return { pongMs, directMs: d.ms };
  };
  /** Waits until `n` has sent a telemetry batch the server took, with no failure since (the node's own counters). */
  const telemetryAccepted = async (n: LabNode) => {
    const t0 = Date.now();
    let t: { batches: number; failures: number; lastError: string } | undefined;
    while (Date.now() - t0 < 30_000) {
      t = (await m.request<any>(n, "diagnostics")).telemetry;
      if (t && t.batches > 0 && !t.lastError) return t;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`${n.name} got no telemetry batch through: ${JSON.stringify(t)}`);
  };
  /** Tears the lab down, checks it left no namespace behind, and removes the files. */
  const close = async () => {
    try {
      await lab.destroy();
      expect(lab.existingNamespaces()).toEqual([]);
    } finally { tmp.cleanup(); }
  };
  /** Waits until `a` lists `b` with its sink service (the peer map carried the announcement). */
  const sees = async (a: LabNode, b: LabNode) => {
    const t0 = Date.now();
    while (Date.now() - t0 < 30_000) {
      const p = (await m.request<any[]>(a, "peers")).find((x) => x.name === b.name);
      if (p?.services?.some((s: { name: string }) => s.name === "sink")) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`${a.name} never saw ${b.name}'s sink service`);
  };
  const nodesList = async (bin: string) => {
    const r = await lab.run(m.coordHost, [process.execPath, bin, "nodes", "list", "--json", ...m.adminFlags()], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`nodes list failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as { name: string; protocol?: number; version?: string; endpoints: string[] }[];
  };
  return { lab, m, host, node, transfer, exact, checked, direct, sees, nodesList, telemetryAccepted, close };
}

describe.skipIf(!avail.ok)("mixed versions: new coordination server and relay, old and new nodes, then an upgrade in place", () => {
  let lab: Lab;
  let mesh: Awaited<ReturnType<typeof openMesh>>;
  let oldHost: Host, newHost: Host, xHost: Host;
  let oldNode: LabNode, newNode: LabNode, x: LabNode;

  beforeAll(async () => {
    mesh = await openMesh("ember-mixed-new-server-", EMBER);
    lab = mesh.lab;
    [oldHost, newHost, xHost] = [await mesh.host("old", "eim"), await mesh.host("new", "eim"), await mesh.host("x", "none")];
    [oldNode, newNode] = await Promise.all([mesh.node("old", oldHost, prev.bin), mesh.node("new", newHost, EMBER)]);
    x = await mesh.m.startNode("x", xHost);
    await Promise.all([mesh.sees(newNode, oldNode), mesh.sees(oldNode, newNode)]);
  }, 240_000);

  afterAll(async () => { await mesh?.close(); }, 60_000);

  it("old and new nodes hold a session over a direct path; 10 MB each way byte-exact", async () => {
    const d = await mesh.direct(newNode, oldNode);
    await mesh.m.firstPong(oldNode, newNode, 30_000);
    await mesh.checked("new -> old, direct", newNode, oldNode);
    await mesh.checked("old -> new, direct", oldNode, newNode);
    console.log(`first pong new -> old ${d.pongMs} ms; direct after ${d.directMs} ms`);
  }, 300_000);

  it("through the relay when UDP between them is cut; 10 MB each way byte-exact", async () => {
    const m = mesh.m;
    const cut = await lab.cutUdp(oldHost, newHost);
    try {
      const r1 = await m.waitPathPinging(newNode, oldNode, (p) => p.startsWith("relay"), 60_000);
      const r2 = await m.waitPathPinging(oldNode, newNode, (p) => p.startsWith("relay"), 60_000);
      expect([r1.path, r2.path], await m.diagnose([newNode, oldNode])).toEqual(["relay:relay-1", "relay:relay-1"]);
      await mesh.checked("new -> old, relay", newNode, oldNode);
      await mesh.checked("old -> new, relay", oldNode, newNode);
    } finally { await cut.restore(); }
  }, 300_000);

  it("the server records each node's version and takes the old node's telemetry; the new node's status warns that its old peer is too old", async () => {
    const m = mesh.m;
    const t0 = Date.now();
    let nodes = await mesh.nodesList(EMBER);
    while (Date.now() - t0 < 20_000 && !(nodes.find((n) => n.name === "old")?.protocol && nodes.find((n) => n.name === "new")?.protocol)) {
      await new Promise((r) => setTimeout(r, 500));
      nodes = await mesh.nodesList(EMBER);
    }
    expect(nodes.find((n) => n.name === "old")).toMatchObject({ protocol: 1 });
    expect(nodes.find((n) => n.name === "old")?.version).toBeUndefined();
    expect(nodes.find((n) => n.name === "new")).toMatchObject({ protocol: PROTOCOL_VERSION, version: RELEASE.version });
    const peer = (await m.request<any[]>(newNode, "peers")).find((p) => p.name === "old");
    expect(peer.version).toEqual({ protocol: 1 });
    const status = await m.request<any>(newNode, "status");
    const warning = status.problems.find((p: { code: string }) => p.code === "peer_outdated");
    expect(warning?.summary).toMatch(/peer old runs protocol 1/);
    table.add({ scenario: "versions seen", expected: "server: old = protocol 1, new = 2; status warns", observed: warning?.summary ?? "no warning", ms: 0, ok: !!warning });
    const tel = await mesh.telemetryAccepted(oldNode);
    table.add({ scenario: "old node's telemetry", expected: "batches taken by the new server", observed: `${tel.batches} batches, ${tel.failures} failures`, ms: 0, ok: true });
  }, 60_000);

  it("policy from the new server is enforced by the old node, and the new node's revocation reaches it", async () => {
    const m = mesh.m;
    // One direction at a time is allowed: each release applies the new server's policy (the sender pre-checks, the
    // receiver decides), so a denied flow is refused whichever release sends it.
    const denied = async () => {
      const st = await Promise.all([oldNode, newNode].map((n) => m.request<any>(n, "status")));
      return st.reduce((sum, s) => sum + s.flows.denied, 0);
    };
    const onlyFrom = async (from: LabNode, to: LabNode) => {
      await m.setPolicy(`version: 1\nrules:\n  - allow: {source: "${from.name}", target: "${to.name}"}\n  - allow: {source: "x", target: "*"}\n  - allow: {source: "*", target: "x"}\n`);
      const before = await denied();
      const t0 = Date.now();
      let refused: Transfer | undefined;
      while (Date.now() - t0 < 20_000) {
        const r = await mesh.transfer(to, from, 64 * 1024).catch((e) => ({ error: (e as Error).message }) as Transfer);
        if (!mesh.exact(r, 64 * 1024)) { refused = r; break; }
        await new Promise((res) => setTimeout(res, 500));
      }
      expect(refused, `${to.name} -> ${from.name} still allowed 20 s after the policy change`).toBeDefined();
      expect(await denied()).toBeGreaterThan(before);
      expect(mesh.exact(await mesh.transfer(from, to, 64 * 1024), 64 * 1024), `${from.name} -> ${to.name} refused`).toBe(true);
    };
    try {
      await onlyFrom(oldNode, newNode);
      await onlyFrom(newNode, oldNode);
    } finally { await m.setPolicy(ALLOW_ALL); }
    const deniedTotal = await denied();
    // Revocation: x (a new node) had a session with the old node; the new server revokes x.
    await m.firstPong(oldNode, x, 60_000);
    const r = await lab.run(m.coordHost, [process.execPath, EMBER, "nodes", "revoke", "x", ...m.adminFlags()], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const t1 = Date.now();
    let gone = false;
    while (Date.now() - t1 < 20_000 && !gone) {
      const p = (await m.request<any[]>(oldNode, "peers")).find((q) => q.name === "x");
      gone = !p || p.state === "revoked";
      if (!gone) await new Promise((res) => setTimeout(res, 250));
    }
    expect(gone, "the old node still holds a session with the revoked x").toBe(true);
    await expect(m.request(oldNode, "ping", { name: "x", timeoutMs: 1_000 }, 3_000)).rejects.toThrow();
    table.add({ scenario: "policy and revocation", expected: "old node refuses a denied flow; drops revoked x", observed: `${deniedTotal} flows denied; x gone after ${Date.now() - t1} ms`, ms: 0, ok: true });
  }, 120_000);

  it("the old node upgraded in place keeps its identity, migrates its state, and its session and flows come back", async () => {
    const m = mesh.m;
    const before = await m.request<any>(oldNode, "status");
    await m.stopNode(oldNode);
    const t0 = Date.now();
    oldNode = await mesh.node("old", oldHost, EMBER);
    const after = await m.request<any>(oldNode, "status");
    expect(after.identity).toBe(before.identity);
    expect(after.certificate).toEqual(before.certificate);
    expect(JSON.parse(readFileSync(join(oldNode.dir, "state.json"), "utf8"))).toEqual({ format: 2, writtenBy: RELEASE.version });
    await mesh.sees(newNode, oldNode);
    const d = await mesh.direct(newNode, oldNode);
    await mesh.checked("upgraded: new -> old", newNode, oldNode);
    await mesh.checked("upgraded: old -> new", oldNode, newNode);
    const peer = (await m.request<any[]>(newNode, "peers")).find((p) => p.name === "old");
    expect(peer.version).toEqual({ protocol: PROTOCOL_VERSION, software: RELEASE.version });
    const status = await m.request<any>(newNode, "status");
    expect(status.problems.filter((p: { code: string }) => p.code === "peer_outdated")).toEqual([]);
    table.add({
      scenario: "upgrade in place", expected: "same identity and certificate; session, path and flows back",
      observed: `serial ${after.certificate.serial.slice(0, 8)} kept; first pong ${d.pongMs} ms after the restart, direct ${d.directMs} ms later`,
      ms: Date.now() - t0, ok: true,
    });
  }, 300_000);
});

describe.skipIf(!avail.ok)("mixed versions: old coordination server and relay, new nodes", () => {
  let lab: Lab;
  let mesh: Awaited<ReturnType<typeof openMesh>>;
  let aHost: Host, bHost: Host;
  let a: LabNode, b: LabNode;

  beforeAll(async () => {
    mesh = await openMesh("ember-mixed-old-server-", prev.bin);
    lab = mesh.lab;
    [aHost, bHost] = [await mesh.host("a", "eim"), await mesh.host("b", "eim")];
    [a, b] = await Promise.all([mesh.node("a", aHost, EMBER), mesh.node("b", bHost, EMBER)]);
    await Promise.all([mesh.sees(a, b), mesh.sees(b, a)]);
  }, 240_000);

  afterAll(async () => { await mesh?.close(); }, 60_000);

  it("new nodes enroll, report their endpoints, hold a direct path and move 10 MB through it", async () => {
    const m = mesh.m;
    await mesh.direct(a, b);
    // The old server took the new nodes' status reports (with fields it does not know): their endpoints are listed.
    const nodes = await mesh.nodesList(prev.bin);
    expect(nodes.find((n) => n.name === "a")?.endpoints.length).toBeGreaterThan(0);
    await mesh.checked("old server: new -> new, direct", a, b);
    // Telemetry of a new node (its batches carry protocol and version) taken by the old server.
    const tel = await mesh.telemetryAccepted(a);
    table.add({ scenario: "old server: new node's telemetry", expected: "batches taken", observed: `${tel.batches} batches, ${tel.failures} failures`, ms: 0, ok: true });
    const st = await m.request<any>(a, "status");
    expect(st.coordination.relays.find((x: { name: string }) => x.name === "relay-1")?.connected).toBe(true);
  }, 180_000);

  it("through the old relay when UDP between them is cut", async () => {
    const m = mesh.m;
    const cut = await lab.cutUdp(aHost, bHost);
    try {
      const r = await m.waitPathPinging(a, b, (p) => p.startsWith("relay"), 60_000);
      expect(r.path, await m.diagnose([a, b])).toBe("relay:relay-1");
      await mesh.checked("old relay: new -> new", b, a);
    } finally { await cut.restore(); }
  }, 180_000);

  it("tenant and identity as the old server issued them", async () => {
    const st = await mesh.m.request<any>(a, "status");
    expect(st.tenant).toBe(TENANT);
    expect(st.name).toBe("a");
  });
});
