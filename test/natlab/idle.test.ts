// A quiet mesh stays quiet (issue 16, docs/nat.md "At rest"): six nodes behind five NATs (two behind one NAT,
// EIM, EDM, UDP blocked), every pair allowed and connected, then nobody sends anything. From the second
// minute of rest on, each node sends at most one packet per second in total, counted on its interface (all
// protocols: UDP to peers and STUN, TCP to the relays and the coordination server, ARP). After 3 minutes every
// pair answers a ping, and pairs that were direct still are; two pairs left alone for 5 minutes answer too, and
// a TCP stream through `ember forward` opened before the rest carries more bytes after it, byte-exact.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { Lab, type Host } from "./lab.js";
import { EmberLab, type LabNode } from "./ember-mesh.js";
import { startTool, type ToolProc } from "./tools.js";
import { ResultTable } from "./table.js";
import { tempDir } from "../helpers/pki.js";

const avail = Lab.available();
if (!avail.ok) console.log(`natlab idle tests skipped: ${avail.why}`);

const SINK_PORT = 9000;
const MINUTE = 60_000;
/** Pairs left alone until the 5-minute mark (both directions): one direct, one over the relay. */
const RESUME_PAIRS: [string, string][] = [["b1", "c1"], ["u1", "d1"]];
const NAMES = ["a1", "a2", "b1", "c1", "d1", "u1"];

interface Counters { packets: number; bytes: number }

