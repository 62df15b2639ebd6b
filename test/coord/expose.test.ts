// Publishing services to public edges on the coordination server (docs/external-access.md): refused with a clear
// message unless an external rule allows the service; an edge (role edge) gets the publication in its map and
// sees the publishing node, which sees the edge, though no rule names the edge; a policy without the external
// rule makes the publication inactive (the edge loses it and the node, `expose --list` says why); unexpose
// withdraws it; bearer tokens only for token-authenticated publications; the table survives a restart.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { CoordClient, enroll, RequestError } from "../../src/coord-client/client.js";
import { readCredentials } from "../../src/coord-client/state-files.js";
import type { CoordServer } from "../../src/coord/server.js";
import { Verifier, withIntermediates } from "../../src/pki/index.js";
import { requestJson, verifiedAgent } from "../../src/pki/mtls-client.js";
import { COORD_SERVER } from "../../src/wire/coord/names.js";
import { EDGE_PATHS } from "../../src/wire/coord/api.js";
import { BearerVerifier } from "../../src/edge/bearer.js";
import { makeMesh, startInProcess, waitFor, type Mesh } from "./helpers.js";
import { makeEdgePki } from "../edge/pki.js";
import { ember } from "../helpers/cli.js";

let mesh: Mesh;
let server: CoordServer;
const clients: CoordClient[] = [];

const WITH_EXTERNAL = `rules:
  - allow: {source: "@eng", target: "@eng"}
  - allow: {source: external, target: "service:status-page", protocol: https, ports: [443]}
services:
  status-page: {node: web-1, port: 443, protocol: https}
`;
const WITHOUT_EXTERNAL = `rules:
  - allow: {source: "@eng", target: "@eng"}
`;

async function node(name: string, groups: string[], roles: string[] = []): Promise<string> {
  const t = (await mesh.admin().createToken({ tenant: "acme", groups, roles })).token;
  const stateDir = join(mesh.dir, name);
  await enroll({ coordUrl: server.url, token: t, name, stateDir });
  return stateDir;
}

function call(stateDir: string, method: "GET" | "POST", path: string, body?: unknown): Promise<any> {
  const c = readCredentials(stateDir);
  const agent = verifiedAgent({ verifier: new Verifier({ bundlePem: c.bundlePem }), expect: COORD_SERVER, certChainPem: withIntermediates(c.certPem, c.bundlePem), keyPem: c.keyPem, keepAlive: false });
  return requestJson(agent, server.url + path, method, body).finally(() => agent.destroy());
}

function client(stateDir: string): CoordClient {
  const c = new CoordClient({ coordUrl: server.url, stateDir, minBackoffMs: 200 });
  clients.push(c);
  c.start();
  return c;
}

beforeAll(async () => {
  mesh = await makeMesh();
  server = await startInProcess(mesh);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.stop()));
  await server?.close();
  mesh?.cleanup();
});

