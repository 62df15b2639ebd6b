// EmberNet across real NATs (test/natlab/traversal-scenarios.ts): every scenario row must hold; the
// table with the time to the first encrypted round trip is printed at the end.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab } from "./lab.js";
import { ResultTable } from "./table.js";
import { buildTraversal, TRAVERSAL_SCENARIOS, type Traversal } from "./traversal-scenarios.js";
import { tempDir } from "../helpers/pki.js";

const avail = Lab.available();
if (!avail.ok) console.log(`natlab traversal tests skipped: ${avail.why}`);

describe.skipIf(!avail.ok)("NAT traversal in the lab", () => {
  let lab: Lab;
  let tmp: ReturnType<typeof tempDir>;
  let t: Traversal;
  const table = new ResultTable();

  beforeAll(async () => {
    tmp = tempDir("ember-natlab-");
    lab = await Lab.create();
    t = await buildTraversal(lab, tmp.dir);
  }, 180_000);

  afterAll(async () => {
    console.log(`\nNAT traversal scenarios (time = session established after the policy allowed the pair)\n${table.render()}\n`);
    await lab?.destroy();
    if (lab) expect(lab.existingNamespaces()).toEqual([]);
    tmp?.cleanup();
  }, 60_000);

  for (const sc of TRAVERSAL_SCENARIOS) {
    it(sc.name, async () => {
      for (const row of await sc.run(t)) {
        table.add(row);
        expect(row.ok, `${row.scenario}: expected ${row.expected}, observed ${row.observed}`).toBe(true);
      }
    }, 120_000);
  }
});