describe.skipIf(!avail.ok)("a quiet mesh stays quiet (six nodes behind NATs, at rest)", () => {
  let lab: Lab;
  let tmp: ReturnType<typeof tempDir>;
  let m: EmberLab;
  const nodes: Record<string, LabNode> = {};
  const hosts: Record<string, Host> = {};
  const tools: ToolProc[] = [];
  const table = new ResultTable();
  let stream: ToolProc;
  let forwardPort = 0;
  const directBefore = new Set<string>();
  let idleStart = 0;

  const sleepUntil = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));
  const held = (a: string, b: string) => RESUME_PAIRS.some(([x, y]) => (x === a && y === b) || (x === b && y === a));

  function tx(host: Host): Counters {
    const read = (f: string) => Number(lab.exec(host, ["cat", `/sys/class/net/eth0/statistics/${f}`]).trim());
    return { packets: read("tx_packets"), bytes: read("tx_bytes") };
  }

  async function ping(a: string, b: string, timeoutMs = 5_000): Promise<number> {
    const r = await m.request<{ rttMs: number }>(nodes[a], "ping", { name: b, timeoutMs }, timeoutMs + 2_000);
    return r.rttMs;
  }

  async function paths(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const a of NAMES) for (const p of await m.request<any[]>(nodes[a], "peers")) out.set(`${a}>${p.name}`, p.path);
    return out;
  }

  beforeAll(async () => {
    tmp = tempDir("ember-natlab-idle-");
    lab = await Lab.create();
    m = new EmberLab(lab, join(tmp.dir, "mesh"));
    await m.startServices(); // allow-all policy
    const ra = await lab.addRouter("ra", "eim");
    hosts.a1 = await lab.addHost("a1", ra);
    hosts.a2 = await lab.addHost("a2", ra);
    hosts.b1 = await lab.addHost("b1", await lab.addRouter("rb", "eim"));
    hosts.c1 = await lab.addHost("c1", await lab.addRouter("rc", "eim"));
    hosts.d1 = await lab.addHost("d1", await lab.addRouter("rd", "edm"));
    hosts.u1 = await lab.addHost("u1", await lab.addRouter("ru", "udp-blocked"));
    await Promise.all(NAMES.map(async (n) => { nodes[n] = await m.startNode(n, hosts[n]); }));
    const sink = startTool(lab, hosts.b1, "transfer", ["sink", "--port", String(SINK_PORT)]);
    tools.push(sink);
    expect(await sink.nextJson(20_000)).toMatchObject({ ready: true });
    await m.request(nodes.b1, "serve", { name: "sink", to: `127.0.0.1:${SINK_PORT}`, protocol: "tcp" });
  }, 240_000);

  afterAll(async () => {
    console.log(`\nat rest: six nodes behind NATs\n${table.render()}\n`);
    await lab?.destroy();
    if (lab) expect(lab.existingNamespaces()).toEqual([]);
    tmp?.cleanup();
  }, 60_000);

  it("every pair connects; a TCP stream through ember forward is open", async () => {
    for (const a of NAMES) for (const b of NAMES) if (a !== b) await m.firstPong(nodes[a], nodes[b], 45_000);
    // Let the paths settle (direct where the NATs allow it), then record which pairs are direct.
    await new Promise((r) => setTimeout(r, 10_000));
    for (const [k, p] of await paths()) if (p === "direct") directBefore.add(k);
    const t0 = Date.now();
    for (;;) {
      const p = (await m.request<any[]>(nodes.a1, "peers")).find((x) => x.name === "b1");
      if (p?.services?.length) break;
      if (Date.now() - t0 > 20_000) throw new Error("b1's sink service never reached a1's map");
      await new Promise((r) => setTimeout(r, 250));
    }
    const f = await m.request<{ listen: string }>(nodes.a1, "forward", { listenPort: 0, host: "sink.b1", protocol: "tcp" });
    forwardPort = Number(f.listen.split(":").pop());
    stream = startTool(lab, hosts.a1, "transfer", ["steps", "--port", String(forwardPort)]);
    tools.push(stream);
    expect(await stream.nextJson(20_000)).toMatchObject({ connected: true });
    stream.send("send 1048576");
    expect(await stream.nextJson(30_000)).toMatchObject({ sent: 1_048_576 });
    idleStart = Date.now();
    table.add({ scenario: "pairs connected, then at rest", expected: "30 directed pairs", observed: `${directBefore.size} direct`, ms: null, ok: true });
  }, 420_000);

  it("from the second minute of rest on, each node sends at most one packet per second (all protocols, on its interface)", async () => {
    await sleepUntil(idleStart + MINUTE);
    const at1 = Object.fromEntries(NAMES.map((n) => [n, tx(hosts[n])]));
    await sleepUntil(idleStart + 3 * MINUTE);
    const at3 = Object.fromEntries(NAMES.map((n) => [n, tx(hosts[n])]));
    const failures: string[] = [];
    for (const n of NAMES) {
      const packets = at3[n].packets - at1[n].packets, bytes = at3[n].bytes - at1[n].bytes;
      const st = await m.request<any>(nodes[n], "status");
      const pm = st.traffic.perMinute;
      const ok = packets <= 120;
      if (!ok) failures.push(`${n}: ${packets} packets in 2 minutes`);
      table.add({
        scenario: `${n}: minutes 2-3 of rest`, expected: "<= 120 packets (1/s)",
        observed: `${packets} packets, ${bytes} bytes (${(packets / 2).toFixed(1)}/min, ${Math.round(bytes / 2)} B/min); daemon counts ${pm.txPackets}/min`,
        ms: null, ok,
      });
    }
    expect(failures).toEqual([]);
  }, 300_000);

  it("after 3 minutes of rest every pair answers a ping at once, and direct pairs are still direct", async () => {
    const slow: string[] = [];
    let worst = 0;
    for (const a of NAMES) for (const b of NAMES) {
      if (a === b || held(a, b) || (a === "a1" && b === "b1") || (a === "b1" && b === "a1")) continue;
      const t0 = Date.now();
      try { await ping(a, b); } catch (err) { slow.push(`${a} -> ${b}: ${(err as Error).message}`); }
      worst = Math.max(worst, Date.now() - t0);
    }
    await new Promise((r) => setTimeout(r, 4_000)); // past the revalidation bound: a lapsed path would be on the relay by now
    const now = await paths();
    const lost = [...directBefore].filter((k) => { const [a, b] = k.split(">"); return !held(a, b) && !(k === "a1>b1" || k === "b1>a1") && now.get(k) !== "direct"; });
    table.add({ scenario: "pings after 3 minutes at rest", expected: "all answered", observed: slow.length ? slow.join("; ") : `all answered, slowest ${worst} ms`, ms: worst, ok: slow.length === 0 });
    table.add({ scenario: "direct pairs after the rest", expected: "still direct", observed: lost.length ? `relay: ${lost.join(", ")}` : "all still direct", ms: null, ok: lost.length === 0 });
    expect(slow).toEqual([]);
    expect(lost).toEqual([]);
  }, 180_000);

  it("after 5 minutes of rest a ping resumes at once (direct and relayed pairs) and the stream carries more bytes, byte-exact", async () => {
    await sleepUntil(idleStart + 5 * MINUTE);
    for (const [a, b] of RESUME_PAIRS) {
      for (const [x, y] of [[a, b], [b, a]]) {
        const t0 = Date.now();
        const before = directBefore.has(`${x}>${y}`);
        let rtt = -1;
        try { rtt = await ping(x, y); } catch { /* reported below */ }
        await new Promise((r) => setTimeout(r, 4_000));
        const path = (await paths()).get(`${x}>${y}`);
        const ok = rtt > 0 && (!before || path === "direct");
        table.add({ scenario: `${x} -> ${y} after 5 minutes at rest`, expected: before ? "pong, still direct" : "pong", observed: rtt > 0 ? `pong (${path})` : "no pong", ms: Date.now() - t0 - 4_000, ok });
        expect(ok, `${x} -> ${y}: rtt ${rtt}, path ${path}`).toBe(true);
      }
    }
    stream.send("send 1048576");
    expect(await stream.nextJson(60_000)).toMatchObject({ sent: 2_097_152 });
    stream.send("end");
    const r = await stream.nextJson<any>(60_000);
    const exact = r.bytes === 2_097_152 && r.remoteBytes === 2_097_152 && r.sha256 === r.remoteSha256;
    table.add({ scenario: "TCP stream through ember forward, 5 minutes idle", expected: "2 MiB byte-exact", observed: exact ? "sha256 equal, 2 MiB" : JSON.stringify(r), ms: null, ok: exact });
    expect(exact).toBe(true);
  }, 420_000);
});
