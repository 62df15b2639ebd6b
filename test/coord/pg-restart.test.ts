// PostgreSQL restarted under load: two coordination replicas keep serving (their pools and the change feed's
// LISTEN connection reconnect), no acknowledged enrollment is lost, and a node's map stream on a replica stays
// up and keeps receiving changes made on the other one. Real `ember coord` processes on a throwaway cluster.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { AdminClient } from "../../src/coord-client/admin-client.js";
import { CoordClient, enroll, type PeerMap } from "../../src/coord-client/client.js";
import { postgresSkipReason, startPostgres, type PgCluster } from "../helpers/postgres.js";
import { makeMesh, spawnCoord, waitFor, type CoordProcess, type Mesh } from "./helpers.js";

const pgSkip = postgresSkipReason();
if (pgSkip) console.log(`PostgreSQL restart test skipped: ${pgSkip}`);

describe.skipIf(!!pgSkip)("PostgreSQL restarted under load", () => {
  let cluster: PgCluster | undefined;
  let mesh: Mesh | undefined;
  const reps: CoordProcess[] = [];
  let client: CoordClient | undefined;
  const admin = (r: CoordProcess) => new AdminClient({ ...mesh!.adminFlags, coord: r.url }, {});
  const names = (m: PeerMap | undefined) => (m?.peers ?? []).map((p) => p.name);

  beforeAll(async () => {
    cluster = await startPostgres();
    mesh = await makeMesh();
    const db = await cluster.createDatabase("coord");
    reps.push(...await Promise.all([0, 1].map((i) => spawnCoord(mesh!, 0, ["--store", db], { dataDir: join(mesh!.dir, `data-${i}`) }))));
    await admin(reps[0]).setPolicy(`version: 1\nrules:\n  - allow: {source: "*", target: "*"}\n`);
  }, 60_000);

  afterAll(async () => {
    await client?.stop();
    await Promise.all(reps.map((r) => r.kill9()));
    cluster?.stop();
    mesh?.cleanup();
  });

  it("replicas reconnect, no acknowledged enrollment is lost, and a node's stream keeps going", async () => {
    const [a, b] = reps;
    const watcherDir = join(mesh!.dir, "watcher");
    await enroll({ coordUrl: b.url, token: (await admin(b).createToken({ tenant: "acme", groups: [], roles: [] })).token, name: "watcher", stateDir: watcherDir });
    client = new CoordClient({ coordUrl: b.url, stateDir: watcherDir, minBackoffMs: 200, maxBackoffMs: 1_000 });
    client.start();
    await waitFor(() => client!.map, 10_000, "watcher's map from replica b");

    // An enrollment loop on replica a (bounded: 40 nodes or 60 s), with the restart in the middle of it.
    const acked: string[] = [];
    const failures: string[] = [];
    let restarted = false;
    const loop = (async () => {
      const end = Date.now() + 60_000;
      for (let i = 0; i < 40 && Date.now() < end; i++) {
        const name = `n-${i}`;
        for (let attempt = 0; attempt < 20; attempt++) {
          try {
            const t = (await admin(a).createToken({ tenant: "acme", groups: [], roles: [] })).token;
            await enroll({ coordUrl: a.url, token: t, name, stateDir: join(mesh!.dir, name) });
            acked.push(name);
            break;
          } catch (err) {
            failures.push(`${name}: ${(err as Error).message.slice(0, 120)}`);
            await new Promise((r) => setTimeout(r, 250));
          }
        }
      }
    })();
    await waitFor(() => (acked.length >= 10 ? true : undefined), 30_000, "10 enrollments before the restart");
    const t0 = Date.now();
    await cluster!.restart();
    restarted = true;
    const restartMs = Date.now() - t0;
    await loop;
    expect(restarted).toBe(true);
    const aGone = a.child.exitCode !== null || a.child.signalCode !== null ? `\nreplica a exited (${a.child.exitCode ?? a.child.signalCode}):\n${a.stderr().slice(-3000)}` : "";
    expect(acked.length, `refused attempts, the last ones:\n${failures.slice(-3).join("\n")}${aGone}`).toBe(40);

    // Every acknowledged enrollment is in the database (asked through the other replica) and in the watcher's map.
    const listed = new Set(((await admin(b).listNodes()) as { nodes: { name: string }[] }).nodes.map((n) => n.name));
    for (const n of acked) expect(listed.has(n), `${n} acknowledged but not stored`).toBe(true);
    await waitFor(() => (acked.every((n) => names(client!.map).includes(n)) ? true : undefined), 10_000, "every node in the watcher's map (changes after the restart reach replica b)");
    console.log(`PostgreSQL restart (fast) took ${restartMs} ms; ${acked.length} enrollments acknowledged, all stored; ${failures.length} attempts refused while it was down; watcher stream connects ${client.stats.connects}, full maps ${client.stats.fullMaps}`);
  }, 120_000);
});
