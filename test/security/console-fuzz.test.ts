// Property-based fuzzing of the console API (issue 28), as coord-fuzz.test.ts does for the coordination API:
// against a real `ember coord --console-listen` child, requests to every console route and to arbitrary /ui
// paths (escapes, dots, long names), any method, bodies (arbitrary JSON, objects with the API's own keys holding
// arbitrary values, raw bytes), with and without the CSRF header, as nobody, with garbage and forged cookies,
// with an administrator's session, a mesh user's (device-scope) session and an admin certificate. Properties:
// no answer is a 5xx, every request is answered within 10 s, the server logs no internal error, and it is alive
// afterwards. Bounded: a fixed seed, a few hundred cases.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { Agent } from "node:https";
import { makeMesh, portOf, rawRequest, spawnCoord, type CoordProcess, type Mesh } from "../coord/helpers.js";
import { fuzzRequest } from "./helpers.js";

const SEED = 2_801;
const PASSWORD = "correct horse battery staple";
let mesh: Mesh;
let coord: CoordProcess;
let agents: Record<"none" | "cert", Agent>;
const cookies: Record<string, string> = {};

async function sessionCookie(username: string): Promise<string> {
  const r = await rawRequest(coord.consoleUrl!, "POST", "/ui/api/login", { body: JSON.stringify({ username, password: PASSWORD }), headers: { "x-ember-console": "1" } });
  expect(r.status, r.body).toBe(200);
  return String(r.headers["set-cookie"]).split(";")[0];
}

beforeAll(async () => {
  mesh = await makeMesh();
  coord = await spawnCoord(mesh, 0, ["--console-listen", "127.0.0.1:0"]);
  await mesh.admin().putUser("ops", PASSWORD);
  await mesh.admin().putMeshUser({ username: "alice", password: PASSWORD, tenant: "acme", groups: ["eng"] });
  cookies.admin = await sessionCookie("ops");
  cookies.user = await sessionCookie("alice");
  cookies.garbage = "ember_session=not.a.jwt";
  cookies.forged = `ember_session=${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from('{"sub":"ops"}').toString("base64url")}.`;
  agents = {
    none: new Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false }),
    cert: new Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false, cert: readFileSync(mesh.adminFlags.cert), key: readFileSync(mesh.adminFlags.key) }),
  };
}, 60_000);

afterAll(async () => {
  for (const a of Object.values(agents ?? {})) a.destroy();
  await coord?.kill9();
  mesh?.cleanup();
});

interface Sent { agent: keyof typeof agents; cookie?: string; csrf: boolean; method: string; path: string; body?: Buffer; contentType?: string }

/** One request; the live stream counts once its 200 arrives. */
function send(s: Sent): Promise<number | "closed"> {
  const headers: Record<string, string> = {};
  if (s.cookie) headers.cookie = cookies[s.cookie] ?? s.cookie;
  if (s.csrf) headers["x-ember-console"] = "1";
  return fuzzRequest({
    port: portOf(coord.consoleUrl!), agent: agents[s.agent], method: s.method, path: s.path, headers, body: s.body, contentType: s.contentType,
    streaming: (res) => !!res.headers["content-type"]?.startsWith("text/event-stream"),
  });
}

const nasty = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.constantFrom("%ZZ", "%E0%A4%A", "%", "%00", "%2F", "%2e%2e", "..", "alpha", "a".repeat(300), "é", "\u202e"),
);
const ROUTES: [string, string][] = [
  ["GET", "/ui"], ["GET", "/ui/"], ["GET", "/"], ["GET", "/ui/login"], ["GET", "/ui/device"], ["GET", "/ui/policy"], ["GET", "/ui/certificates"],
  ["GET", "/ui/connections"], ["GET", "/ui/nodes/alpha"], ["GET", "/ui/static/app.js"], ["GET", "/ui/api/login-options"], ["POST", "/ui/api/login"],
  ["POST", "/ui/api/login/cert"], ["POST", "/ui/api/logout"], ["GET", "/ui/api/session"], ["GET", "/ui/api/overview"], ["GET", "/ui/api/certificates"],
  ["GET", "/ui/api/policy"], ["POST", "/ui/api/policy/check"], ["GET", "/ui/api/decisions"], ["GET", "/ui/api/connections"], ["GET", "/ui/api/events"],
  ["GET", "/ui/api/nodes/alpha"], ["POST", "/ui/api/device"],
];
const pathArb = fc.oneof(
  nasty.map((n) => `/ui/nodes/${n}`),
  nasty.map((n) => `/ui/api/nodes/${n}`),
  nasty.map((n) => `/ui/static/${n}`),
  fc.tuple(fc.constantFrom("/ui/api/decisions", "/ui/api/connections"), nasty, nasty).map(([p, a, b]) => `${p}?limit=${a}&verdict=${b}&node=${a}&kind=${b}&result=${a}`),
  fc.array(nasty, { minLength: 1, maxLength: 4 }).map((segs) => `/ui/${segs.join("/")}`),
).map((p) => p.replace(/[\u0000-\u0020\u007f-\uffff]/g, (c) => encodeURIComponent(c)));
const routeArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...ROUTES) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"), pathArb) },
);
const KEYS = ["username", "password", "code", "from", "to", "port", "protocol"];
const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), nasty, fc.integer(), fc.double(), fc.constant(null), fc.constant("alice"), fc.constant(PASSWORD));
const bodyArb = fc.oneof(
  fc.constant(undefined),
  fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? "null")),
  fc.dictionary(fc.constantFrom(...KEYS), value, { maxKeys: 5 }).map((o) => Buffer.from(JSON.stringify(o))),
  fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
  fc.nat({ max: 9_000 }).map((n) => Buffer.from(`{"username":"${"a".repeat(n)}"}`)),
);
const requestArb = fc.record({
  who: fc.constantFrom("none", "admin", "user", "garbage", "forged", "cert"),
  csrf: fc.boolean(),
  route: routeArb,
  body: bodyArb,
  contentType: fc.option(fc.constantFrom("application/json", "text/plain", "application/json; charset=latin1"), { nil: undefined }),
}).map(({ who, route, ...r }): Sent => ({
  ...r, agent: who === "cert" ? "cert" : "none", method: route[0], path: route[1],
  // The real sessions are kept alive (a logout with them would leave the rest of the run at the login wall).
  cookie: who === "cert" || who === "none" ? undefined : route[1] === "/ui/api/logout" ? "garbage" : who,
}));

describe("console API fuzzing", () => {
  it("answers every request below 500, promptly, whoever sends it", async () => {
    const statuses = new Map<number | string, number>();
    await fc.assert(
      fc.asyncProperty(requestArb, async (s) => {
        const status = await send(s);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (typeof status === "number") expect(status, `${s.method} ${s.path} as ${s.cookie ?? s.agent}`).toBeLessThan(500);
      }),
      { seed: SEED, numRuns: 800, interruptAfterTimeLimit: 25_000, markInterruptAsFailure: false },
    );
    console.log(`console fuzz: statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
    expect(coord.child.exitCode).toBe(null);
    // The cases reached handlers, not only the login wall.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(20);
  }, 60_000);

  it("is alive afterwards and logged no internal error", async () => {
    expect((await rawRequest(coord.consoleUrl!, "GET", "/ui/login")).status).toBe(200);
    const internal = coord.stderr().split("\n").filter((l) => l.includes('"internal_error"'));
    expect(internal).toEqual([]);
  });
});
