// A relay given two coordination replicas (`--coord URL1,URL2`) keeps learning revocations when the one it
// polls is killed with SIGKILL: a node revoked through the survivor is cut from the relay within a few polls.
// Real `ember coord` processes on a throwaway PostgreSQL, the relay as a real child process.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AdminClient } from "../../src/coord/admin-client.js";
import { enroll } from "../../src/coord/client.js";
import { withIntermediates } from "../../src/pki/index.js";
import type { RelayClient } from "../../src/nat/relay-client.js";
import { postgresSkipReason } from "../helpers/postgres.js";
import { startReplicaSet, type CoordProcess, type Mesh, type ReplicaSet } from "../coord/helpers.js";
import { connected, logLines, makePki, nodeClient, startRelay, waitFor, type IdentityFiles, type Pki, type RelayProc } from "./helpers.js";

const pgSkip = postgresSkipReason();
if (pgSkip) console.log(`relay with coordination replicas skipped: ${pgSkip}`);

const POLL_MS = 300;

describe.skipIf(!!pgSkip)("a relay following two coordination replicas", () => {
  let set: ReplicaSet | undefined;
  let mesh: Mesh | undefined;
  let pki: Pki | undefined;
  let relay: RelayProc | undefined;
  let reps: CoordProcess[] = [];
  const clients: RelayClient[] = [];
  const admin = (r: CoordProcess) => new AdminClient({ ...mesh!.adminFlags, coord: r.url }, {});

  /** A node enrolled through the coordination server, connected to the relay with that certificate. */
  async function enrolledOnRelay(name: string, via: CoordProcess): Promise<RelayClient> {
    const dir = join(mesh!.dir, name);
    await enroll({ coordUrl: via.url, token: (await admin(via).createToken({ tenant: "acme", groups: [], roles: [] })).token, name, stateDir: dir });
    const id = {
      name, certChainPem: withIntermediates(readFileSync(join(dir, "cert.pem"), "utf8"), mesh!.ca.bundlePem), keyPem: readFileSync(join(dir, "key.pem"), "utf8"),
    } as IdentityFiles;
    const c = nodeClient(pki!, relay!, id);
    clients.push(c);
    c.start();
    await connected(c);
    return c;
  }

  beforeAll(async () => {
    set = await startReplicaSet(2);
    ({ mesh, reps } = set);
    pki = await makePki(mesh.ca);
    const relayId = await pki.identity("relay-r", { roles: ["relay"] });
    relay = await startRelay(pki, relayId, ["--coord", `${reps[0].url},${reps[1].url}`, "--revocation-poll", `${POLL_MS}ms`]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await relay?.stop();
    await set?.stop();
    pki?.cleanup();
  });

  it("takes the list, and a revocation made through the survivor after a kill -9 of the first replica cuts the node", async () => {
    const [a, b] = reps;
    // Before the kill: a revocation through replica a reaches the relay (it polls a first).
    const first = await enrolledOnRelay("node-1", a);
    const firstDropped = new Promise<string>((r) => first.once("disconnected", r));
    await admin(a).revoke("node-1");
    expect(await firstDropped).toMatch(/^revoked:/);

    const second = await enrolledOnRelay("node-2", b);
    await a.kill9();
    const killedAt = Date.now();
    const secondDropped = new Promise<number>((r) => second.once("disconnected", (why: string) => { if (/^revoked:/.test(why)) r(Date.now()); }));
    const revokedAt = Date.now();
    await admin(b).revoke("node-2");
    const cutAt = await Promise.race([secondDropped, new Promise<number>((_, rej) => setTimeout(() => rej(new Error("node-2 not cut within 10 s")), 10_000))]);
    // One poll may still go to the dead replica (refused at once); the next asks the survivor.
    expect(cutAt - revokedAt).toBeLessThan(5_000);
    const failed = logLines(relay!).filter((l) => l.event === "revocation_poll_failed");
    expect(failed.some((l) => l.replica === new URL(a.url).origin), "the failed poll names the dead replica").toBe(true);
    console.log(`relay with two replicas: node revoked through the survivor ${cutAt - killedAt} ms after kill -9 of the first, cut ${cutAt - revokedAt} ms after the revocation (poll ${POLL_MS} ms)`);
  }, 60_000);
});
