// EmberNet across real NATs: nodes behind endpoint-independent, endpoint-dependent, UDP-blocking and
// lossy routers reach each other by identity name; each scenario asserts the path it reaches and that
// traffic passes both ways, and records the time to the first encrypted round trip.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { Lab, type Host } from "./lab.js";
import { ResultTable } from "./table.js";
import { EmberLab, type LabNode } from "./ember-mesh.js";
import { tempDir } from "../helpers/pki.js";

const avail = Lab.available();
if (!avail.ok) console.log(`natlab traversal tests skipped: ${avail.why}`);

// Which pairs may talk (and so see each other): only the scenario pairs, to keep the lab light.
const PAIRS: [string, string][] = [["n1", "n2"], ["e1", "e2"], ["e1", "n1"], ["d1", "d2"], ["d1", "e2"], ["u1", "n2"], ["l1", "n2"]];
const POLICY = `version: 1\nrules:\n${PAIRS.map(([a, b]) => `  - allow: {source: ${a}, target: ${b}}`).join("\n")}\n`;

describe.skipIf(!avail.ok)("NAT traversal in the lab", () => {
  let lab: Lab;
  let tmp: ReturnType<typeof tempDir>;
  let m: EmberLab;
  const nodes: Record<string, LabNode> = {};
  const table = new ResultTable();
  let policyAt = 0;

  beforeAll(async () => {
    tmp = tempDir("ember-natlab-");
    lab = await Lab.create({ prefix: "trv" });
    m = new EmberLab(lab, join(tmp.dir, "mesh"));
    await m.startServices();
    await m.setPolicy("version: 1\nrules: []\n");
    const kinds: [string, "none" | "eim" | "edm" | "udp-blocked"][] = [
      ["n1", "none"], ["n2", "none"], ["e1", "eim"], ["e2", "eim"], ["d1", "edm"], ["d2", "edm"], ["u1", "udp-blocked"], ["l1", "eim"],
    ];
    const hosts: Record<string, Host> = {};
    for (const [name, kind] of kinds) hosts[name] = await lab.addHost(name, await lab.addRouter(`r${name}`, kind));
    await Promise.all(kinds.map(async ([name]) => { nodes[name] = await m.startNode(name, hosts[name]); }));
    await lab.setLoss(hosts.l1.router, 10);
    policyAt = Date.now();
    await m.setPolicy(POLICY);
  }, 180_000);

  afterAll(async () => {
    console.log(`\nNAT traversal scenarios (time = first encrypted round trip after the policy allowed the pair)\n${table.render()}\n`);
    await lab?.destroy();
    if (lab) expect(lab.existingNamespaces()).toEqual([]);
    tmp?.cleanup();
  }, 60_000);

  /** One round trip, retried a few times: on the lossy router single datagrams are expected to get lost. */
  async function pingRetry(from: LabNode, to: string, attempts = 4): Promise<{ rttMs: number }> {
    let last: unknown;
    for (let i = 0; i < attempts; i++) {
      try { return await m.request(from, "ping", { name: to, timeoutMs: 2_000 }, 4_000); } catch (err) { last = err; }
    }
    throw last;
  }

  /** Connects a -> b, waits for the path to settle, checks traffic both ways by name, records a row. */
  async function scenario(label: string, a: string, b: string, expected: string, accept: (p: string) => boolean, settleMs = 8_000) {
    const [na, nb] = [nodes[a], nodes[b]];
    await m.firstPong(na, nb, 45_000);
    const connectMs = Date.now() - policyAt;
    const { path } = await m.waitPath(na, nb, accept, settleMs);
    const there = await pingRetry(na, b);
    const back = await pingRetry(nb, a);
    table.add({ scenario: `${label} (${a} -> ${b})`, expected, observed: path, ms: connectMs, ok: accept(path) });
    expect(there.rttMs).toBeGreaterThan(0);
    expect(back.rttMs).toBeGreaterThan(0);
    return path;
  }

  it("no NAT <-> no NAT: direct", async () => {
    expect(await scenario("none <-> none", "n1", "n2", "direct", (p) => p === "direct")).toBe("direct");
  }, 60_000);

  it("EIM NAT <-> EIM NAT: direct (low-TTL punching through two Linux NATs)", async () => {
    expect(await scenario("eim <-> eim", "e1", "e2", "direct", (p) => p === "direct", 15_000)).toBe("direct");
  }, 60_000);

  it("EIM NAT <-> no NAT: direct", async () => {
    expect(await scenario("eim <-> none", "e1", "n1", "direct", (p) => p === "direct")).toBe("direct");
  }, 60_000);

  it("EDM NAT <-> EDM NAT: relay", async () => {
    expect(await scenario("edm <-> edm", "d1", "d2", "relay", (p) => p.startsWith("relay:"), 3_000)).toMatch(/^relay:/);
  }, 60_000);

  it("EDM NAT <-> EIM NAT: relay or direct, reported", async () => {
    const path = await scenario("edm <-> eim", "d1", "e2", "relay or direct", (p) => p.startsWith("relay:") || p === "direct", 5_000);
    console.log(`edm <-> eim reached: ${path}`);
  }, 60_000);

  it("UDP blocked <-> no NAT: relay over TCP 443", async () => {
    expect(await scenario("udp-blocked <-> none", "u1", "n2", "relay", (p) => p.startsWith("relay:"), 3_000)).toMatch(/^relay:/);
    const nc = await m.request(nodes.u1, "netcheck", {}, 15_000);
    expect(nc.mapping).toBe("udp-blocked");
  }, 60_000);

  it("10% random loss on one router: connects and keeps passing traffic", async () => {
    await scenario("eim with 10% loss <-> none", "l1", "n2", "connected", (p) => p !== "-", 5_000);
    let ok = 0;
    for (let i = 0; i < 20; i++) {
      try { await m.request(nodes.l1, "ping", { name: "n2", timeoutMs: 1_000 }, 3_000); ok++; } catch { /* a lost round trip */ }
    }
    table.add({ scenario: "  20 pings through 10% loss", expected: ">= 10 answered", observed: `${ok} answered`, ms: null, ok: ok >= 10 });
    expect(ok).toBeGreaterThanOrEqual(10);
  }, 90_000);

  it("a direct path cut mid-session falls back to the relay within 5 s without a new session, and returns", async () => {
    const [a, b] = [nodes.n1, nodes.n2];
    await m.waitPath(a, b, (p) => p === "direct", 10_000);
    const before = (await m.request<any[]>(a, "peers")).find((p) => p.name === "n2");
    expect(before.path).toBe("direct");
    const cut = await lab.cutUdp(a.host, b.host);
    const down = await m.waitPath(a, b, (p) => p.startsWith("relay:"), 8_000);
    table.add({ scenario: "direct path cut (n1 -> n2)", expected: "relay within 5 s", observed: down.path, ms: down.ms, ok: down.path.startsWith("relay:") && down.ms <= 5_000 });
    expect(down.path).toMatch(/^relay:/);
    expect(down.ms).toBeLessThanOrEqual(5_000);
    expect((await m.request(a, "ping", { name: "n2", timeoutMs: 3_000 })).rttMs).toBeGreaterThan(0);
    const during = (await m.request<any[]>(a, "peers")).find((p) => p.name === "n2");
    expect(during.handshakes).toBe(before.handshakes); // same session, only the path moved
    await cut.restore();
    const up = await m.waitPath(a, b, (p) => p === "direct", 15_000);
    table.add({ scenario: "path restored (n1 -> n2)", expected: "direct", observed: up.path, ms: up.ms, ok: up.path === "direct" });
    expect(up.path).toBe("direct");
  }, 90_000);
});
