// EmberNet over IPv6 in the NAT lab (issue 26), shared by test/natlab/ipv6.test.ts (asserts every row) and
// `npm run natlab -- --only ipv6` (prints them). One lab, side by side:
//   coordination server: dual-stack host, listening on both families (the IPv6 nodes enroll at its [v6] literal)
//   relay-1: IPv4-only host, named relay-1.natlab.test in the peer map (A record only)
//   a, b: dual-stack hosts, each behind its own router with an IPv4 NAT (eim) and a stateful IPv6 firewall
//   c: IPv4-only host behind an IPv4 NAT (eim)
//   m: IPv6-only host on a NAT64/DNS64 site (stateful IPv6 firewall too), enrolling at coord.natlab.test
//   h: dual-stack host whose IPv6 to the servers is black-holed at its router, while their names have AAAA
//      records (a broken IPv6 uplink): Happy Eyeballs (RFC 8305) must carry it over IPv4
import { join } from "node:path";
import type { Lab } from "./lab.js";
import type { ResultRow } from "./table.js";
import { EmberLab, type LabNode } from "./ember-mesh.js";
import { addHostIpv6, addServerIpv6, addSiteIpv6, countLowHopPunches, firewallDrops, settleIpv6, type Ipv6Host, type Ipv6Server, type Ipv6Site } from "./ipv6.js";
import { addNat64Host, addNat64Site, type Nat64Site } from "./nat64.js";
import { labName, useLabHosts, type LabRecords } from "./names.js";

/** Targets of issue 26. */
export const DIRECT_V6_WITHIN_MS = 2_000;
export const NAT64_PINGS = 5;
/** A node whose IPv6 to the servers is black-holed is up within this (Node's Happy Eyeballs falls back in 250 ms). */
export const HAPPY_EYEBALLS_UP_MS = 5_000;
/** What h's names point at over IPv6: the coordination server's real address, and one for the relay (IPv4 only). */
const RELAY_V6_NOWHERE = "2001:db8:0:ff::2";

export interface Ipv6Lab {
  lab: Lab;
  m: EmberLab;
  coord6: Ipv6Server;
  sites: { a: Ipv6Site; b: Ipv6Site; m: Nat64Site };
  hosts6: { a: Ipv6Host; b: Ipv6Host; m: Ipv6Host };
  nodes: Record<"a" | "b" | "c" | "m" | "h", LabNode>;
  /** IPv6 punches that died at the core (hop limit 1 there), counted from before the nodes started. */
  lowHopPunches: { read(): number };
}

/** A peer's row of `ember peers --json`. */
export interface PeerRow {
  name: string; path: string; family?: string; endpoint: string; notDirect?: string; handshakes?: number;
  paths?: { sinceMs?: number; candidates: { endpoint: string; probes: number; pongs: number }[] };
}

export async function peerRow(m: EmberLab, from: LabNode, to: string): Promise<PeerRow | undefined> {
  return (await m.request<PeerRow[]>(from, "peers")).find((p) => p.name === to);
}

/** The topology above; a and b start at one instant (tokens made first), then c and m. */
export async function buildIpv6Lab(lab: Lab, dir: string): Promise<Ipv6Lab> {
  const m = new EmberLab(lab, join(dir, "mesh"));
  m.nodeListen = ":0";
  await m.startServices({ relays: 1, dualStack: true, relayHost: (_h, name) => labName(name) });
  const coord6 = addServerIpv6(lab, m.coordHost);
  const records: LabRecords = { coord: [m.coordHost.address], "relay-1": [m.relayHosts[0].address] };
  const dualStack = async (name: string) => {
    const router = await lab.addRouter(`r${name}`, "eim");
    const site = addSiteIpv6(lab, router, "stateful");
    const host = await lab.addHost(`${name}1`, router);
    useLabHosts(host, records);
    return { site, h6: addHostIpv6(lab, site, host) };
  };
  const a = await dualStack("a");
  const b = await dualStack("b");
  const c = await lab.addHost("c1", await lab.addRouter("rc", "eim"));
  useLabHosts(c, records);
  const site64 = await addNat64Site(lab, "rm", join(dir, "lab"), records);
  const broken = await dualStack("h");
  useLabHosts(broken.h6.host, { coord: [coord6.address, m.coordHost.address], "relay-1": [RELAY_V6_NOWHERE, m.relayHosts[0].address] });
  lab.nft(broken.site.router, blackHoleRuleset([coord6.address, RELAY_V6_NOWHERE]));
  const m6 = addNat64Host(lab, site64, await lab.addHost("m1", site64.router));
  await settleIpv6(lab);
  const lowHopPunches = countLowHopPunches(lab);
  const coordV6 = `https://[${coord6.address}]:443`;
  const [ta, tb] = [await m.token(), await m.token()];
  const [na, nb] = await Promise.all([m.startNode("a", a.h6.host, {}, [], ta, coordV6), m.startNode("b", b.h6.host, {}, [], tb, coordV6)]);
  const nc = await m.startNode("c", c);
  const byName = `https://${labName("coord")}:443`;
  const nm = await m.startNode("m", m6.host, {}, [], undefined, byName);
  const nh = await m.startNode("h", broken.h6.host, {}, [], undefined, byName);
  return { lab, m, coord6, sites: { a: a.site, b: b.site, m: site64 }, hosts6: { a: a.h6, b: b.h6, m: m6 }, nodes: { a: na, b: nb, c: nc, m: nm, h: nh }, lowHopPunches };
}

