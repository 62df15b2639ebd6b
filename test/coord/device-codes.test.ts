// Issue 28 items 4 and 7: one node could block device logins for the whole mesh (1,010 `ember login` requests
// filled the global pool of 1,000 pending codes, then every other node got 503 busy), and a user of another
// tenant who knew a device code could cancel that device's login. Now a device holds one pending code (a new
// one replaces its older), and only a person of the device's tenant can approve or cancel; to anyone else the
// code is unknown.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Agent } from "node:https";
import { enroll } from "../../src/coord/client.js";
import { PATHS } from "../../src/coord/protocol.js";
import type { CoordServer } from "../../src/coord/server.js";
import { makeMesh, rawRequest, startInProcess, type Mesh } from "./helpers.js";

const PASSWORD = "correct horse battery staple";
let mesh: Mesh;
let server: CoordServer;
const agents: Record<string, Agent> = {};

beforeAll(async () => {
  mesh = await makeMesh();
  server = await startInProcess(mesh);
  for (const [name, tenant] of [["node-a", "acme"], ["node-b", "acme"], ["node-x", "globex"]]) {
    const t = await mesh.admin().createToken({ tenant, groups: ["eng"], roles: [] });
    const stateDir = join(mesh.dir, name);
    await enroll({ coordUrl: server.url, token: t.token, name, stateDir });
    agents[name] = new Agent({ keepAlive: true, maxSockets: 4, rejectUnauthorized: false, cert: readFileSync(join(stateDir, "cert.pem")), key: readFileSync(join(stateDir, "key.pem")) });
  }
  await mesh.admin().putMeshUser({ username: "alice", password: PASSWORD, tenant: "acme", groups: ["eng"] });
  await mesh.admin().putMeshUser({ username: "mallory", password: PASSWORD, tenant: "globex", groups: ["eng"] });
}, 60_000);

afterAll(async () => {
  for (const a of Object.values(agents)) a.destroy();
  await server?.close();
  mesh?.cleanup();
});

const start = (node: string) => rawRequest(server.url, "POST", PATHS.loginDevice, { agent: agents[node], body: "{}" });
const poll = (node: string, deviceCode: string) => rawRequest(server.url, "POST", PATHS.loginDevicePoll, { agent: agents[node], body: JSON.stringify({ deviceCode }) });

async function consoleSession(username: string): Promise<string> {
  const r = await rawRequest(server.url, "POST", "/ui/api/login", { body: JSON.stringify({ username, password: PASSWORD }), headers: { "x-ember-console": "1" } });
  expect(r.status).toBe(200);
  return String(r.headers["set-cookie"]).split(";")[0];
}
const approve = (cookie: string, code: string) =>
  rawRequest(server.url, "POST", "/ui/api/device", { body: JSON.stringify({ code }), headers: { "x-ember-console": "1", cookie } });

describe("device codes (issue 28.4, 28.7)", () => {
  let bCode: { deviceCode: string; userCode: string };

  it("one node asking 1,010 times holds one pending code; every other node still starts its login", async () => {
    const first = await start("node-a");
    expect(first.status).toBe(200);
    const statuses = new Map<number, number>();
    let last = first;
    for (let i = 0; i < 1_010; i++) {
      last = await start("node-a");
      statuses.set(last.status, (statuses.get(last.status) ?? 0) + 1);
    }
    expect(Object.fromEntries(statuses)).toEqual({ 200: 1_010 });
    const b = await start("node-b");
    expect(b.status, JSON.stringify(b.json)).toBe(200);
    bCode = b.json;
    // node-a's older codes were replaced by its newest: polling one says so, the newest is pending.
    expect((await poll("node-a", first.json.deviceCode)).json.error).toBe("expired_token");
    expect((await poll("node-a", last.json.deviceCode)).status).toBe(428);
  }, 60_000);

  it("a user of another tenant who knows the code can neither approve nor cancel it", async () => {
    const mallory = await consoleSession("mallory");
    const r = await approve(mallory, bCode.userCode);
    expect(r.status).toBe(404);
    expect(r.json.error).toBe("unknown_code");
    expect(r.body).not.toMatch(/node-b|acme/);
    expect((await poll("node-b", bCode.deviceCode)).status).toBe(428); // still waiting, not denied
    const alice = await consoleSession("alice");
    const ok = await approve(alice, bCode.userCode);
    expect(ok.status, ok.body).toBe(200);
    expect(ok.json.device).toBe("node-b");
    const got = await poll("node-b", bCode.deviceCode);
    expect(got.status, got.body).toBe(200);
    expect(got.json.user).toBe("alice");
  });
});
