// The peer-map stream with real clients on real TLS connections: policy filtering, deltas only to nodes that
// can see the change, revocation pushed within a second, resumption by sequence number, junk on the stream,
// invalid policies, and certificate rotation with a TTL of a few seconds.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer } from "node:https";
import { join } from "node:path";
import { generateEd25519, issueLeaf, privateKeyToPem, toPem, withIntermediates, parseCertificate, pemBlocks } from "../../src/pki/index.js";
import { CoordClient, enroll, type PeerMap } from "../../src/coord-client/client.js";
import { encodeFrame, MAP_PROTOCOL_VERSION } from "../../src/wire/coord/map.js";
import type { CoordServer } from "../../src/coord/server.js";
import { makeMesh, startInProcess, waitFor, type Mesh } from "./helpers.js";

let mesh: Mesh;
let server: CoordServer;
const clients: CoordClient[] = [];

const POLICY = `version: 1
rules:
  - allow: {source: "@eng", target: "@db", protocol: tcp, ports: [5432]}
`;

async function node(name: string, groups: string[], certTtlMs?: number): Promise<string> {
  const t = (await mesh.admin().createToken({ tenant: "acme", groups, roles: [], certTtlMs })).token;
  const stateDir = join(mesh.dir, name);
  await enroll({ coordUrl: server.url, token: t, name, stateDir });
  return stateDir;
}

function client(stateDir: string, opts: { minBackoffMs?: number; coordUrl?: string } = {}): CoordClient {
  const c = new CoordClient({ coordUrl: opts.coordUrl ?? server.url, stateDir, minBackoffMs: opts.minBackoffMs ?? 200, maxBackoffMs: 2_000 });
  clients.push(c);
  c.start();
  return c;
}

const names = (m: PeerMap | undefined) => (m?.peers ?? []).map((p) => p.name).sort();

beforeAll(async () => {
  mesh = await makeMesh();
  server = await startInProcess(mesh);
  await node("app-1", ["eng"]);
  await node("db-1", ["db"]);
  await node("hr-1", ["hr"]);
  await mesh.admin().setPolicy(POLICY);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.stop()));
  await server?.close();
  mesh?.cleanup();
});