/** Drops IPv6 towards these addresses at a router, silently (a broken IPv6 uplink: no ICMP, no reset). */
function blackHoleRuleset(addresses: string[]): string {
  return `add table ip6 natlab6_blackhole\ndelete table ip6 natlab6_blackhole\ntable ip6 natlab6_blackhole {
  chain forward { type filter hook forward priority filter - 1; policy accept;
    ip6 daddr { ${addresses.join(", ")} } counter drop
  }
}
`;
}

/**
 * Polls a's view of b until the path is direct over IPv6, pinging before each look (a path is chosen while in
 * use). chosenAt: when the node chose its current path (the path's age as it reports it), on this clock.
 */
async function waitDirectV6(t: Ipv6Lab, a: LabNode, b: LabNode, timeoutMs: number): Promise<PeerRow & { chosenAt: number } | undefined> {
  const end = Date.now() + timeoutMs;
  let row: PeerRow | undefined;
  let readAt = Date.now();
  while (Date.now() < end) {
    await t.m.request(a, "ping", { name: b.name, timeoutMs: 500 }, 2_000).catch(() => undefined);
    readAt = Date.now();
    row = await peerRow(t.m, a, b.name).catch(() => undefined);
    if (row?.path === "direct" && row.family === "IPv6") break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return row && { ...row, chosenAt: row.paths?.sinceMs === undefined ? Infinity : readAt - row.paths.sinceMs };
}

/** count pings a -> b by name, one after the other; how many were answered. */
async function pings(t: Ipv6Lab, a: LabNode, b: string, count: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < count; i++) {
    try { await t.m.request(a, "ping", { name: b, timeoutMs: 2_000 }, 4_000); ok++; } catch { /* unanswered */ }
  }
  return ok;
}

const describePath = (r: PeerRow | undefined) => (r ? `${r.path}${r.family ? ` ${r.family}` : ""} ${r.endpoint}` : "no peer row");

