// Publications across coordination replicas on one PostgreSQL (docs/external-access.md): a node publishes through
// one replica, and the edge whose map stream is held by the other gets the publication (and the publishing node)
// through the change log; a policy set on the first replica without the external rule, and unexpose, take it away
// again. The replicas share the token signing key (docs/coord.md), so the edge's key verifies either's tokens.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AdminClient } from "../../src/coord-client/admin-client.js";
import { CoordClient, enroll } from "../../src/coord-client/client.js";
import { readCredentials } from "../../src/coord-client/state-files.js";
import { EDGE_PATHS } from "../../src/wire/coord/api.js";
import { TOKEN_KEY_FILE } from "../../src/coord/server.js";
import { BearerVerifier } from "../../src/edge/bearer.js";
import { Verifier, withIntermediates } from "../../src/pki/index.js";
import { requestJson, verifiedAgent } from "../../src/pki/mtls-client.js";
import { COORD_SERVER } from "../../src/wire/coord/names.js";
import { postgresSkipReason, startPostgres, type PgCluster } from "../helpers/postgres.js";
import { makeMesh, spawnCoord, waitFor, type CoordProcess, type Mesh } from "./helpers.js";

const pgSkip = postgresSkipReason();
if (pgSkip) console.log(`publication replica tests skipped: ${pgSkip}`);

const WITH_EXTERNAL = `rules:
  - allow: {source: external, target: "service:status-page"}
services:
  status-page: {node: web-1, port: 443, protocol: https}
`;
const WITHOUT_EXTERNAL = `rules:
  - allow: {source: web-1, target: web-1}
`;

let cluster: PgCluster | undefined;
let mesh: Mesh | undefined;
const reps: CoordProcess[] = [];
const clients: CoordClient[] = [];

function call(url: string, stateDir: string, method: "GET" | "POST", path: string, body?: unknown): Promise<any> {
  const c = readCredentials(stateDir);
  const agent = verifiedAgent({ verifier: new Verifier({ bundlePem: c.bundlePem }), expect: COORD_SERVER, certChainPem: withIntermediates(c.certPem, c.bundlePem), keyPem: c.keyPem, keepAlive: false });
  return requestJson(agent, url + path, method, body).finally(() => agent.destroy());
}

describe.skipIf(!!pgSkip)("publications across replicas", () => {
  beforeAll(async () => {
    cluster = await startPostgres();
    mesh = await makeMesh();
    const dbUrl = await cluster.createDatabase("coord");
    const key = generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }) as string;
    for (const i of [0, 1]) {
      mkdirSync(join(mesh.dir, `data-${i}`), { recursive: true, mode: 0o700 });
      writeFileSync(join(mesh.dir, `data-${i}`, TOKEN_KEY_FILE), key, { mode: 0o600 });
    }
    reps.push(...await Promise.all([0, 1].map((i) => spawnCoord(mesh!, 0, ["--store", dbUrl], { dataDir: join(mesh!.dir, `data-${i}`) }))));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await Promise.all(reps.map((r) => r.kill9()));
    cluster?.stop();
    mesh?.cleanup();
  });

  it("reach the edge's stream on the other replica, and go with the rule or unexpose", async () => {
    const [a, b] = reps;
    const admin = new AdminClient({ ...mesh!.adminFlags, coord: a.url }, {});
    await admin.setPolicy(WITH_EXTERNAL);
    const dirs: Record<string, string> = {};
    for (const [name, roles] of [["web-1", []], ["edge-1", ["edge"]]] as const) {
      const t = (await admin.createToken({ tenant: "acme", groups: [], roles: [...roles] })).token;
      dirs[name] = join(mesh!.dir, name);
      await enroll({ coordUrl: a.url, token: t, name, stateDir: dirs[name] });
    }
    const edge = new CoordClient({ coordUrl: b.url, stateDir: dirs["edge-1"], minBackoffMs: 200, maxBackoffMs: 1_000 });
    clients.push(edge);
    edge.start();
    await waitFor(() => edge.map?.edge, 10_000, "the edge's map on replica b");
    await call(a.url, dirs["web-1"], "POST", EDGE_PATHS.expose, { service: "status-page", port: 443, protocol: "https", hostname: "status.example.test", clientAuth: "token" });
    const t0 = Date.now();
    await waitFor(() => edge.map?.edge?.publications.length === 1 && edge.map.peers.some((p) => p.name === "web-1"), 10_000, "publication via replica b");
    console.log(`publication made on replica a reached the edge on replica b in ${Date.now() - t0} ms`);
    const tok = await call(a.url, dirs["web-1"], "POST", EDGE_PATHS.exposeToken, { service: "status-page" });
    expect(new BearerVerifier(edge.map!.edge!.tokenKeyPem).check(tok.token, "status.example.test")).toMatchObject({ ok: true });
    await admin.setPolicy(WITHOUT_EXTERNAL);
    await waitFor(() => edge.map?.edge?.publications.length === 0, 10_000, "publication inactive via replica b");
    await admin.setPolicy(WITH_EXTERNAL);
    await waitFor(() => edge.map?.edge?.publications.length === 1, 10_000, "publication active again via replica b");
    await call(a.url, dirs["web-1"], "POST", EDGE_PATHS.unexpose, { service: "status-page" });
    await waitFor(() => edge.map?.edge?.publications.length === 0 && !edge.map.peers.some((p) => p.name === "web-1"), 10_000, "unexpose via replica b");
  }, 60_000);
});