describe("publications to public edges", () => {
  let webDir = "", edgeDir = "", laptopDir = "";

  it("refuses to publish a service without an external rule, saying which rule is missing", async () => {
    webDir = await node("web-1", ["web"]);
    edgeDir = await node("edge-1", [], ["edge"]);
    laptopDir = await node("laptop-1", ["eng"]);
    await mesh.admin().setPolicy(WITHOUT_EXTERNAL);
    const err = await call(webDir, "POST", EDGE_PATHS.expose, { service: "status-page", port: 443, protocol: "https", hostname: "status.example.test" }).catch((e) => e);
    expect(err).toBeInstanceOf(RequestError);
    expect(err.status).toBe(403);
    expect(err.code).toBe("no_external_rule");
    expect(err.detail).toMatch(/the policy has no external rule allowing service:status-page on web-1 \(tcp port 443\); add one such as allow: \{source: external, target: "service:status-page", ports: \[443\]\}/);
    for (const [body, code] of [
      [{ service: "status-page", port: 443, protocol: "udp" }, "bad_protocol"],
      [{ service: "status-page", port: 443, protocol: "https", hostname: "localhost" }, "bad_hostname"],
      [{ service: "status-page", port: 443, protocol: "https", clientAuth: "cert", clientCaPem: "not a pem" }, "bad_client_ca"],
      [{ service: "Status", port: 443, protocol: "https" }, "bad_service"],
    ] as const) {
      const e = await call(webDir, "POST", EDGE_PATHS.expose, body).catch((x) => x);
      expect(e.code, JSON.stringify(body)).toBe(code);
    }
  }, 30_000);

  it("with the rule: the edge gets the publication and the node (and the node the edge); nobody else does", async () => {
    await mesh.admin().setPolicy(WITH_EXTERNAL);
    const edge = client(edgeDir);
    const web = client(webDir);
    const laptop = client(laptopDir);
    await waitFor(() => edge.map && web.map && laptop.map, 10_000, "maps");
    expect(edge.map!.peers.map((p) => p.name)).toEqual([]);
    expect(edge.map!.edge?.publications).toEqual([]);
    const r = await call(webDir, "POST", EDGE_PATHS.expose, { service: "status-page", port: 443, protocol: "https", hostname: "status.example.test", clientAuth: "token" });
    expect(r).toMatchObject({ hostname: "status.example.test", node: "web-1", active: true, edges: ["edge-1"], rule: expect.stringMatching(/source: external/) });
    const pub = await waitFor(() => edge.map?.edge?.publications[0], 5_000, "publication in the edge's map");
    expect(pub).toEqual({ hostname: "status.example.test", node: "web-1", service: "status-page", port: 443, protocol: "https", clientAuth: "token" });
    await waitFor(() => edge.map?.peers.some((p) => p.name === "web-1"), 5_000, "web-1 in the edge's map");
    await waitFor(() => web.map?.peers.some((p) => p.name === "edge-1"), 5_000, "edge-1 in web-1's map");
    // Not an edge: no view, and the edge is not in its map.
    expect(web.map!.edge).toBeUndefined();
    expect(laptop.map!.edge).toBeUndefined();
    expect(laptop.map!.peers.some((p) => p.name === "edge-1")).toBe(false);
    // Another node cannot take the hostname.
    const taken = await call(laptopDir, "POST", EDGE_PATHS.expose, { service: "x", port: 443, protocol: "https", hostname: "status.example.test" }).catch((e) => e);
    expect(taken.code).toBe("no_external_rule"); // laptop-1 has no external rule either; the policy speaks first

    // A bearer token for it, which the edge's key from the map verifies for this hostname only.
    const t = await call(webDir, "POST", EDGE_PATHS.exposeToken, { service: "status-page", ttlMs: 60_000 });
    const v = new BearerVerifier(edge.map!.edge!.tokenKeyPem);
    expect(v.check(t.token, "status.example.test")).toMatchObject({ ok: true });
    expect(v.check(t.token, "other.example.test")).toMatchObject({ ok: false });
  }, 30_000);

  it("a policy without the rule deactivates it: the edge loses the publication and the node; --list says why", async () => {
    const edge = clients[0];
    await mesh.admin().setPolicy(WITHOUT_EXTERNAL);
    await waitFor(() => edge.map?.edge?.publications.length === 0, 5_000, "publication gone from the edge's map");
    await waitFor(() => !edge.map?.peers.some((p) => p.name === "web-1"), 5_000, "web-1 gone from the edge's map");
    const list = await call(webDir, "GET", EDGE_PATHS.exposed);
    expect(list.publications).toEqual([expect.objectContaining({ hostname: "status.example.test", active: false, reason: expect.stringMatching(/no external rule allows service:status-page on web-1/) })]);
    // Back with the rule: active again without publishing anew.
    await mesh.admin().setPolicy(WITH_EXTERNAL);
    await waitFor(() => edge.map?.edge?.publications.length === 1, 5_000, "publication back");
  }, 30_000);

  it("ember edge refuses to start on a certificate without role edge (fail closed, said at once)", async () => {
    const pki = join(mesh.dir, "edge-pki");
    (await import("node:fs")).mkdirSync(pki);
    makeEdgePki(pki);
    const r = ember(["edge", "--state", webDir, "--coord", server.url, "--listen", "127.0.0.1:0", "--cert", join(pki, "edge.crt"), "--key", join(pki, "edge.key"), "--no-portmap"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/web-1's certificate grants no role "edge": enroll it with a token made with --roles edge/);
    const pairs = ember(["edge", "--state", edgeDir, "--coord", server.url, "--cert", join(pki, "edge.crt")]);
    expect(pairs.stderr).toMatch(/--cert FILE --key FILE/);
  }, 60_000);

  it("survives a restart of the server, and unexpose withdraws it", async () => {
    await Promise.all(clients.splice(0).map((c) => c.stop()));
    await server.close();
    server = await startInProcess(mesh);
    const edge = client(edgeDir);
    await waitFor(() => edge.map?.edge?.publications.length === 1, 10_000, "publication after restart");
    const err = await call(webDir, "POST", EDGE_PATHS.exposeToken, { service: "nothing" }).catch((e) => e);
    expect(err.code).toBe("not_published");
    expect(await call(webDir, "POST", EDGE_PATHS.unexpose, { service: "status-page" })).toMatchObject({ published: false });
    await waitFor(() => edge.map?.edge?.publications.length === 0, 5_000, "publication withdrawn");
    await waitFor(() => !edge.map?.peers.some((p) => p.name === "web-1"), 5_000, "web-1 gone from the edge's map");
  }, 40_000);
});
