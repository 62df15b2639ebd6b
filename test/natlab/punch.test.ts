// Measures the Linux conntrack clash (DESIGN.md, NAT traversal) between two EIM (masquerade) routers:
// naive simultaneous punching versus low-TTL first packets. Prints every trial; the table goes to docs/natlab.md.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab } from "./lab.js";
import { buildStandardLab, hasConntrackTool, punchRow, punchTrial, type PunchTrial, type StandardLab } from "./selfchecks.js";
import { ResultTable } from "./table.js";

const avail = Lab.available();
if (!avail.ok) console.log(`natlab punch tests skipped: ${avail.why}`);

const describeLine = (t: PunchTrial) =>
  `${t.mode} port ${t.port} skew ${t.skewMs} ms hold ${t.holdMs} ms: ${t.ok ? `connected in ${t.connectMs} ms` : "FAILED"}; ` +
  `public port towards peer a=${t.aPortToPeer} b=${t.bPortToPeer}; pings seen a=${t.a.pings} b=${t.b.pings}`;

/** A failed punch between these NATs must be the clash: at least one router remapped the punching port. */
function expectClashExplainsFailure(t: PunchTrial): void {
  if (t.ok || !hasConntrackTool()) return;
  const remapped = t.aPortToPeer !== t.port || t.bPortToPeer !== t.port;
  expect(remapped, describeLine(t)).toBe(true);
}

describe.skipIf(!avail.ok)("natlab punching between two EIM NATs", () => {
  let s: StandardLab;
  const table = new ResultTable();
  beforeAll(async () => { s = await buildStandardLab(); });
  afterAll(async () => {
    console.log(`\n${table.render()}`);
    await s?.lab.destroy();
  });

  it("naive simultaneous punching: measured, and every failure is a conntrack remap", async () => {
    const trials: PunchTrial[] = [];
    for (let i = 0; i < 6; i++) {
      const t = await punchTrial(s, "naive", 43000 + i, { skewMs: 0, holdMs: 0, budgetMs: 1500 });
      console.log(describeLine(t));
      trials.push(t);
      expectClashExplainsFailure(t);
    }
    table.add(punchRow("eim<->eim naive, same instant", trials, "race; clash remaps", true));
  }, 45_000);

  // Holds here leave a wide margin over scheduling skew on a loaded CI machine; scripts/natlab.ts measures hold 100.
  it("low-TTL first (TTL 2, hold 200 ms): every trial connects and both NATs keep the port", async () => {
    const trials: PunchTrial[] = [];
    for (let i = 0; i < 4; i++) {
      const t = await punchTrial(s, "lowttl", 43100 + i, { skewMs: 0, holdMs: 200, budgetMs: 2000 });
      console.log(describeLine(t));
      trials.push(t);
      expect(t.ok, describeLine(t)).toBe(true);
      if (hasConntrackTool()) expect([t.aPortToPeer, t.bPortToPeer]).toEqual([t.port, t.port]);
    }
    table.add(punchRow("eim<->eim low-TTL (hold 200), same instant", trials, "connects, ports kept", trials.every((t) => t.ok)));
  }, 30_000);

  it("low-TTL when the peer starts 300 ms late: a hold of 100 ms clashes, 800 ms connects", async () => {
    const short = await punchTrial(s, "lowttl", 43200, { skewMs: 300, holdMs: 100, budgetMs: 1500 });
    const long = await punchTrial(s, "lowttl", 43201, { skewMs: 300, holdMs: 800, budgetMs: 2500 });
    console.log(describeLine(short));
    console.log(describeLine(long));
    expectClashExplainsFailure(short);
    expect(long.ok, describeLine(long)).toBe(true);
    table.add(punchRow("low-TTL, peer 300 ms late, hold 100", [short], "clash (hold < skew)", true));
    table.add(punchRow("low-TTL, peer 300 ms late, hold 800", [long], "connects", long.ok));
  }, 30_000);
});
