// kill -9 of a real `ember coord` process in the middle of enrollments and certificate rotations, then a
// restart on the same data directory: every acknowledged enrollment is there, no token works twice, and
// connected nodes reconnect and keep rotating.
import { afterAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { CoordClient, enroll } from "../../src/coord-client/client.js";
import { makeMesh, portOf, spawnCoord, waitFor, type CoordProcess, type Mesh } from "./helpers.js";

let mesh: Mesh | undefined;
let proc: CoordProcess | undefined;
const clients: CoordClient[] = [];

afterAll(async () => {
  await Promise.all(clients.map((c) => c.stop()));
  await proc?.kill9();
  mesh?.cleanup();
});

describe("coordination server crash safety", () => {
  it("keeps every acknowledged enrollment and never accepts a token twice across kill -9", async () => {
    mesh = await makeMesh();
    proc = await spawnCoord(mesh);
    const url = proc.url;
    const admin = mesh.admin();

    // Two nodes rotating every ~2 s while the server dies.
    for (const name of ["rot-1", "rot-2"]) {
      const t = (await admin.createToken({ tenant: "acme", groups: ["eng"], roles: [], certTtlMs: 3_000 })).token;
      await enroll({ coordUrl: url, token: t, name, stateDir: join(mesh.dir, name) });
      const c = new CoordClient({ coordUrl: url, stateDir: join(mesh.dir, name), minBackoffMs: 200, maxBackoffMs: 1_000 });
      clients.push(c);
      c.start();
    }
    await waitFor(() => clients.every((c) => c.map), 10_000, "rotating clients connected");

    const N = 40;
    const tokens: string[] = [];
    for (let i = 0; i < N; i++) tokens.push((await admin.createToken({ tenant: "acme", groups: ["eng"], roles: [] })).token);
    const acked = new Set<number>();
    const attempts = tokens.map((token, i) => enroll({ coordUrl: url, token, name: `n-${i}`, stateDir: join(mesh!.dir, `n-${i}`) })
      .then(() => { acked.add(i); }, () => undefined));
    await waitFor(() => acked.size >= 5, 20_000, "some enrollments acknowledged");
    await proc.kill9();
    await Promise.all(attempts);
    const ackedAtKill = new Set(acked);
    expect(ackedAtKill.size).toBeGreaterThanOrEqual(5);

    proc = await spawnCoord(mesh, portOf(url));
    const present = new Set<string>((await mesh.admin().listNodes()).nodes.map((n: { name: string }) => n.name));
    for (const i of ackedAtKill) expect(present.has(`n-${i}`)).toBe(true);

    // No token is usable twice: a committed enrollment consumed its token, acknowledged or not.
    for (let i = 0; i < N; i++) {
      const again = enroll({ coordUrl: url, token: tokens[i], name: `again-${i}`, stateDir: join(mesh.dir, `again-${i}`) });
      if (present.has(`n-${i}`)) {
        await expect(again).rejects.toThrow(/token_used/);
      } else {
        await again; // never committed: the token still has its one use
        await expect(enroll({ coordUrl: url, token: tokens[i], name: `third-${i}`, stateDir: join(mesh.dir, `third-${i}`) })).rejects.toThrow(/token_used/);
      }
    }

    // The rotating nodes reconnect to the restarted server and keep renewing.
    const renewalsAtRestart = clients.map((c) => c.stats.renewals);
    const connectsAtRestart = clients.map((c) => c.stats.connects);
    await waitFor(() => clients.every((c, i) => c.stats.renewals > renewalsAtRestart[i] && c.stats.connects > connectsAtRestart[i]), 20_000, "reconnect + renewal after restart");
    expect(clients.every((c) => c.map !== undefined)).toBe(true);
  }, 60_000);
});
