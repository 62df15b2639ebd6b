// Port mapping against a real miniupnpd (Debian miniupnpd-nftables) on an endpoint-DEPENDENT lab NAT:
// (1) the clients get, show and delete a mapping by NAT-PMP, PCP and UPnP IGD (checked in miniupnpd's nft
// rules and with UPnP GetGenericPortMappingEntry); (2) an `ember up` node behind that NAT reaches a node
// behind an endpoint-independent NAT on a DIRECT path through its mapping (without port mapping this pair
// stays on the relay: test/natlab/traversal.test.ts, "EDM NAT <-> EIM NAT"); (3) SIGTERM deletes the mapping.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { Lab, type Host, type Router } from "./lab.js";
import { EmberLab, type LabNode } from "./ember-mesh.js";
import { miniupnpdMissing, startMiniupnpd, type Miniupnpd } from "./miniupnpd.js";
import { startTool } from "./tools.js";
import { tempDir } from "../helpers/pki.js";

const avail = Lab.available();
const missing = avail.ok ? miniupnpdMissing() : avail.why;
if (missing) console.log(`natlab port mapping tests skipped: ${missing}`);

describe.skipIf(!!missing)("port mapping through miniupnpd on an endpoint-dependent NAT", () => {
  let lab: Lab;
  let tmp: ReturnType<typeof tempDir>;
  let m: EmberLab;
  let edm: Router;
  let upnpd: Miniupnpd;
  let client: Host;
  const rows: string[] = [];

  beforeAll(async () => {
    tmp = tempDir("ember-portmap-");
    lab = await Lab.create();
    m = new EmberLab(lab, join(tmp.dir, "mesh"));
    await m.startServices();
    await m.setPolicy("version: 1\nrules: []\n");
    edm = await lab.addRouter("rpd", "edm");
    upnpd = await startMiniupnpd(lab, edm, join(tmp.dir, "miniupnpd"));
    client = await lab.addHost("pc", edm);
  }, 180_000);

  afterAll(async () => {
    console.log(`\nport mapping (miniupnpd-nftables, endpoint-dependent NAT)\n${rows.join("\n")}\n`);
    await lab?.destroy();
    if (lab) expect(lab.existingNamespaces()).toEqual([]);
    tmp?.cleanup();
  }, 60_000);

  async function upnpEntries(): Promise<{ externalPort: number; internalClient: string; internalPort: number; description: string }[]> {
    const t = startTool(lab, client, "portmap-client", ["--gateway", edm.lanAddress, "--list"]);
    const r = await t.nextJson(20_000);
    if (r.error) throw new Error(r.error);
    return r.entries;
  }

  for (const protocol of ["nat-pmp", "pcp", "upnp"] as const) {
    it(`${protocol}: miniupnpd grants a mapping of our UDP port on its WAN address, and deletes it when asked`, async () => {
      const port = { "nat-pmp": 41001, pcp: 41002, upnp: 41003 }[protocol];
      const t0 = Date.now();
      const t = startTool(lab, client, "portmap-client", ["--gateway", edm.lanAddress, "--protocol", protocol, "--port", String(port)]);
      const got = await t.nextJson(20_000);
      expect(got.error, `${protocol}: ${got.error}\n${upnpd.log().split("\n").slice(-15).join("\n")}`).toBeUndefined();
      const ms = Date.now() - t0;
      expect(got.mapping).toMatchObject({ protocol, externalAddress: edm.wanAddress, internalPort: port });
      expect(got.mapping.lifetimeS).toBeGreaterThan(0);
      const ext = got.mapping.externalPort;
      // miniupnpd's own state: a DNAT rule for the external port to the client, and a UPnP entry for it.
      expect(upnpd.dnatRules().some((r) => r.includes(`th dport ${ext}`) && r.includes(`${client.address}:${port}`))).toBe(true);
      expect((await upnpEntries()).some((e) => e.externalPort === ext && e.internalClient === client.address && e.internalPort === port)).toBe(true);
      t.send("release");
      expect(await t.nextJson(20_000)).toEqual({ removed: true });
      expect(upnpd.dnatRules().some((r) => r.includes(`${client.address}:${port}`))).toBe(false);
      expect((await upnpEntries()).some((e) => e.internalPort === port)).toBe(false);
      rows.push(`  ${protocol.padEnd(8)} mapped ${edm.wanAddress}:${ext} -> ${client.address}:${port} in ${ms} ms (lifetime ${got.mapping.lifetimeS} s), deleted: yes`);
    }, 60_000);
  }

  describe("ember up behind the endpoint-dependent NAT", () => {
    let pd: LabNode, pe: LabNode;
    let mapped = "";

    it("the node maps its port, reports the mapping as a candidate and netcheck names the protocol", async () => {
      const hd = await lab.addHost("pd", edm);
      const he = await lab.addHost("pe", await lab.addRouter("rpe", "eim"));
      // pd asks its gateway (miniupnpd); pe's router has no port mapping service, so pe asks none.
      [pd, pe] = await Promise.all([
        m.startNode("pd", hd, { EMBER_PORTMAP: "pcp,nat-pmp,upnp" }),
        m.startNode("pe", he, { EMBER_PORTMAP: "off" }),
      ]);
      const t0 = Date.now();
      let nc: any;
      while (Date.now() - t0 < 20_000) {
        nc = await m.request(pd, "netcheck", {}, 20_000);
        // Both facts at once: a netcheck on a loaded machine may miss a STUN answer and say "unknown".
        if (nc.portmap?.mapped && nc.mapping !== "unknown") break;
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(nc.portmap, JSON.stringify(nc.portmap)).toMatchObject({ gateway: edm.lanAddress, protocol: "pcp", pcp: true, natPmp: true, upnp: true, enabled: true, mappedBy: "pcp" });
      expect(nc.mapping).toBe("endpoint-dependent");
      mapped = nc.portmap.mapped;
      expect(mapped.startsWith(`${edm.wanAddress}:`)).toBe(true);
      expect(upnpd.dnatRules().some((r) => r.includes(hd.address))).toBe(true);
      rows.push(`  ember up: netcheck portmap ${JSON.stringify({ protocol: nc.portmap.protocol, mapped, mappedBy: nc.portmap.mappedBy })}, mapping ${nc.mapping}`);
    }, 90_000);

    it("EDM NAT with port mapping <-> EIM NAT: direct path through the mapping, traffic both ways", async () => {
      expect(mapped).not.toBe("");
      const policyAt = Date.now();
      await m.setPolicy("version: 1\nrules:\n  - allow: {source: pd, target: pe}\n  - allow: {source: pe, target: pd}\n");
      await m.firstPong(pd, pe, 45_000);
      // Pinging keeps the pair active; on a loaded machine a first round can fail and a quiet (35 s) come first.
      const there = await m.waitPathPinging(pe, pd, (p) => p === "direct", 90_000);
      const back = await m.waitPathPinging(pd, pe, (p) => p === "direct", 20_000);
      const peerOfPe = (await m.request<any[]>(pe, "peers")).find((p) => p.name === "pd");
      rows.push(`  pe -> pd path ${there.path} via ${peerOfPe?.endpoint} (mapped ${mapped}); pd -> pe path ${back.path}; direct ${Date.now() - policyAt} ms after the policy allowed the pair`);
      expect(there.path).toBe("direct");
      expect(back.path).toBe("direct");
      expect(peerOfPe?.endpoint).toBe(mapped);
      const a = await m.request(pd, "ping", { name: "pe", timeoutMs: 2_000 }, 4_000);
      const b = await m.request(pe, "ping", { name: "pd", timeoutMs: 2_000 }, 4_000);
      expect(a.rttMs).toBeGreaterThan(0);
      expect(b.rttMs).toBeGreaterThan(0);
    }, 200_000);

    it("SIGTERM: the node deletes its mapping before it exits", async () => {
      expect(upnpd.dnatRules().some((r) => r.includes(pd.host.address))).toBe(true);
      await m.stopNode(pd);
      expect(pd.proc.exitCode).toBe(0);
      expect(upnpd.dnatRules().some((r) => r.includes(pd.host.address))).toBe(false);
      expect((await upnpEntries()).some((e) => e.internalClient === pd.host.address)).toBe(false);
      rows.push("  SIGTERM: mapping gone from miniupnpd (nft DNAT rules and GetGenericPortMappingEntry)");
    }, 60_000);
  });
});
