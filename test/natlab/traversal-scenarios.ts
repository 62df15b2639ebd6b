// EmberNet NAT traversal scenarios, shared by test/natlab/traversal.test.ts (asserts every row) and
// `npm run natlab` (prints them): path reached per NAT pair, traffic both ways by name, and the time to
// the session's first handshake (the first encrypted packet follows at once) after the policy allowed the pair.
import { join } from "node:path";
import type { Host, Lab } from "./lab.js";
import type { ResultRow } from "./table.js";
import { EmberLab, type LabNode } from "./ember-mesh.js";

/** The pairs that may talk (and so see each other): only the scenario pairs, to keep the lab light. */
const PAIRS: [string, string][] = [["n1", "n2"], ["e1", "e2"], ["e1", "n1"], ["d1", "d2"], ["d1", "e2"], ["u1", "n2"], ["l1", "n2"]];
const POLICY = `version: 1\nrules:\n${PAIRS.map(([a, b]) => `  - allow: {source: ${a}, target: ${b}}`).join("\n")}\n`;
const KINDS: [string, "none" | "eim" | "edm" | "udp-blocked"][] = [
  ["n1", "none"], ["n2", "none"], ["e1", "eim"], ["e2", "eim"], ["d1", "edm"], ["d2", "edm"], ["u1", "udp-blocked"], ["l1", "eim"],
];

export interface Traversal { lab: Lab; m: EmberLab; nodes: Record<string, LabNode>; policyAt: number }

/** Coordination server, two relays, a node behind its own router per NAT kind; then the pair policy. */
export async function buildTraversal(lab: Lab, dir: string): Promise<Traversal> {
  const m = new EmberLab(lab, join(dir, "mesh"));
  await m.startServices();
  await m.setPolicy("version: 1\nrules: []\n");
  const hosts: Record<string, Host> = {};
  for (const [name, kind] of KINDS) hosts[name] = await lab.addHost(name, await lab.addRouter(`r${name}`, kind));
  const nodes: Record<string, LabNode> = {};
  await Promise.all(KINDS.map(async ([name]) => { nodes[name] = await m.startNode(name, hosts[name]); }));
  await lab.setLoss(hosts.l1.router, 10);
  const policyAt = Date.now();
  await m.setPolicy(POLICY);
  return { lab, m, nodes, policyAt };
}

/** One round trip, retried a few times: on the lossy router single datagrams are expected to get lost. */
async function pingRetry(t: Traversal, from: LabNode, to: string, attempts = 4): Promise<{ rttMs: number }> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try { return await t.m.request(from, "ping", { name: to, timeoutMs: 2_000 }, 4_000); } catch (err) { last = err; }
  }
  throw last;
}

/** Connects a -> b, lets the path settle, checks traffic both ways by name. */
async function pair(t: Traversal, label: string, a: string, b: string, expected: string, accept: (p: string) => boolean, settleMs: number): Promise<ResultRow> {
  const [na, nb] = [t.nodes[a], t.nodes[b]];
  await t.m.firstPong(na, nb, 45_000);
  // The session's first handshake, as the node recorded it (no rekey happens within a lab run): sessions of
  // every pair start together when the policy allows them, so this is per pair, not per scenario order.
  const peer = (await t.m.request<any[]>(na, "peers")).find((p) => p.name === b);
  const connectMs = peer?.lastHandshake ? Date.parse(peer.lastHandshake) - t.policyAt : Date.now() - t.policyAt;
  const { path } = await t.m.waitPath(na, nb, accept, settleMs);
  const there = await pingRetry(t, na, b);
  const back = await pingRetry(t, nb, a);
  const ok = accept(path) && there.rttMs > 0 && back.rttMs > 0;
  return { scenario: `${label} (${a} -> ${b})`, expected, observed: path, ms: connectMs, ok };
}

const direct = (p: string) => p === "direct";
const relayed = (p: string) => p.startsWith("relay:");

