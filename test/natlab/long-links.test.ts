// Long and lossy links (issue 26), measured side by side in one lab run through the link emulator:
// - geostationary satellite (300 ms each way, 1% loss, 20/5 Mbit/s): the handshake completes; `ember forward`
//   goodput is at least the kernel's own TCP (CUBIC, iperf3) between the same two hosts over the same link;
//   a resting node's daemon sends no more than wireguard-go with a 25 s keepalive beside it on a twin link;
// - low-orbit satellite (25-50 ms, jitter 10 ms, a 150 ms outage every 15 s) and cellular (60 +- 30 ms,
//   0.5% loss, 10/30 Mbit/s): 50 MB through `ember forward` byte-exact, and the path stays direct through
//   every outage (no switch to the relay).
// Every site is an EIM NAT whose WAN link is emulated; the far end ("srv") is a public host on a plain link.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, type Host, type Router } from "./lab.js";
import { EmberLab, type LabNode } from "./ember-mesh.js";
import { linkEmulatorAvailable, type LinkStats } from "./link-emulator.js";
import { CELLULAR, GEO, LEO } from "./link-profiles.js";
import { byteExact, transferThroughForward } from "./forward-transfer.js";
import { startTool } from "./tools.js";
import { ResultTable } from "./table.js";
import { tempDir } from "../helpers/pki.js";

const labAvail = Lab.available();
const avail = labAvail.ok ? linkEmulatorAvailable() : labAvail;
if (!avail.ok) console.log(`natlab long-link tests skipped: ${avail.why}`);
const wgMissing = ["wireguard-go", "wg"].find((t) => { try { execFileSync("which", [t], { stdio: "ignore" }); return false; } catch { return true; } });

const MB = 1024 * 1024;
const TRANSFER = 50 * MB;
const SINK_PORT = 9000;
const IPERF_PORT = 5201;
/** iperf3 run length for the goodput comparison: long enough for slow start at 600 ms to be a small part. */
const GOODPUT_S = 20;
/** Rest settles first (sessions go idle after 45 s, holds stretch), as bench:idle does; then both idle hosts' interfaces are counted at once. */
const IDLE_SETTLE_MS = 90_000;
const IDLE_WINDOW_MS = 240_000;
/**
 * The issue asks that a resting node send no more than wireguard-go. What the daemons send (TCP and UDP: the holds
 * that keep the peer's NAT mapping, the coordination stream's and the relay connection's keepalives) is asserted
 * against wireguard-go's (its keepalives and handshakes). The host's own ARP and IPv6 housekeeping is counted and
 * shown beside it, not asserted: it follows the kernel's neighbour timers and lands within a few packets of
 * wireguard-go's either way (docs/networks.md "At rest").
 */