describe("peer map", () => {
  it("shows each node only the peers policy lets it reach or be reached by, with its rules and the relays", async () => {
    const app = client(join(mesh.dir, "app-1"));
    const db = client(join(mesh.dir, "db-1"));
    const hr = client(join(mesh.dir, "hr-1"));
    await waitFor(() => app.map && db.map && hr.map, 10_000, "three maps");
    expect(names(app.map)).toEqual(["db-1"]);
    expect(names(db.map)).toEqual(["app-1"]);
    expect(names(hr.map)).toEqual([]);
    expect(app.map!.self).toEqual({ name: "app-1", tenant: "acme", groups: ["eng"], overlayIp: expect.stringMatching(/^100\./) });
    expect(app.map!.peers[0].overlayIp).toBe(db.map!.self.overlayIp);
    expect(app.map!.relays).toEqual([{ name: "relay-1", host: "127.0.0.1", port: 4443, stunPort: 3478 }]);
    expect((app.map!.rules as unknown[]).length).toBe(1);
    expect((hr.map!.rules as unknown[]).length).toBe(0);
    expect(app.map!.peers[0].certPem).toContain("BEGIN CERTIFICATE");

    // An endpoint change reaches the node that sees db-1 as one small delta, and nobody else.
    const hrSeq = hr.map!.seq;
    const before = server.hub.stats.bytesSent;
    db.reportStatus({ endpoints: ["198.18.0.2:41641"], homeRelay: "relay-1" });
    await waitFor(() => app.map!.peers.find((p) => p.name === "db-1")?.endpoints[0] === "198.18.0.2:41641", 5_000, "endpoint delta");
    expect(app.map!.peers[0].homeRelay).toBe("relay-1");
    expect(server.hub.stats.bytesSent - before).toBeLessThan(200);
    expect(hr.map!.seq).toBe(hrSeq);
    const listed = (await mesh.admin().listNodes()).nodes.find((n: any) => n.name === "db-1");
    expect(listed).toMatchObject({ online: true, endpoints: ["198.18.0.2:41641"] });
  });

  it("refuses a policy with errors, naming the line, and keeps the old one", async () => {
    await expect(mesh.admin().setPolicy("rules:\n  - allow: {source: \"@eng\", target: [\n")).rejects.toMatchObject({ status: 422, code: "policy_invalid" });
    try { await mesh.admin().setPolicy("rules:\n  - allow: {source: \"@eng\", target: [\n"); } catch (err) {
      expect((err as any).body.errors[0].line).toBeGreaterThan(0);
    }
    expect((await mesh.admin().getPolicy()).source).toBe(POLICY);
  });

  it("sends a policy change as deltas only to the nodes whose view changes", async () => {
    const [app, db, hr] = clients;
    const appSeq = app.map!.seq;
    await mesh.admin().setPolicy(POLICY + `  - allow: {source: "@hr", target: "@db", protocol: tcp, ports: [5432]}\n`);
    await waitFor(() => names(hr.map).includes("db-1") && names(db.map).includes("hr-1"), 5_000, "policy delta");
    expect(app.map!.seq).toBe(appSeq);
    expect(hr.stats.fullMaps).toBe(1);
  });

  it("resumes after a reconnect with the missing deltas, in order, without a full map", async () => {
    const app = clients[0];
    const fullBefore = app.stats.fullMaps;
    const seqs: number[] = [];
    app.on("map", (m: PeerMap) => seqs.push(m.seq));
    const disconnected = new Promise((r) => app.once("disconnected", r));
    server.hub.dropSession("app-1", "test drop");
    await disconnected;
    // Changes while app-1 is away: a new db node, then its endpoints.
    const db2 = client(await node("db-2", ["db"]));
    await waitFor(() => db2.map, 5_000, "db-2 map");
    db2.reportStatus({ endpoints: ["198.18.0.3:41641"] });
    await waitFor(() => app.map!.peers.find((p) => p.name === "db-2")?.endpoints[0] === "198.18.0.3:41641", 10_000, "resumed deltas");
    expect(app.stats.fullMaps).toBe(fullBefore);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1] + 1);
  });

  it("pushes a revocation to every connected node within a second, and forgets the revoked peer", async () => {
    const [app, db, hr] = clients;
    const got = [app, hr].map((c) => new Promise<number>((r) => c.once("revocation", () => r(Date.now()))));
    const t0 = Date.now();
    await mesh.admin().revoke("db-1");
    const times = await Promise.all(got);
    for (const t of times) expect(t - t0).toBeLessThan(1_000);
    await waitFor(() => !names(app.map).includes("db-1") && !names(hr.map).includes("db-1"), 2_000, "db-1 removed");
    expect(app.map!.revocation).toContain("signature");
    // The revoked node's own stream is refused from now on.
    const errors: string[] = [];
    db.on("error", (e: Error) => errors.push(e.message));
    await waitFor(() => errors.some((e) => /revoked/.test(e)), 5_000, "revoked refusal on reconnect");
  });

  it("drops a stream that carries junk, keeps the map it had, and reconnects", async () => {
    // A fake coordination server with a genuine "coord" certificate that answers the map request with junk.
    const keys = generateEd25519();
    const der = await issueLeaf(mesh.ca, { name: "coord", tenant: "system", roles: ["server"], ttlMs: 3_600_000, publicKey: keys.publicKey });
    let requests = 0;
    const fake = createServer({ cert: withIntermediates(toPem(der, "CERTIFICATE"), mesh.ca.bundlePem), key: privateKeyToPem(keys.privateKey), minVersion: "TLSv1.3" }, (_req, res) => {
      requests++;
      res.writeHead(200);
      if (requests === 1) res.write(encodeFrame({ v: MAP_PROTOCOL_VERSION, t: "ping" }));
      res.end(Buffer.from([0, 0, 0, 5, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xff, 0xff, 0xff, 0xff]));
    });
    await new Promise<void>((r) => fake.listen(0, "127.0.0.1", () => r()));
    const port = (fake.address() as { port: number }).port;
    const c = client(join(mesh.dir, "hr-1"), { coordUrl: `https://127.0.0.1:${port}`, minBackoffMs: 100 });
    const errors: string[] = [];
    c.on("error", (e: Error) => errors.push(e.message));
    await waitFor(() => requests >= 3, 10_000, "reconnects after junk");
    await c.stop();
    fake.close();
    expect(errors.some((e) => /msgpack|frame/.test(e))).toBe(true);
    // The real server is unaffected.
    expect(server.hub.connectedCount).toBeGreaterThan(0);
  });

  it("rotates a certificate with a 3 s TTL before it expires, and peers get the new certificate", async () => {
    const dir = await node("short-1", ["db"], 3_000);
    const c = client(dir);
    await waitFor(() => c.map, 5_000, "map");
    const overlayIp = c.map!.self.overlayIp;
    const renewed: string[] = [];
    c.on("renewed", (r: { certPem: string }) => renewed.push(r.certPem));
    await waitFor(() => renewed.length >= 2, 12_000, "two renewals");
    const serials = renewed.map((p) => parseCertificate(pemBlocks(p, "CERTIFICATE", "c")[0]).serial);
    expect(new Set(serials).size).toBe(2);
    const app = clients[0];
    await waitFor(() => app.map!.peers.find((p) => p.name === "short-1")?.certPem === renewed[renewed.length - 1], 5_000, "peer sees new cert");
    expect(app.map!.peers.find((p) => p.name === "short-1")!.overlayIp).toBe(overlayIp); // rotation keeps the address
    // The stream came back under the new certificate.
    await waitFor(() => c.stats.connects >= 2 && server.hub.isOnline("short-1"), 5_000, "reconnected");
  });
});
