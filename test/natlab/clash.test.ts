// Issue 10: a conntrack clash provoked on purpose. Node b's opening packets towards node a are lost at b's own
// NAT (an nftables drop in its forward chain: a dropped packet confirms no conntrack entry, so it opens no
// mapping), so a's full-TTL probes reach b's NAT first and leave an UNREPLIED entry there (a's public
// address -> b's public port). Had b sent now, the Linux NAT would remap b's port for a (the clash in
// ../shared/DESIGN.md) for as long as a's probes kept the entry alive. The drop is lifted once the entry is
// seen; the pair must end direct in both directions anyway (a quiet longer than the UNREPLIED timeout, then a
// punch in the safe order, or the remapped port learned as a peer-reflexive candidate).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { Lab, type Host, type Router } from "./lab.js";
import { EmberLab, type LabNode } from "./ember-mesh.js";
import { ResultTable } from "./table.js";
import { tempDir } from "../helpers/pki.js";

const avail = Lab.available();
if (!avail.ok) console.log(`natlab clash tests skipped: ${avail.why}`);

/**
 * Linux's UNREPLIED UDP timeout is 30 s; quiets are 35 s, then 70 s: two failed rounds and a third that works
 * fit inside this (72 s measured on a loaded machine, the second round having failed too).
 */
const DIRECT_WITHIN_MS = 150_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!avail.ok)("a conntrack clash provoked on purpose (issue 10)", () => {
  let lab: Lab;
  let tmp: ReturnType<typeof tempDir>;
  let m: EmberLab;
  let ra: Router, rb: Router;
  let ha: Host, hb: Host;
  let a: LabNode, b: LabNode;
  const table = new ResultTable();

  beforeAll(async () => {
    tmp = tempDir("ember-natlab-clash-");
    lab = await Lab.create();
    m = new EmberLab(lab, join(tmp.dir, "mesh"));
    await m.startServices(); // allow-all policy
    ra = await lab.addRouter("ra", "eim");
    ha = await lab.addHost("a", ra);
    rb = await lab.addRouter("rb", "eim");
    hb = await lab.addHost("b", rb);
  }, 120_000);

  afterAll(async () => {
    console.log(`\nconntrack clash, provoked\n${table.render()}\n`);
    await lab?.destroy();
    tmp?.cleanup();
  }, 60_000);

  it("the peer's probes reach our NAT before our opening packet: the pair still ends direct both ways", async () => {
    // b's packets to a's public address die in b's router until the clash is set up.
    lab.nft(rb, `table inet clash {\n  chain drop_b {\n    type filter hook forward priority -10;\n` +
      `    ip saddr ${hb.address} ip daddr ${ra.wanAddress} meta l4proto udp drop\n  }\n}\n`);
    a = await m.startNode("a", ha);
    b = await m.startNode("b", hb);
    const t0 = Date.now();
    // Application traffic keeps both sides active (over the relay meanwhile): pings a -> b once a second.
    let pinging = true;
    const pinger = (async () => {
      while (pinging) {
        await m.request(a, "ping", { name: "b", timeoutMs: 1_000 }, 3_000).catch(() => undefined);
        await sleep(1_000);
      }
    })();
    try {
      // The clash's precondition: an UNREPLIED entry at b's NAT from a's public address to b's public address.
      let unreplied: string | undefined;
      for (let i = 0; i < 60 && !unreplied; i++) {
        unreplied = lab.conntrackUdp(rb).find((l) => l.includes(`src=${ra.wanAddress} dst=${rb.wanAddress}`) && l.includes("[UNREPLIED]"));
        if (!unreplied) await sleep(500);
      }
      table.add({ scenario: "a's probes first at b's NAT", expected: "UNREPLIED entry", observed: unreplied ? "seen" : "not seen", ms: Date.now() - t0, ok: !!unreplied });
      expect(unreplied, "a's full-TTL probes never reached b's NAT").toBeDefined();
      lab.nft(rb, "delete table inet clash\n");
      const lifted = Date.now();

      let ab = "-", ba = "-";
      while (Date.now() - lifted < DIRECT_WITHIN_MS) {
        [ab, ba] = await Promise.all([m.path(a, b).catch(() => "-"), m.path(b, a).catch(() => "-")]);
        if (ab === "direct" && ba === "direct") break;
        await sleep(500);
      }
      const ms = Date.now() - lifted;
      table.add({ scenario: "after the drop is lifted", expected: "direct both ways", observed: `a->b ${ab}, b->a ${ba}`, ms, ok: ab === "direct" && ba === "direct" });
      expect([ab, ba]).toEqual(["direct", "direct"]);
      // And it carries traffic: a ping answered on the direct path.
      const r = await m.request<{ rttMs: number; path: string }>(a, "ping-path", { name: "b", timeoutMs: 2_000 }, 5_000);
      expect(r.path).toBe("direct");
    } finally {
      pinging = false;
      await pinger;
    }
  }, 240_000);
});