describe.skipIf(!avail.ok)("long and lossy links (geostationary, low-orbit, cellular)", () => {
  let lab: Lab;
  let tmp: ReturnType<typeof tempDir>;
  let m: EmberLab;
  const table = new ResultTable();
  const routers: Record<string, Router> = {};
  const hosts: Record<string, Host> = {};
  const nodes: Record<string, LabNode> = {};
  let idle: Promise<{ at: number; ember: number; wg: number }> | undefined;

  const txPackets = (h: Host) => Number(lab.exec(h, ["cat", "/sys/class/net/eth0/statistics/tx_packets"]).trim());

  async function switches(a: LabNode, b: LabNode): Promise<number> {
    const p = (await m.request<any[]>(a, "peers")).find((x) => x.name === b.name);
    return p?.paths?.switches ?? -1;
  }

  /** wireguard-go on hosts.wgi (behind the idle twin link) with one peer on hosts.wgp, keepalive 25 s. */
  async function startWireguard(): Promise<void> {
    const key = () => { const priv = execFileSync("wg", ["genkey"], { encoding: "utf8" }).trim(); return { priv, pub: execFileSync("wg", ["pubkey"], { input: priv, encoding: "utf8" }).trim() }; };
    const [a, b] = [key(), key()];
    // wireguard-go's control socket (/var/run/wireguard/NAME.sock) is not per namespace: names carry the lab's prefix.
    const ifA = `wg${lab.prefix}a`, ifB = `wg${lab.prefix}b`;
    for (const [h, name] of [[hosts.wgi, ifA], [hosts.wgp, ifB]] as const) {
      lab.spawn(h, ["env", "WG_PROCESS_FOREGROUND=1", "wireguard-go", name], { stdio: "ignore" });
      const until = Date.now() + 20_000;
      while ((await lab.run(h, ["ip", "link", "show", name])).code !== 0) {
        if (Date.now() > until) throw new Error(`wireguard-go made no ${name} in ${h.ns} within 20 s`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const kf = (k: string, i: string) => { const f = join(tmp.dir, `wg-${i}.key`); writeFileSync(f, k + "\n", { mode: 0o600 }); return f; };
    lab.exec(hosts.wgi, ["wg", "set", ifA, "private-key", kf(a.priv, "a"), "peer", b.pub, "endpoint", `${hosts.wgp.publicAddress}:51820`,
      "allowed-ips", "100.64.250.2/32", "persistent-keepalive", "25"]);
    lab.exec(hosts.wgp, ["wg", "set", ifB, "listen-port", "51820", "private-key", kf(b.priv, "b"), "peer", a.pub, "allowed-ips", "100.64.250.1/32"]);
    for (const [h, name, ip] of [[hosts.wgi, ifA, "100.64.250.1"], [hosts.wgp, ifB, "100.64.250.2"]] as const) {
      lab.exec(h, ["ip", "addr", "add", `${ip}/24`, "dev", name]);
      lab.exec(h, ["ip", "link", "set", name, "up"]);
    }
    const r = await lab.run(hosts.wgi, ["ping", "-c", "3", "-W", "5", "100.64.250.2"], { timeoutMs: 30_000 });
    if (!/ [123] received/.test(r.stdout)) throw new Error(`wireguard-go pair never answered a ping: ${r.stdout}`);
  }

  beforeAll(async () => {
    tmp = tempDir("ember-natlab-longlinks-");
    lab = await Lab.create();
    m = new EmberLab(lab, join(tmp.dir, "mesh"));
    await m.startServices({ relays: 1 });
    // Every site reaches srv and srv every site, nothing else: the resting node has one peer, as wireguard-go
    // beside it has (and hears nothing of the others' changes).
    const sites = ["geo", "idle", "leo", "cell"];
    await m.setPolicy(`version: 1\nrules:\n${sites.map((n) => `  - allow: {source: ${n}, target: srv}\n  - allow: {source: srv, target: ${n}}`).join("\n")}\n`);
    const pub = await lab.addRouter("rpub", "none");
    hosts.srv = await lab.addHost("srv", pub);
    hosts.wgp = await lab.addHost("wgp", pub);
    for (const [name, profile] of [["geo", GEO], ["idle", GEO], ["leo", LEO], ["cell", CELLULAR]] as const) {
      routers[name] = await lab.addRouter(`r${name}`, "eim", { link: profile });
      hosts[name] = await lab.addHost(name, routers[name]);
    }
    hosts.wgi = await lab.addHost("wgi", routers.idle);
    await Promise.all(["srv", "geo", "idle", "leo", "cell"].map(async (name) => {
      nodes[name] = await m.startNode(name, hosts[name], {}, ["--log-level", "info"], await m.token());
    }));
    for (const [h, args] of [[hosts.srv, ["sink", "--port", String(SINK_PORT)]], [hosts.leo, ["sink", "--port", String(SINK_PORT)]], [hosts.cell, ["sink", "--port", String(SINK_PORT)]]] as const) {
      const t = startTool(lab, h, "transfer", [...args]);
      expect(await t.nextJson(30_000)).toMatchObject({ ready: true });
    }
    lab.spawn(hosts.srv, ["iperf3", "-s", "-p", String(IPERF_PORT)]);
    await m.request(nodes.srv, "serve", { name: "iperf", to: `127.0.0.1:${IPERF_PORT}`, protocol: "tcp" });
    for (const n of ["leo", "cell"]) await m.request(nodes[n], "serve", { name: "sink", to: `127.0.0.1:${SINK_PORT}`, protocol: "tcp" });
  }, 240_000);

  afterAll(async () => {
    console.log(`\nlong and lossy links\n${table.render()}\n`);
    await lab?.destroy();
    if (lab) expect(lab.existingNamespaces()).toEqual([]);
    tmp?.cleanup();
  }, 60_000);

  it("geostationary: the handshake completes under 1% loss and the pair goes direct", async () => {
    for (const name of ["geo", "idle"]) {
      const ms = await m.firstPong(nodes[name], nodes.srv, 60_000);
      const path = await m.waitPathPinging(nodes[name], nodes.srv, (p) => p === "direct", 30_000);
      table.add({ scenario: `geo: ${name} -> srv, first pong`, expected: "handshake completes, then direct", observed: `${path.path} after ${path.ms} ms more`, ms, ok: path.path === "direct" });
      expect(path.path).toBe("direct");
    }
    // Both idle systems have exchanged traffic with their one peer; from here on they rest.
    if (!wgMissing) await startWireguard();
    idle = new Promise((resolve, reject) => setTimeout(() => {
      try {
        for (const h of [hosts.idle, hosts.wgi]) lab.nft(h, SEND_COUNTERS);
        resolve({ at: Date.now(), ember: txPackets(hosts.idle), wg: wgMissing ? 0 : txPackets(hosts.wgi) });
      } catch (e) { reject(e); }
    }, IDLE_SETTLE_MS));
    idle.catch(() => undefined); // reported by the rest test
  }, 180_000);

  it("geostationary: ember forward goodput >= the kernel's TCP (CUBIC) over the same link", async () => {
    // -C cubic: the issue's reference is the kernel's CUBIC, whatever this host's default (often BBR).
    const iperf = async (port: number, host: string): Promise<number> => {
      const r = await lab.run(hosts.geo, ["iperf3", "-c", host, "-p", String(port), "-R", "-J", "-C", "cubic", "-t", String(GOODPUT_S)], { timeoutMs: (GOODPUT_S + 60) * 1000 });
      if (r.code !== 0) throw new Error(`iperf3 failed (${r.code}): ${r.stdout.slice(0, 500)} ${r.stderr}`);
      return JSON.parse(r.stdout).end.sum_received.bits_per_second / 1e6;
    };
    expect((await m.waitPathPinging(nodes.geo, nodes.srv, (p) => p === "direct", 60_000)).path).toBe("direct");
    const before = await routers.geo.link!.stats();
    const kernel = await iperf(IPERF_PORT, hosts.srv.address);
    const f = await m.request<{ listen: string }>(nodes.geo, "forward", { listenPort: 0, host: "iperf.srv", protocol: "tcp" });
    const port = Number(f.listen.split(":").pop());
    let ember: number;
    try {
      ember = await m.diagnosed([nodes.geo, nodes.srv], () => iperf(port, "127.0.0.1"));
    } finally {
      await m.request(nodes.geo, "unforward", { listenPort: port }).catch(() => undefined);
    }
    const after = await routers.geo.link!.stats();
    const down = { lost: after.down.lost - before.down.lost, queue: after.down.queueDrops - before.down.queueDrops };
    table.add({ scenario: `geo: ${GOODPUT_S} s download, srv -> geo`, expected: "ember forward >= kernel TCP",
      observed: `ember forward ${ember.toFixed(2)} Mbit/s, kernel TCP (CUBIC) ${kernel.toFixed(2)} Mbit/s (${(ember / kernel).toFixed(2)}x); link dropped ${down.lost} at random, ${down.queue} at the queue`,
      ms: null, ok: ember >= kernel });
    expect(ember).toBeGreaterThanOrEqual(kernel);
  }, 240_000);

  /** Sends 50 MB from srv to the sink on `name` (down its emulated link); the path must stay put. */
  async function transferDown(name: string, label: string, startBeforeOutageMs?: number): Promise<void> {
    const link = routers[name].link!;
    expect((await m.waitPathPinging(nodes.srv, nodes[name], (p) => p === "direct", 30_000)).path).toBe("direct");
    if (startBeforeOutageMs !== undefined) await untilOutageIn(link.profile.outageEveryMs!, startBeforeOutageMs, () => link.stats());
    const sw0 = [await switches(nodes.srv, nodes[name]), await switches(nodes[name], nodes.srv)];
    const s0 = await link.stats();
    const x = await transferThroughForward(m, nodes.srv, hosts.srv, { target: `sink.${name}`, bytes: TRANSFER, peers: [nodes[name]], stallMs: 120_000 });
    const s1 = await link.stats();
    const sw1 = [await switches(nodes.srv, nodes[name]), await switches(nodes[name], nodes.srv)];
    const path = await m.path(nodes.srv, nodes[name]);
    const exact = byteExact(x.r, TRANSFER);
    const outages = s1.outagesBegun - s0.outagesBegun;
    const dropped = (s1.down.lost - s0.down.lost) + (s1.up.lost - s0.up.lost);
    const dark = (s1.down.outageDrops - s0.down.outageDrops) + (s1.up.outageDrops - s0.up.outageDrops);
    const stayed = sw1[0] === sw0[0] && sw1[1] === sw0[1] && path === "direct";
    table.add({ scenario: `${label}: 50 MB srv -> ${name}`, expected: "byte-exact, direct throughout",
      observed: `${exact ? "sha256 equal" : "MISMATCH"}, ${x.r.mbps} Mbit/s; ${outages} outages (${dark} frames dark), ${dropped} lost at random; path switches ${sw1[0] - sw0[0]}/${sw1[1] - sw0[1]}, now ${path}`,
      ms: x.r.ms, ok: exact && stayed });
    expect(exact).toBe(true);
    expect(path).toBe("direct");
    expect(sw1).toEqual(sw0);
    if (startBeforeOutageMs !== undefined) expect(outages).toBeGreaterThanOrEqual(1);
  }

  it("low-orbit: 50 MB byte-exact through the outages, and one 150 ms outage never moves the path to the relay", async () => {
    await transferDown("leo", "leo", 3_000);
  }, 240_000);

  it("cellular: 50 MB byte-exact under jitter and loss, direct throughout", async () => {
    await transferDown("cell", "cellular");
  }, 240_000);

  it.skipIf(!!wgMissing)("geostationary at rest: a resting node's daemon sends no more than wireguard-go (keepalive 25 s) on a twin link", async () => {
    expect(idle).toBeDefined();
    const start = await idle!;
    await new Promise((r) => setTimeout(r, Math.max(0, start.at + IDLE_WINDOW_MS - Date.now())));
    const minutes = (Date.now() - start.at) / 60_000;
    const ember = txPackets(hosts.idle) - start.ember, wg = txPackets(hosts.wgi) - start.wg;
    const [e, w] = [sendCounts(lab, hosts.idle), sendCounts(lab, hosts.wgi)];
    const daemon = (c: Record<string, number>) => c["tcp-ack"] + c["tcp-data"] + c.udp;
    const kinds = (c: Record<string, number>) => Object.entries(c).map(([k, v]) => `${k} ${v}`).join(", ");
    table.add({ scenario: `geo at rest, ${minutes.toFixed(1)} min after ${IDLE_SETTLE_MS / 1000} s (host interface, all packets)`,
      expected: "daemon's packets (TCP + UDP) <= wireguard-go's; all packets shown",
      observed: `EmberNet ${ember} (${(ember / minutes).toFixed(1)}/min: ${kinds(e)}), wireguard-go ${wg} (${(wg / minutes).toFixed(1)}/min: ${kinds(w)}); total ${(ember / wg).toFixed(2)}x`,
      ms: null, ok: daemon(e) <= daemon(w) });
    expect(daemon(e), `what EmberNet sent at rest (${kinds(e)}) against wireguard-go (${kinds(w)})`).toBeLessThanOrEqual(daemon(w));
  }, IDLE_SETTLE_MS + IDLE_WINDOW_MS + 60_000);
});
if (wgMissing) console.log(`natlab long-link idle comparison skipped: ${wgMissing} is not installed (Debian packages wireguard-go, wireguard-tools)`);

/** What a resting host sends, by kind: TCP acknowledgements alone, other TCP, UDP, IPv6, ARP (nft counters). */
const SEND_COUNTERS = `table inet sendcount {
  chain out { type filter hook output priority 0; policy accept;
    meta nfproto ipv4 meta l4proto tcp ip length 52 counter accept comment "tcp-ack"
    meta nfproto ipv4 meta l4proto tcp counter accept comment "tcp-data"
    meta nfproto ipv4 meta l4proto udp counter accept comment "udp"
    meta nfproto ipv6 counter accept comment "ipv6"
  }
}
table arp sendcount {
  chain out { type filter hook output priority 0; policy accept;
    counter comment "arp"
  }
}
`;

function sendCounts(lab: Lab, h: Host): Record<string, number> {
  const out: Record<string, number> = {};
  for (const family of ["inet", "arp"]) {
    const text = lab.exec(h, ["nft", "list", "table", family, "sendcount"]);
    for (const m of text.matchAll(/packets (\d+) bytes \d+ (?:accept )?comment "([^"]+)"/g)) out[m[2]] = Number(m[1]);
  }
  return out;
}

/** Waits until the next scheduled outage is `leadMs` away (or less, but not under half of it). */
async function untilOutageIn(everyMs: number, leadMs: number, stats: () => Promise<LinkStats>): Promise<void> {
  const s = await stats();
  const toNext = everyMs - (s.uptimeMs % everyMs);
  const wait = toNext >= leadMs ? toNext - leadMs : toNext + everyMs - leadMs;
  await new Promise((r) => setTimeout(r, wait));
}
