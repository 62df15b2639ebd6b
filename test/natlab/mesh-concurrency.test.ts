// Issue 10: six nodes behind five sites, started within one second under allow-all. Sites: one Linux NAT
// (no hairpin) with two nodes on different subnets behind it, an endpoint-independent NAT whose WAN link has
// MTU 1280, a home NAT behind a carrier NAT (NAT444), an endpoint-dependent NAT, a UDP-blocked site.
// Every directed path among the four nodes behind endpoint-independent NATs must be direct within
// DIRECT_WITHIN_MS of the last node's start and stay direct (no path switch) for HOLD_MS while the pairs are
// pinged; pairs that cannot be direct stay on the relay and answer pings. The figures go to the printed table
// (docs/nat.md records them); when a path is not direct, each NAT's conntrack UDP entries are printed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { Lab, type Host, type Router } from "./lab.js";
import { EmberLab, type LabNode } from "./ember-mesh.js";
import { ResultTable } from "./table.js";
import { tempDir } from "../helpers/pki.js";

const avail = Lab.available();
if (!avail.ok) console.log(`natlab mesh-concurrency tests skipped: ${avail.why}`);

/** Behind endpoint-independent NATs: every directed path among these can be direct. */
const EIM_NODES = ["a1", "a2", "b1", "c1"];
const NAMES = [...EIM_NODES, "d1", "u1"];
const DIRECT_WITHIN_MS = 10_000;
/** How long the figures keep being sampled when not everything is direct yet (the "before" figure). */
const OBSERVE_MS = 30_000;
const HOLD_MS = 60_000;
/** The direct-path assertions are enforced (they were off while the test only measured the "before" figure). */
const STRICT = true;