export const IPV6_SCENARIOS: { name: string; run(t: Ipv6Lab): Promise<ResultRow[]> }[] = [
  {
    name: "dual-stack pair behind stateful IPv6 firewalls and IPv4 NATs: direct over IPv6",
    run: async (t) => {
      const { a, b } = t.nodes;
      const upAt = Math.max(a.upAt, b.upAt);
      const ab = await waitDirectV6(t, a, b, 15_000);
      const ba = await waitDirectV6(t, b, a, 5_000);
      // When each node chose its IPv6 path, counted from the later node's "up".
      const [msAb, msBa] = [(ab?.chosenAt ?? Infinity) - upAt, (ba?.chosenAt ?? Infinity) - upAt];
      const v6 = (r: PeerRow | undefined) => r?.path === "direct" && r.family === "IPv6";
      const punches = t.lowHopPunches.read();
      return [
        { scenario: "a -> b, both behind v6 firewall + v4 NAT", expected: `direct IPv6 <= ${DIRECT_V6_WITHIN_MS} ms after both up`, observed: describePath(ab), ms: msAb, ok: v6(ab) && msAb <= DIRECT_V6_WITHIN_MS },
        { scenario: "b -> a", expected: `direct IPv6 <= ${DIRECT_V6_WITHIN_MS} ms after both up`, observed: describePath(ba), ms: msBa, ok: v6(ba) && msBa <= DIRECT_V6_WITHIN_MS },
        // Each side's first packets towards the other's firewall leave its own and die at the core.
        { scenario: "IPv6 punches with a low hop limit", expected: "die at the core", observed: `${punches} arrived at the core with hop limit 1`, ms: null, ok: punches > 0 },
      ];
    },
  },
  {
    name: "IPv6-only node behind NAT64/DNS64 reaches every peer",
    run: async (t) => {
      const { m: node } = t.nodes;
      const rows: ResultRow[] = [{ scenario: "m enrolls at coord.natlab.test (DNS64, NAT64)", expected: "up", observed: "up", ms: node.upAt - node.startedAt, ok: true }];
      for (const [peer, want] of [["a", "direct IPv6"], ["b", "direct IPv6"], ["c", "relay"]] as const) {
        const t0 = Date.now();
        await t.m.firstPong(node, t.nodes[peer], 30_000).catch(() => undefined);
        const row = want === "relay" ? await peerRow(t.m, node, peer) : await waitDirectV6(t, node, t.nodes[peer], 10_000);
        const answered = await pings(t, node, peer, NAT64_PINGS);
        const pathOk = want === "relay" ? !!row?.path.startsWith("relay:") : row?.path === "direct" && row.family === "IPv6";
        rows.push({ scenario: `m -> ${peer}`, expected: `${NAT64_PINGS}/${NAT64_PINGS} pings, ${want}`, observed: `${answered}/${NAT64_PINGS}, ${describePath(row)}`,
          ms: Date.now() - t0, ok: answered === NAT64_PINGS && pathOk });
      }
      rows.push(await nat64Netcheck(t), await nat64Candidates(t));
      return rows;
    },
  },
  {
    name: "names with AAAA records over a broken IPv6 uplink: Happy Eyeballs falls back to IPv4",
    run: async (t) => {
      const h = t.nodes.h;
      // Enrolled ("up"), then the map stream and the relay connection: each a TLS connection to a name with AAAA.
      let connected: string[] = [];
      while (!connected.length && Date.now() - h.startedAt < HAPPY_EYEBALLS_UP_MS * 2) {
        const status = await t.m.request<{ coordination?: { relays: { name: string; connected: boolean }[] } }>(h, "status");
        connected = (status.coordination?.relays ?? []).filter((r) => r.connected).map((r) => r.name);
        if (!connected.length) await new Promise((r) => setTimeout(r, 100));
      }
      const readyMs = Date.now() - h.startedAt;
      await t.m.firstPong(h, t.nodes.a, 10_000).catch(() => undefined);
      const answered = await pings(t, h, "a", 3);
      return [{ scenario: "h at coord.natlab.test, AAAA black-holed", expected: `enrolled and relay connected <= ${HAPPY_EYEBALLS_UP_MS} ms; 3/3 pings`,
        observed: `up after ${h.upAt - h.startedAt} ms, relay ${connected.join(" ") || "not connected"} after ${readyMs} ms, ${answered}/3 pings to a`,
        ms: readyMs, ok: readyMs <= HAPPY_EYEBALLS_UP_MS && connected.length > 0 && answered === 3 }];
    },
  },
];

/** The IPv6-only node's own view: IPv6 answered STUN, so UDP is not blocked, whatever its idle IPv4 socket saw. */
async function nat64Netcheck(t: Ipv6Lab): Promise<ResultRow> {
  const node = t.nodes.m;
  const nc = await t.m.request<{ mapping: string; ipv4?: { mapping: string }; durationMs: number }>(node, "netcheck", {}, 15_000);
  const status = await t.m.request<{ problems: { code: string }[] }>(node, "status");
  const codes = status.problems.map((p) => p.code);
  return { scenario: "m's netcheck (IPv4 socket, no IPv4 route)", expected: "not udp-blocked, no udp_blocked problem",
    observed: `mapping ${nc.mapping}${nc.ipv4 ? ` (its IPv4 socket: ${nc.ipv4.mapping})` : ""}; problems: ${codes.join(", ") || "none"}`,
    ms: null, ok: nc.mapping !== "udp-blocked" && !codes.includes("udp_blocked") };
}

/**
 * What m tries towards c (IPv4 only): nothing direct, since m has no IPv4 address to send from, and c offers no
 * loopback address as a candidate (it has IPv4 beside it).
 */
async function nat64Candidates(t: Ipv6Lab): Promise<ResultRow> {
  const row = await peerRow(t.m, t.nodes.m, "c");
  const cands = row?.paths?.candidates ?? [];
  const probed = cands.filter((c) => c.probes > 0).map((c) => c.endpoint);
  const loopback = cands.filter((c) => /^(127\.|\[::1\])/.test(c.endpoint)).map((c) => c.endpoint);
  return { scenario: "m -> c: what m sends direct", expected: "no probe (no common family), no loopback candidate",
    observed: `${cands.length} candidates, probed: ${probed.join(" ") || "none"}, loopback: ${loopback.join(" ") || "none"}; why not direct: ${row?.notDirect ?? "-"}`,
    ms: null, ok: !!row && probed.length === 0 && loopback.length === 0 };
}

/** The firewall drops of both dual-stack sites (a row for the table: new inbound was refused, replies passed). */
export function firewallRow(t: Ipv6Lab): ResultRow {
  const drops = [firewallDrops(t.lab, t.sites.a), firewallDrops(t.lab, t.sites.b)];
  return { scenario: "stateful v6 firewalls of a and b", expected: "counted", observed: `${drops.join(" and ")} new inbound dropped`, ms: null, ok: drops.every(Number.isFinite) };
}