export const TRAVERSAL_SCENARIOS: { name: string; run(t: Traversal): Promise<ResultRow[]> }[] = [
  { name: "no NAT <-> no NAT: direct", run: async (t) => [await pair(t, "none <-> none", "n1", "n2", "direct", direct, 8_000)] },
  { name: "EIM NAT <-> EIM NAT: direct (low-TTL punching through two Linux NATs)", run: async (t) => [await pair(t, "eim <-> eim", "e1", "e2", "direct", direct, 15_000)] },
  { name: "EIM NAT <-> no NAT: direct", run: async (t) => [await pair(t, "eim <-> none", "e1", "n1", "direct", direct, 8_000)] },
  { name: "EDM NAT <-> EDM NAT: relay", run: async (t) => [await pair(t, "edm <-> edm", "d1", "d2", "relay", relayed, 3_000)] },
  {
    name: "EDM NAT <-> EIM NAT: bounded spray from the EIM side, then relay or direct, reported",
    run: async (t) => {
      const r = await pair(t, "edm <-> eim", "d1", "e2", "relay or direct", (p) => relayed(p) || direct(p), 5_000);
      // The EIM side (e2) sprays the EDM side's address within its probe budget once d1's candidates stay silent.
      const t0 = Date.now();
      let spray: { attempts: number; probes: number; hit: string | null } | undefined;
      while (Date.now() - t0 < 15_000) {
        const peer = (await t.m.request<any[]>(t.nodes.e2, "peers")).find((p) => p.name === "d1");
        spray = peer?.paths?.spray;
        if (spray && (spray.hit || spray.probes >= 240)) break;
        await new Promise((res) => setTimeout(res, 250));
      }
      const path = await t.m.path(t.nodes.e2, t.nodes.d1);
      return [r, {
        scenario: "  spray from e2 towards d1 (port prediction)", expected: "attempted, bounded",
        observed: spray ? `${spray.probes} probes, ${spray.hit ? `hit ${spray.hit}: ${path}` : `no hit: ${path}`}` : "not attempted",
        ms: Date.now() - t0, ok: !!spray && spray.probes > 0 && spray.probes <= 256,
      }];
    },
  },
  {
    name: "UDP blocked <-> no NAT: relay over TCP 443",
    run: async (t) => {
      const r = await pair(t, "udp-blocked <-> none", "u1", "n2", "relay", relayed, 3_000);
      const nc = await t.m.request(t.nodes.u1, "netcheck", {}, 15_000);
      return [r, { scenario: "  netcheck on the UDP-blocked node", expected: "udp-blocked", observed: nc.mapping, ms: nc.durationMs, ok: nc.mapping === "udp-blocked" }];
    },
  },
  {
    name: "10% random loss on one router: connects and keeps passing traffic",
    run: async (t) => {
      const r = await pair(t, "eim with 10% loss <-> none", "l1", "n2", "connected", (p) => p !== "-", 5_000);
      let ok = 0;
      for (let i = 0; i < 20; i++) {
        try { await t.m.request(t.nodes.l1, "ping", { name: "n2", timeoutMs: 1_000 }, 3_000); ok++; } catch { /* a lost round trip */ }
      }
      return [r, { scenario: "  20 pings through 10% loss", expected: ">= 10 answered", observed: `${ok} answered`, ms: null, ok: ok >= 10 }];
    },
  },
  {
    name: "a direct path cut mid-session falls back to the relay within 5 s without a new session, and returns",
    run: async (t) => {
      const [a, b] = [t.nodes.n1, t.nodes.n2];
      // Mid-session: traffic flows (a ping every 250 ms) before, during and after the cut. A path is watched
      // while it is in use; at rest nothing is probed (docs/nat.md "At rest").
      let pinging = true;
      const pinger = (async () => {
        while (pinging) {
          await t.m.request(a, "ping", { name: "n2", timeoutMs: 1_000 }, 3_000).catch(() => undefined);
          await new Promise((r) => setTimeout(r, 250));
        }
      })();
      try {
        await t.m.waitPath(a, b, direct, 10_000);
        const before = (await t.m.request<any[]>(a, "peers")).find((p) => p.name === "n2");
        const cut = await t.lab.cutUdp(a.host, b.host);
        const down = await t.m.waitPath(a, b, relayed, 8_000);
        const during = await pingRetry(t, a, "n2", 2).catch(() => undefined);
        const after = (await t.m.request<any[]>(a, "peers")).find((p) => p.name === "n2");
        await cut.restore();
        const up = await t.m.waitPath(a, b, direct, 15_000);
        return cutRows(before, after, down, during, up);
      } finally {
        pinging = false;
        await pinger;
      }
    },
  },
];

function cutRows(before: any, after: any, down: { path: string; ms: number }, during: unknown, up: { path: string; ms: number }): ResultRow[] {
  const sameSession = before?.path === "direct" && after?.handshakes === before?.handshakes;
  return [
    { scenario: "direct path cut (n1 -> n2)", expected: "relay within 5 s, same session", observed: `${down.path}${sameSession ? ", same session" : ", NEW session"}${during ? "" : ", ping failed"}`, ms: down.ms, ok: relayed(down.path) && down.ms <= 5_000 && sameSession && !!during },
    { scenario: "path restored (n1 -> n2)", expected: "direct", observed: up.path, ms: up.ms, ok: direct(up.path) },
  ];
}
