// Announced services on the map stream: a node's status report carries them, its watchers get a patch, and
// a malformed list is refused with 400 naming the problem (nothing changes).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { CoordClient, enroll, RequestError } from "../../src/coord-client/client.js";
import { readCredentials } from "../../src/coord-client/state-files.js";
import type { CoordServer } from "../../src/coord/server.js";
import { Verifier, withIntermediates } from "../../src/pki/index.js";
import { requestJson, verifiedAgent } from "../../src/pki/mtls-client.js";
import { COORD_SERVER } from "../../src/wire/coord/names.js";
import { PATHS } from "../../src/wire/coord/api.js";
import { makeMesh, startInProcess, waitFor, type Mesh } from "./helpers.js";

let mesh: Mesh;
let server: CoordServer;
const clients: CoordClient[] = [];

async function node(name: string): Promise<string> {
  const t = (await mesh.admin().createToken({ tenant: "acme", groups: ["eng"], roles: [] })).token;
  const stateDir = join(mesh.dir, name);
  await enroll({ coordUrl: server.url, token: t, name, stateDir });
  return stateDir;
}

function postStatus(stateDir: string, body: unknown): Promise<unknown> {
  const c = readCredentials(stateDir);
  const agent = verifiedAgent({ verifier: new Verifier({ bundlePem: c.bundlePem }), expect: COORD_SERVER, certChainPem: withIntermediates(c.certPem, c.bundlePem), keyPem: c.keyPem, keepAlive: false });
  return requestJson(agent, server.url + PATHS.status, "POST", body).finally(() => agent.destroy());
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

describe("announced services", () => {
  it("reach the peers' maps as a patch, and bad lists get 400 with the reason", async () => {
    const webDir = await node("web-1");
    const appDir = await node("app-1");
    await mesh.admin().setPolicy("rules:\n  - allow: {source: \"@eng\", target: \"@eng\"}\n");
    const app = new CoordClient({ coordUrl: server.url, stateDir: appDir, minBackoffMs: 200 });
    clients.push(app);
    app.start();
    await waitFor(() => app.map?.peers.some((p) => p.name === "web-1"), 10_000, "web-1 in app-1's map");
    const services = [{ name: "dashboard", port: 443, protocol: "https" }, { name: "dns", port: 53, protocol: "udp" }];
    await postStatus(webDir, { endpoints: ["127.0.0.1:5000"], services });
    const peer = await waitFor(() => app.map?.peers.find((p) => p.name === "web-1" && p.services?.length), 5_000, "patch with services");
    expect(peer.services).toEqual(services);

    for (const [bad, why] of [
      [[{ name: "Dash", port: 443, protocol: "https" }], /services\[0\]\.name must be a lowercase DNS label/],
      [[{ name: "x", port: 0, protocol: "tcp" }], /services\[0\]\.port must be 1-65535/],
      [[{ name: "x", port: 1, protocol: "sctp" }], /services\[0\]\.protocol must be tcp, udp or https/],
      [[{ name: "x", port: 1, protocol: "tcp" }, { name: "x", port: 2, protocol: "tcp" }], /"x" is announced twice/],
      [Array.from({ length: 33 }, (_, i) => ({ name: `s${i}`, port: i + 1, protocol: "tcp" })), /at most 32/],
      ["dashboard", /"services" must be a list/],
    ] as const) {
      const err = await postStatus(webDir, { endpoints: [], services: bad }).catch((e) => e);
      expect(err).toBeInstanceOf(RequestError);
      expect((err as RequestError).status).toBe(400);
      expect((err as RequestError).detail).toMatch(why);
    }
    expect(app.map?.peers.find((p) => p.name === "web-1")?.services).toEqual(services);
  }, 30_000);
});
