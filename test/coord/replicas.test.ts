// Three real `ember coord` processes on one throwaway PostgreSQL, each with its own data directory and the same
// CA directory: a change made on any replica (enrollment, revocation, policy) reaches the map streams held by
// the others within a second; a one-time token raced at all replicas enrolls once; kill -9 of a replica in the
// middle of enrollments loses no acknowledged enrollment and lets no token be used twice.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AdminClient } from "../../src/coord-client/admin-client.js";
import { CoordClient, enroll, type PeerMap } from "../../src/coord-client/client.js";
import { PATHS } from "../../src/wire/coord/api.js";
import { postgresSkipReason, startPostgres, type PgCluster } from "../helpers/postgres.js";
import { makeMesh, rawRequest, spawnCoord, waitFor, type CoordProcess, type Mesh } from "./helpers.js";

const pgSkip = postgresSkipReason();
if (pgSkip) console.log(`replica tests skipped: ${pgSkip}`);

const POLICY = `version: 1
rules:
  - allow: {source: "@eng", target: "@db", protocol: tcp, ports: [5432]}
`;
const POLICY_OTHER = `version: 1
rules:
  - allow: {source: "@eng", target: "@web", protocol: tcp, ports: [443]}
`;

let cluster: PgCluster | undefined;
let mesh: Mesh | undefined;
let dbUrl = "";
const reps: CoordProcess[] = [];
const clients: CoordClient[] = [];

const admin = (r: CoordProcess) => new AdminClient({ ...mesh!.adminFlags, coord: r.url }, {});
const peerNames = (m: PeerMap | undefined) => (m?.peers ?? []).map((p) => p.name).sort();
const listSerials = (text: string | undefined): string[] => (text ? JSON.parse(JSON.parse(text).list).serials : []);

async function newNode(via: CoordProcess, tokenFrom: CoordProcess, name: string, groups: string[]): Promise<string> {
  const t = (await admin(tokenFrom).createToken({ tenant: "acme", groups, roles: [] })).token;
  const stateDir = join(mesh!.dir, name);
  await enroll({ coordUrl: via.url, token: t, name, stateDir });
  return stateDir;
}

/** Polls every 2 ms (waitFor's 20 ms would blur the figures); resolves with the ms it took. */
async function timeUntil(fn: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const t0 = performance.now();
  while (!fn()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - t0;
}

const summary = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `median ${s[Math.floor(s.length / 2)].toFixed(1)} ms, max ${s[s.length - 1].toFixed(1)} ms over ${s.length}`;
};