const directed = (names: string[]) => names.flatMap((a) => names.filter((b) => b !== a).map((b) => `${a}>${b}`));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!avail.ok)("six nodes behind five NAT sites, started together (issue 10)", () => {
  let lab: Lab;
  let tmp: ReturnType<typeof tempDir>;
  let m: EmberLab;
  const nodes: Record<string, LabNode> = {};
  const hosts: Record<string, Host> = {};
  const routers: Router[] = [];
  const table = new ResultTable();
  let lastUp = 0;

  async function peers(n: string): Promise<any[]> {
    return m.request<any[]>(nodes[n], "peers").catch(() => []);
  }

  /** Every directed path's `path` as each node reports it, plus the path manager's switch counts. */
  async function snapshot(names: string[]): Promise<{ path: Map<string, string>; switches: Map<string, number>; peer: Map<string, any> }> {
    const path = new Map<string, string>(), switches = new Map<string, number>(), peer = new Map<string, any>();
    await Promise.all(names.map(async (a) => {
      for (const p of await peers(a)) {
        if (!names.includes(p.name)) continue;
        path.set(`${a}>${p.name}`, p.path);
        switches.set(`${a}>${p.name}`, p.paths?.switches ?? 0);
        peer.set(`${a}>${p.name}`, p);
      }
    }));
    return { path, switches, peer };
  }

  /**
   * Each NAT's conntrack UDP entries between the nodes' candidate ports (spray probes and STUN left out): an
   * UNREPLIED entry from a peer, or a reply tuple whose port differs from the original, shows a clash remap.
   */
  function conntrackDump(ports: Set<number>): string {
    return routers.map((r) => {
      let lines: string[];
      try { lines = lab.conntrackUdp(r); } catch (err) { lines = [`(conntrack: ${(err as Error).message})`]; }
      const between = lines.filter((l) => {
        const m = /sport=(\d+) dport=(\d+)/.exec(l);
        return !!m && ports.has(Number(m[1])) && ports.has(Number(m[2]));
      });
      return `${r.name}:\n  ${between.slice(0, 24).join("\n  ")}`;
    }).join("\n");
  }

  /** The ports of every candidate the EIM nodes know of each other (their listen and reflexive ports). */
  function candidatePorts(peer: Map<string, any>): Set<number> {
    const ports = new Set<number>();
    for (const p of peer.values()) for (const c of p.paths?.candidates ?? []) ports.add(Number(String(c.endpoint).split(":").pop()));
    return ports;
  }

  beforeAll(async () => {
    tmp = tempDir("ember-natlab-conc-");
    lab = await Lab.create();
    m = new EmberLab(lab, join(tmp.dir, "mesh"));
    await m.startServices(); // allow-all policy
    const ra = await lab.addRouter("ra", "eim");
    hosts.a1 = await lab.addHost("a1", ra);
    hosts.a2 = await lab.addHost("a2", ra, await lab.addSubnet(ra));
    const rb = await lab.addRouter("rb", "eim");
    await lab.setWanMtu(rb, 1280);
    hosts.b1 = await lab.addHost("b1", rb);
    const cgn = await lab.addRouter("rcg", "eim");
    const rc = await lab.addRouter("rc", "eim", { behind: cgn });
    hosts.c1 = await lab.addHost("c1", rc);
    const rd = await lab.addRouter("rd", "edm");
    hosts.d1 = await lab.addHost("d1", rd);
    const ru = await lab.addRouter("ru", "udp-blocked");
    hosts.u1 = await lab.addHost("u1", ru);
    routers.push(ra, rb, cgn, rc, rd);
    // Tokens first (each is a CLI run), so that all six daemons start within one second.
    const tokens: Record<string, string> = {};
    for (const n of NAMES) tokens[n] = await m.token();
    await Promise.all(NAMES.map(async (n) => { nodes[n] = await m.startNode(n, hosts[n], {}, [], tokens[n]); }));
    lastUp = Math.max(...NAMES.map((n) => nodes[n].upAt));
  }, 240_000);

  afterAll(async () => {
    console.log(`\nsix nodes behind five NAT sites, started together\n${table.render()}\n`);
    await lab?.destroy();
    if (lab) expect(lab.existingNamespaces()).toEqual([]);
    tmp?.cleanup();
  }, 60_000);

  it("all six daemons start within one second", () => {
    const spawned = NAMES.map((n) => nodes[n].startedAt);
    const spread = Math.max(...spawned) - Math.min(...spawned);
    const upSpread = lastUp - Math.min(...NAMES.map((n) => nodes[n].upAt));
    table.add({ scenario: "start", expected: "spawned within 1 s", observed: `spawned within ${spread} ms, up within ${upSpread} ms`, ms: spread, ok: spread < 1_000 });
    expect(spread).toBeLessThan(1_000);
  });

  it(`every directed path among the EIM nodes is direct within ${DIRECT_WITHIN_MS / 1000} s, both ways, and stays direct for ${HOLD_MS / 1000} s`, async () => {
    const want = directed(EIM_NODES);
    let allAt: number | undefined;
    let at10 = -1;
    let last = await snapshot(EIM_NODES);
    // Bounded: polls until all are direct or OBSERVE_MS has passed since the last start.
    while (Date.now() - lastUp < OBSERVE_MS) {
      last = await snapshot(EIM_NODES);
      const direct = want.filter((k) => last.path.get(k) === "direct").length;
      if (at10 < 0 && Date.now() - lastUp >= DIRECT_WITHIN_MS) at10 = direct;
      if (direct === want.length) { allAt = Date.now() - lastUp; break; }
      await sleep(250);
    }
    const direct = want.filter((k) => last.path.get(k) === "direct");
    if (at10 < 0) at10 = direct.length;
    const notDirect = want.filter((k) => last.path.get(k) !== "direct");
    const asym = notDirect.filter((k) => { const [a, b] = k.split(">"); return last.path.get(`${b}>${a}`) === "direct"; });
    if (notDirect.length) console.log(`not direct after ${Date.now() - lastUp} ms: ${notDirect.join(", ")} (one-sided: ${asym.join(", ") || "none"})\n${conntrackDump(candidatePorts(last.peer))}`);
    table.add({
      scenario: "EIM nodes: directed paths direct", expected: `12/12 within ${DIRECT_WITHIN_MS / 1000} s`,
      observed: `${at10}/12 at ${DIRECT_WITHIN_MS / 1000} s; ${direct.length}/12 at ${allAt ?? OBSERVE_MS} ms${notDirect.length ? ` (relay: ${notDirect.join(" ")}; one-sided: ${asym.length})` : ""}`,
      ms: allAt ?? null, ok: allAt !== undefined && allAt <= DIRECT_WITHIN_MS,
    });

    // The hold: pairs keep talking (pings, round robin), every path is sampled each second, no switch allowed.
    const startSwitches = last.switches;
    const left = new Map<string, number>();
    const t0 = Date.now();
    let i = 0;
    while (Date.now() - t0 < HOLD_MS) {
      const k = want[i++ % want.length];
      const [a, b] = k.split(">");
      await m.request(nodes[a], "ping", { name: b, timeoutMs: 1_000 }, 3_000).catch(() => undefined);
      const s = await snapshot(EIM_NODES);
      for (const w of want) if (s.path.get(w) !== "direct") left.set(w, (left.get(w) ?? 0) + 1);
      last = s;
      await sleep(500);
    }
    const switched = want.filter((k) => (last.switches.get(k) ?? 0) !== (startSwitches.get(k) ?? 0));
    const endDirect = want.filter((k) => last.path.get(k) === "direct").length;
    if (left.size) console.log(`left direct during the hold: ${[...left].map(([k, c]) => `${k} x${c}`).join(", ")}\n${conntrackDump(candidatePorts(last.peer))}`);
    table.add({
      scenario: `EIM nodes: ${HOLD_MS / 1000} s hold under pings`, expected: "12/12 direct throughout, no switch",
      observed: `${endDirect}/12 direct at the end; samples off direct: ${left.size ? [...left].map(([k, c]) => `${k} x${c}`).join(" ") : "none"}; switched: ${switched.join(" ") || "none"}`,
      ms: null, ok: left.size === 0 && switched.length === 0,
    });
    if (STRICT) {
      expect(notDirect, `not direct: ${notDirect.join(", ")}`).toEqual([]);
      expect(allAt!).toBeLessThanOrEqual(DIRECT_WITHIN_MS);
      expect([...left.keys()]).toEqual([]);
      expect(switched).toEqual([]);
    }
  }, OBSERVE_MS + HOLD_MS + 60_000);

  it("pairs that cannot be direct (UDP blocked, endpoint-dependent NAT) stay on the relay and answer pings", async () => {
    const s = await snapshot(NAMES);
    const failures: string[] = [];
    for (const a of NAMES) for (const b of NAMES) {
      if (a === b || (EIM_NODES.includes(a) && EIM_NODES.includes(b))) continue;
      const k = `${a}>${b}`;
      const path = s.path.get(k) ?? "-";
      // A spray from the EIM side may, rarely, find the EDM NAT's port (docs/nat.md): direct is then fine.
      const sprayHit = !!s.peer.get(k)?.paths?.spray?.hit || !!s.peer.get(`${b}>${a}`)?.paths?.spray?.hit;
      const okPath = path.startsWith("relay:") || (sprayHit && path === "direct" && a !== "u1" && b !== "u1");
      let rtt = -1;
      for (let i = 0; i < 3 && rtt < 0; i++) rtt = await m.request<{ rttMs: number }>(nodes[a], "ping", { name: b, timeoutMs: 2_000 }, 4_000).then((r) => r.rttMs, () => -1);
      if (!okPath || rtt < 0) failures.push(`${k}: ${path}${rtt < 0 ? ", no pong" : ""}`);
    }
    table.add({ scenario: "UDP-blocked and EDM pairs", expected: "relay, pong", observed: failures.length ? failures.join("; ") : "all relay, all answered", ms: null, ok: failures.length === 0 });
    expect(failures).toEqual([]);
  }, 180_000);
});
