// What the console shows must be true now. A peer that went offline used to keep a "connected" path and its last
// latency (0.93 ms) on the console while `ember peers` showed no path; events of a node whose clock is wrong were
// stamped with its clock and sorted wrongly among the others. Real `ember coord` and `ember up` children on
// loopback; the console asked through its JSON API with a password session.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { eventually, startNode, type NodeProc } from "../helpers/nodes.js";
import { makeMesh, rawRequest, spawnCoord, type CoordProcess, type Mesh } from "./helpers.js";

const PASSWORD = "a console password long enough";

let mesh: Mesh;
let coord: CoordProcess;
let cookie = "";
const nodes: NodeProc[] = [];

function consoleGet(path: string): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(coord.url + path, { rejectUnauthorized: false, headers: { "x-ember-console": "1", cookie } }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => { try { resolve(JSON.parse(text)); } catch { reject(new Error(`${path}: ${res.statusCode} ${text.slice(0, 200)}`)); } });
    });
    req.on("error", reject);
    req.end();
  });
}

function login(): Promise<string> {
  const body = JSON.stringify({ username: "ops", password: PASSWORD });
  return new Promise((resolve, reject) => {
    const req = httpsRequest(coord.url + "/ui/api/login", {
      method: "POST", rejectUnauthorized: false, headers: { "x-ember-console": "1", "content-type": "application/json", "content-length": Buffer.byteLength(body) },
    }, (res) => {
      res.resume();
      res.on("end", () => { const c = res.headers["set-cookie"]?.[0]?.split(";")[0]; if (c) resolve(c); else reject(new Error(`login: ${res.statusCode}`)); });
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function up(name: string): Promise<NodeProc> {
  const { token } = await mesh.admin().createToken({ tenant: "acme", groups: ["eng"], roles: [], ttlMs: 600_000, uses: 1, certTtlMs: 3_600_000 });
  const n = await startNode({ name, dir: join(mesh.dir, name), extraArgs: ["--coord", coord.url, "--token", token, "--name", name] });
  nodes.push(n);
  return n;
}

beforeAll(async () => {
  process.env.EMBER_TELEMETRY_INTERVAL_MS = "500";
  mesh = await makeMesh();
  coord = await spawnCoord(mesh);
  await mesh.admin().putUser("ops", PASSWORD);
  cookie = await login();
  await mesh.admin().setPolicy("version: 1\nrules:\n  - allow: {source: \"*\", target: \"*\"}\n");
}, 60_000);

afterAll(async () => {
  delete process.env.EMBER_TELEMETRY_INTERVAL_MS;
  await Promise.all(nodes.map((n) => n.stop()));
  await coord?.kill9();
  mesh?.cleanup();
}, 60_000);

describe("the console tells the truth now", () => {
  it("a peer that goes offline is shown offline with no latency, not as a connected path", async () => {
    const [a, b] = [await up("node-a"), await up("node-b")];
    await eventually(async () => (await a.request("ping", { name: "node-b", timeoutMs: 2_000 }).catch(() => undefined))?.rttMs !== undefined, 45_000, "a session a -> b");
    const live = await eventually(async () => (await consoleGet("/ui/api/overview")).links.find((l: any) => l.from === "node-a" && l.to === "node-b" && l.rttMs !== undefined), 15_000, "a's link to b with a latency");
    expect(live).toMatchObject({ kind: "direct", state: "connected" });

    await b.stop();
    const link = await eventually(async () => {
      const o = await consoleGet("/ui/api/overview");
      return o.nodes.find((n: any) => n.name === "node-b")?.online === false && o.links.find((l: any) => l.from === "node-a" && l.to === "node-b");
    }, 30_000, "node-b offline on the console");
    expect(link).toEqual({ from: "node-a", to: "node-b", path: "offline", kind: "none", state: "offline" });
    const page = await consoleGet("/ui/api/nodes/node-a");
    expect(page.peers.find((p: any) => p.name === "node-b")).toEqual({ name: "node-b", path: "offline", state: "offline" });
  }, 120_000);

  it("events of a node with a skewed clock are placed on the server's clock; the node's own stamp is kept beside", async () => {
    const dir = join(mesh.dir, "node-a");
    const creds = { cert: readFileSync(join(dir, "cert.pem"), "utf8") + mesh.ca.bundlePem.split(/(?=-----BEGIN CERTIFICATE-----)/).slice(1).join(""), key: readFileSync(join(dir, "key.pem"), "utf8") };
    const tok = await rawRequest(coord.url, "POST", "/v1/oauth/token", { ...creds, body: "grant_type=client_credentials", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(tok.status, tok.body).toBe(200);
    // A clock 10 minutes behind: the batch says it was sent 10 minutes ago, its event 100 ms before that. On the
    // server's clock it is the newest event, however fast the test above ran; on the node's it would be the oldest.
    const skew = 600_000;
    const sentAt = Date.now() - skew;
    const before = Date.now();
    const r = await rawRequest(coord.url, "POST", "/v1/telemetry", {
      ...creds, headers: { authorization: `Bearer ${tok.json.access_token}` },
      body: JSON.stringify({ v: 1, seq: 424242, sentAt, events: [{ t: "coord", at: sentAt - 100, ok: true, data: { what: "skewed clock event" } }] }),
    });
    expect(r.status, r.body).toBe(200);
    const after = Date.now();
    const ev = (await consoleGet("/ui/api/connections?node=node-a&limit=200")).events.find((e: any) => e.what === "skewed clock event");
    expect(ev, "the event is listed").toBeDefined();
    const at = Date.parse(ev.at);
    expect(at).toBeGreaterThanOrEqual(before - 100 - 50);
    expect(at).toBeLessThanOrEqual(after - 100 + 50);
    expect(Date.parse(ev.nodeAt)).toBe(sentAt - 100);
    // Sorted among the others (newest first) by the server's clock: before node-a's connection at its start.
    const events = (await consoleGet("/ui/api/connections?node=node-a&limit=200")).events;
    const started = events.findIndex((e: any) => e.what === "coordination stream" && e.ok);
    expect(started, "node-a's own coordination event").toBeGreaterThanOrEqual(0);
    expect(events.findIndex((e: any) => e.what === "skewed clock event")).toBeLessThan(started);
  }, 60_000);
});