describe.skipIf(!!pgSkip)("coordination replicas on one PostgreSQL", () => {
  beforeAll(async () => {
    cluster = await startPostgres();
    mesh = await makeMesh();
    dbUrl = await cluster.createDatabase("coord");
    // Started together: the migration lock lets one of them create the schema.
    reps.push(...await Promise.all([0, 1, 2].map((i) => spawnCoord(mesh!, 0, ["--store", dbUrl], { dataDir: join(mesh!.dir, `data-${i}`) }))));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await Promise.all(reps.map((r) => r.kill9()));
    cluster?.stop();
    mesh?.cleanup();
  });

  it("carries enrollments, revocations and policy from any replica to the streams held by the others within a second", async () => {
    const [a, b, c] = reps;
    // Groups a policy names must be known: a token declares them (on b; the check runs on a and c).
    await admin(b).createToken({ tenant: "acme", groups: ["eng", "db", "web"], roles: [] });
    await admin(a).setPolicy(POLICY);
    const appDir = await newNode(a, a, "app-1", ["eng"]);
    const app = new CoordClient({ coordUrl: b.url, stateDir: appDir, minBackoffMs: 200, maxBackoffMs: 1_000 });
    clients.push(app);
    app.start();
    await waitFor(() => app.map, 10_000, "app-1's map from replica b");

    // Enrolled on a (token made on c): the node appears in app-1's stream on b.
    const afterAck: number[] = [];
    for (let i = 0; i < 8; i++) {
      const name = `db-${i}`;
      const t = (await admin(c).createToken({ tenant: "acme", groups: ["db"], roles: [] })).token;
      await enroll({ coordUrl: a.url, token: t, name, stateDir: join(mesh!.dir, name) });
      afterAck.push(await timeUntil(() => peerNames(app.map).includes(name), 1_000, `${name} in b's stream`));
    }
    console.log(`enrollment on replica a -> peer in the stream on replica b, after a's answer: ${summary(afterAck)}`);

    // Revoked on c: gone from app-1's stream on b, with the new list; b's verifier refuses the serial too.
    const revokeMs: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await admin(c).revoke(`db-${i}`);
      revokeMs.push(await timeUntil(() => !peerNames(app.map).includes(`db-${i}`) && listSerials(app.map!.revocation).includes(r.serials[0]), 1_000, `db-${i} revoked in b's stream`));
    }
    console.log(`revocation on replica c -> removal and list in the stream on replica b: ${summary(revokeMs)}`);
    // For comparison, the same revocation made on b itself (no replication in the path).
    const r4 = await admin(b).revoke("db-4");
    const localMs = await timeUntil(() => !peerNames(app.map).includes("db-4") && listSerials(app.map!.revocation).includes(r4.serials[0]), 1_000, "db-4 revoked in b's stream");
    console.log(`revocation on replica b itself -> its own stream, after its answer: ${localMs.toFixed(1)} ms`);
    const revoked = readFileSync(join(mesh!.dir, "db-0", "cert.pem"), "utf8"), revokedKey = readFileSync(join(mesh!.dir, "db-0", "key.pem"), "utf8");
    const refused = await rawRequest(b.url, "GET", "/v1/revocation", { cert: revoked, key: revokedKey });
    expect(refused.status).toBe(401);
    expect(refused.body).toContain("revoked");

    // Policy set on c: app-1 no longer sees the db nodes, on b.
    const t0 = performance.now();
    await admin(c).setPolicy(POLICY_OTHER);
    const policyMs = await timeUntil(() => peerNames(app.map).length === 0, 1_000, "policy change in b's stream");
    console.log(`policy on replica c -> stream on replica b: ${policyMs.toFixed(1)} ms after c's answer (${(performance.now() - t0).toFixed(1)} ms with the request)`);
    await admin(a).setPolicy(POLICY);
    await waitFor(() => peerNames(app.map).length === 3, 1_000, "db-5..7 back after the policy returns");
    expect(peerNames(app.map)).toEqual(["db-5", "db-6", "db-7"]);

    // Endpoints db-5 reports to replica a reach app-1's stream on b with a's next status flush (every 2 s).
    const db5 = new CoordClient({ coordUrl: a.url, stateDir: join(mesh!.dir, "db-5"), minBackoffMs: 200, maxBackoffMs: 1_000 });
    clients.push(db5);
    db5.start();
    await waitFor(() => db5.map, 10_000, "db-5's map from replica a");
    db5.reportStatus({ endpoints: ["198.18.0.5:41641"], homeRelay: "relay-1" });
    const statusMs = await timeUntil(() => app.map!.peers.find((p) => p.name === "db-5")?.endpoints[0] === "198.18.0.5:41641", 5_000, "db-5's endpoints in b's stream");
    console.log(`status reported to replica a -> endpoints in the stream on replica b: ${statusMs.toFixed(0)} ms (a flushes statuses every 2 s)`);

    // Every replica lists the same nodes (one database).
    const lists = await Promise.all(reps.map(async (r) => (await admin(r).listNodes()).nodes.map((n: { name: string; status: string }) => `${n.name}:${n.status}`).sort()));
    expect(lists[1]).toEqual(lists[0]);
    expect(lists[2]).toEqual(lists[0]);
  }, 60_000);

  it("carries a person's login and disable from one replica to the streams held by the others", async () => {
    const c = reps[2];
    const app = clients[0];
    const db5 = clients[1];
    await admin(c).putMeshUser({ username: "alice", password: "correct horse battery", tenant: "acme", groups: ["eng"] });
    // db-5's stream and its login request go to a; app-1 watches from b.
    const r = await db5.post(PATHS.login, { username: "alice", password: "correct horse battery" });
    expect(r).toMatchObject({ user: "alice", device: "db-5", groups: ["eng"] });
    const loginMs = await timeUntil(() => app.map!.peers.find((p) => p.name === "db-5")?.userCertPem === r.certPem, 2_000, "alice's certificate in b's stream");
    await waitFor(() => db5.map!.self.userCertPem === r.certPem, 2_000, "db-5's own map shows the login");
    const t0 = performance.now();
    const off = await admin(c).setUserDisabled("alice", true);
    expect(off.loggedOut).toEqual(["db-5"]);
    const disableMs = await timeUntil(() => app.map!.peers.find((p) => p.name === "db-5")?.userCertPem === undefined, 2_000, "the login gone from b's stream");
    console.log(`login on replica a -> in the stream on replica b: ${loginMs.toFixed(1)} ms; disable on c -> gone on b: ${disableMs.toFixed(1)} ms after c's answer (${(performance.now() - t0).toFixed(1)} ms with the request)`);
    await waitFor(() => db5.map!.self.userCertPem === undefined, 2_000, "db-5's own map drops the login");
  }, 30_000);

  it("enrolls a one-time token given to every replica at once exactly once", async () => {
    for (let round = 0; round < 5; round++) {
      const t = (await admin(reps[round % 3]).createToken({ tenant: "acme", groups: ["eng"], roles: [] })).token;
      const results = await Promise.allSettled(reps.map((r, i) => enroll({ coordUrl: r.url, token: t, name: `race-${round}-${i}`, stateDir: join(mesh!.dir, `race-${round}-${i}`) })));
      expect(results.filter((x) => x.status === "fulfilled")).toHaveLength(1);
      for (const x of results) if (x.status === "rejected") expect(String(x.reason)).toMatch(/token_used/);
    }
    const names = (await admin(reps[0]).listNodes()).nodes.map((n: { name: string }) => n.name).filter((n: string) => n.startsWith("race-"));
    expect(names).toHaveLength(5);
  }, 60_000);

  it("loses no acknowledged enrollment and uses no token twice when a replica is killed -9 under enrollments", async () => {
    const [victim, survivor] = reps;
    const N = 20;
    const tokens: string[] = [];
    for (let i = 0; i < N; i++) tokens.push((await admin(survivor).createToken({ tenant: "acme", groups: ["eng"], roles: [] })).token);
    const acked = new Set<number>();
    // Mostly at the victim, a few at the survivor, all at once.
    const attempts = tokens.map((token, i) => enroll({ coordUrl: (i % 4 === 3 ? survivor : victim).url, token, name: `k-${i}`, stateDir: join(mesh!.dir, `k-${i}`) })
      .then(() => { acked.add(i); }, () => undefined));
    await waitFor(() => acked.size >= 4, 20_000, "some enrollments acknowledged");
    await victim.kill9();
    await Promise.all(attempts);
    const ackedAtKill = new Set(acked);

    const present = new Set<string>((await admin(survivor).listNodes()).nodes.map((n: { name: string }) => n.name).filter((n: string) => n.startsWith("k-")));
    for (const i of ackedAtKill) expect(present.has(`k-${i}`)).toBe(true);
    let retried = 0;
    for (let i = 0; i < N; i++) {
      const again = enroll({ coordUrl: survivor.url, token: tokens[i], name: `k2-${i}`, stateDir: join(mesh!.dir, `k2-${i}`) });
      if (present.has(`k-${i}`)) await expect(again).rejects.toThrow(/token_used/);
      else {
        await again; // never committed: the token still has its one use, once
        retried++;
        await expect(enroll({ coordUrl: survivor.url, token: tokens[i], name: `k3-${i}`, stateDir: join(mesh!.dir, `k3-${i}`) })).rejects.toThrow(/token_used/);
      }
    }
    console.log(`kill -9 under enrollments: ${ackedAtKill.size} acknowledged before the kill, ${present.size} of the loop's nodes committed, ${retried} tokens never committed`);
  }, 60_000);
});
