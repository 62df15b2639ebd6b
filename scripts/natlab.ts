// `npm run natlab`: builds the NAT lab (root), runs its scenarios and prints a table of scenario, expected,
// observed and time. Add EmberNet scenarios to SCENARIOS below; each appends rows to the table.
//   npm run natlab [-- --json] [--only <substring>] [--keep] [--prefix <p>] [--sweep]
import { parseArgs } from "node:util";
import { Lab } from "../test/natlab/lab.js";
import {
  buildStandardLab, checkCut, checkEdm, checkEim, checkLoss, checkNone, checkStunClient, checkUdpBlocked,
  punchRow, punchTrial, type PunchTrial, type StandardLab,
} from "../test/natlab/selfchecks.js";
import { ResultTable, type ResultRow } from "../test/natlab/table.js";
import { buildTraversal, TRAVERSAL_SCENARIOS } from "../test/natlab/traversal-scenarios.js";
import { buildIpv6Lab, firewallRow, IPV6_SCENARIOS } from "../test/natlab/ipv6-scenarios.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

interface Scenario { name: string; run(s: StandardLab, table: ResultTable): Promise<void> }

const row = (f: (s: StandardLab) => Promise<ResultRow & { data: unknown }>) =>
  async (s: StandardLab, table: ResultTable) => { const { data: _data, ...r } = await f(s); table.add(r); };

async function punchSeries(s: StandardLab, mode: "naive" | "lowttl", ports: number[], skewMs: number, holdMs: number): Promise<PunchTrial[]> {
  const out: PunchTrial[] = [];
  for (const p of ports) out.push(await punchTrial(s, mode, p, { skewMs, holdMs, budgetMs: 1500 }));
  return out;
}

const SCENARIOS: Scenario[] = [
  { name: "none", run: row(checkNone) },
  { name: "eim", run: row(checkEim) },
  { name: "edm", run: row(checkEdm) },
  { name: "udp-blocked", run: row(checkUdpBlocked) },
  { name: "cut", run: row(checkCut) },
  { name: "loss", run: row((s) => checkLoss(s, 10, 500)) },
  { name: "stun-interop", run: row(checkStunClient) },
  {
    name: "punch",
    run: async (s, table) => {
      const naive = await punchSeries(s, "naive", [44000, 44001, 44002, 44003], 0, 0);
      table.add(punchRow("eim<->eim naive punch", naive, "clash: usually fails", true));
      const low = await punchSeries(s, "lowttl", [44100, 44101, 44102, 44103], 0, 100);
      table.add(punchRow("eim<->eim low-TTL punch (hold 100)", low, "connects", low.every((t) => t.ok)));
      const late = await punchSeries(s, "lowttl", [44200], 300, 100);
      table.add(punchRow("low-TTL, peer 300 ms late, hold 100", late, "clash (hold < skew)", true));
      const lateLong = await punchSeries(s, "lowttl", [44201], 300, 500);
      table.add(punchRow("low-TTL, peer 300 ms late, hold 500", lateLong, "connects", lateLong.every((t) => t.ok)));
    },
  },
  // EmberNet itself: coordination server, relays and nodes as real processes in a lab of their own.
  { name: "ember", run: (_s, table) => inOwnLab("nlem", buildTraversal, TRAVERSAL_SCENARIOS, table) },
  // IPv6: a dual-stack pair behind stateful v6 firewalls, an IPv6-only node behind NAT64/DNS64 (issue 26).
  {
    name: "ipv6",
    run: async (_s, table) => inOwnLab("nlv6", buildIpv6Lab, IPV6_SCENARIOS, table, (t) => table.add(firewallRow(t))),
  },
];

/** Builds a lab of its own with `build`, runs each scenario into the table, and tears the lab down. */
async function inOwnLab<T>(prefix: string, build: (lab: Lab, dir: string) => Promise<T>, scenarios: { name: string; run(t: T): Promise<ResultRow[]> }[],
  table: ResultTable, after?: (t: T) => void): Promise<void> {
  const lab = await Lab.create({ prefix });
  const dir = mkdtempSync(join(tmpdir(), "ember-natlab-"));
  try {
    const t = await build(lab, dir);
    for (const sc of scenarios) {
      try {
        for (const r of await sc.run(t)) table.add(r);
      } catch (e) {
        table.add({ scenario: sc.name, expected: "runs", observed: `error: ${(e as Error).message.split("\n")[0]}`, ms: null, ok: false });
      }
    }
    after?.(t);
  } finally {
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        json: { type: "boolean", default: false }, keep: { type: "boolean", default: false }, sweep: { type: "boolean", default: false },
        only: { type: "string" }, prefix: { type: "string" },
      },
    }).values;
  } catch (e) {
    console.error(`natlab: ${(e as Error).message}`);
    return 2;
  }
  const avail = Lab.available();
  if (!avail.ok) { console.error(`natlab: ${avail.why}`); return 2; }
  if (args.sweep) {
    const removed = Lab.sweepOrphans();
    console.log(removed.length ? `removed ${removed.join(", ")}` : "nothing to sweep");
    return 0;
  }
  const chosen = SCENARIOS.filter((sc) => !args.only || sc.name.includes(args.only));
  if (!chosen.length) { console.error(`natlab: no scenario matches "${args.only}" (have ${SCENARIOS.map((x) => x.name).join(", ")})`); return 2; }

  const t0 = Date.now();
  const s = await buildStandardLab({ prefix: args.prefix });
  const table = new ResultTable();
  try {
    if (!args.json) console.log(`lab ${s.lab.prefix} built in ${Date.now() - t0} ms: ${s.lab.existingNamespaces().length} namespaces`);
    for (const sc of chosen) {
      try {
        await sc.run(s, table);
      } catch (e) {
        table.add({ scenario: sc.name, expected: "runs", observed: `error: ${(e as Error).message.split("\n")[0]}`, ms: null, ok: false });
      }
    }
    if (args.json) console.log(JSON.stringify({ prefix: s.lab.prefix, rows: table.rows, ok: table.allOk }));
    else console.log(`\n${table.render()}\n\n${table.allOk ? "all ok" : "SOME CHECKS FAILED"} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    if (args.keep) {
      console.log(`\nlab kept up: namespaces ${s.lab.existingNamespaces().join(" ")}\n` +
        `try: ip netns exec ${s.hosts.eim.ns} ping ${s.srv.address}   (Ctrl-C tears the lab down)`);
      await new Promise<void>((res) => { process.once("SIGINT", () => res()); process.once("SIGTERM", () => res()); });
    }
  } finally {
    await s.lab.destroy();
  }
  return table.allOk ? 0 : 1;
}

main().then((code) => process.exit(code), (e) => { console.error(`natlab: ${(e as Error).message}`); process.exit(1); });
