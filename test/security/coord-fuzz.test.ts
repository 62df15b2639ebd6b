// Property-based fuzzing of the coordination API against a real `ember coord` child: request paths (every
// endpoint, path parameters with arbitrary text and percent-escapes, query strings), methods, headers and
// bodies (arbitrary JSON, objects with the API's own keys holding arbitrary values, raw bytes), sent with an
// admin certificate, a node certificate and no certificate; and raw request lines over TLS. Properties: no
// answer is a 5xx, every request is answered or its connection closed within 10 s, the server never logs an
// internal error, and it is alive and healthy afterwards. Bounded: a few hundred cases, a fixed seed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Agent } from "node:https";
import { connect } from "node:tls";
import { enroll } from "../../src/coord/client.js";
import { PATHS, TELEMETRY_PATHS } from "../../src/coord/protocol.js";
import { makeMesh, portOf, spawnCoord, type CoordProcess, type Mesh } from "../coord/helpers.js";
import { fuzzRequest } from "./helpers.js";

const SEED = 1_414;
let mesh: Mesh;
let coord: CoordProcess;
let agents: Record<"none" | "node" | "admin", Agent>;

beforeAll(async () => {
  mesh = await makeMesh();
  coord = await spawnCoord(mesh);
  const t = await mesh.admin().createToken({ tenant: "acme", groups: ["eng"], roles: [], uses: 1 });
  const stateDir = join(mesh.dir, "fuzz-node");
  await enroll({ coordUrl: coord.url, token: t.token, name: "fuzz-node", stateDir });
  const cert = (dir: string, c: string, k: string) => ({ cert: readFileSync(join(dir, c)), key: readFileSync(join(dir, k)) });
  agents = {
    none: new Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false }),
    node: new Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false, ...cert(stateDir, "cert.pem", "key.pem") }),
    admin: new Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false, cert: readFileSync(mesh.adminFlags.cert), key: readFileSync(mesh.adminFlags.key) }),
  };
}, 60_000);

afterAll(async () => {
  for (const a of Object.values(agents ?? {})) a.destroy();
  await coord?.kill9();
  mesh?.cleanup();
});

interface Sent { who: keyof typeof agents; method: string; path: string; body?: Buffer; contentType?: string }

/** One request as `s.who`; a map stream counts once its 200 arrives. */
function send(s: Sent): Promise<number | "closed"> {
  return fuzzRequest({ port: portOf(coord.url), agent: agents[s.who], method: s.method, path: s.path, body: s.body, contentType: s.contentType, streaming: () => s.path.startsWith(PATHS.map) });
}

// ---- arbitraries -------------------------------------------------------------------------------------------

/** Text that exercises decoders: escapes (valid, truncated, overlong, surrogates), separators, dots, NUL, non-ASCII. */
const nasty = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom("%ZZ", "%E0%A4%A", "%", "%00", "%2F", "%2e%2e", "..", ".", "%C0%AF", "%ED%A0%80", "%F4%90%80%80", "ghost-1", "fuzz-node", "a".repeat(300), "é", "\u202e"),
  fc.array(fc.constantFrom("%", "2", "F", "Z", "E0", "/", ".", "a", "-", "?", "#", "&", "="), { maxLength: 12 }).map((a) => a.join("")),
);
const pathArb = fc.oneof(
  fc.constantFrom(...Object.values(PATHS)),
  nasty.map((n) => `${PATHS.adminNodes}/${n}/revoke`),
  fc.tuple(fc.constantFrom(...Object.values(PATHS)), nasty).map(([p, n]) => `${p}/${n}`),
  fc.tuple(fc.constantFrom(PATHS.map, PATHS.health, PATHS.adminNodes), nasty, nasty).map(([p, a, b]) => `${p}?epoch=${a}&seq=${b}`),
  fc.array(nasty, { minLength: 1, maxLength: 4 }).map((segs) => `/${segs.join("/")}`),
).map((p) => p.replace(/[\u0000-\u0020\u007f-\uffff]/g, (c) => encodeURIComponent(c))); // what a client can put on the wire

const API_KEYS = ["token", "name", "csr", "tenant", "groups", "roles", "ttlMs", "uses", "certTtlMs", "allowAdminRole", "source",
  "from", "to", "endpoints", "homeRelay", "natType", "peers"];
const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), nasty, fc.integer(), fc.double(), fc.array(nasty, { maxLength: 5 }), fc.constant(null));
const bodyArb = fc.oneof(
  fc.constant(undefined),
  fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? "null")),
  fc.dictionary(fc.constantFrom(...API_KEYS), value, { maxKeys: 6 }).map((o) => Buffer.from(JSON.stringify(o))),
  fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
  fc.string({ maxLength: 200 }).map((s) => Buffer.from(s)),
);
/** The API's own routes, so that most cases reach a handler rather than a 404. */
const ROUTES: [string, string][] = [
  ["GET", PATHS.health], ["GET", PATHS.bundle], ["POST", PATHS.enroll], ["POST", PATHS.renew], ["GET", PATHS.map], ["POST", PATHS.status],
  ["GET", PATHS.revocation], ["POST", PATHS.adminTokens], ["GET", PATHS.adminNodes], ["GET", PATHS.adminPolicy], ["PUT", PATHS.adminPolicy],
  ["POST", PATHS.adminPolicyCheck],
];
const routeArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...ROUTES) },
  { weight: 1, arbitrary: nasty.map((n): [string, string] => ["POST", `${PATHS.adminNodes}/${encodeURIComponent(n).replace(/%25/g, "%")}/revoke`]) },
  // The user paths (issue 28.5: `%ZZ` there was a 500).
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom("POST /disable", "POST /enable", "DELETE "), nasty).map(([r, n]): [string, string] => {
    const [method, tail] = r.split(" ");
    return [method, `${TELEMETRY_PATHS.adminUsers}/${encodeURIComponent(n).replace(/%25/g, "%")}${tail}`];
  }) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"), pathArb) },
);
const requestArb = fc.record({
  who: fc.constantFrom("none" as const, "node" as const, "admin" as const),
  route: routeArb,
  body: bodyArb,
  contentType: fc.option(fc.constantFrom("application/json", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1"), { nil: undefined }),
}).map(({ route, ...r }): Sent => ({ ...r, method: route[0], path: route[1] }));

describe("coordination API fuzzing", () => {
  it("answers every request below 500, promptly, with and without client certificates", async () => {
    const statuses = new Map<number | string, number>();
    await fc.assert(
      fc.asyncProperty(requestArb, async (s) => {
        const status = await send(s);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (typeof status === "number") expect(status, `${s.method} ${s.path} as ${s.who}`).toBeLessThan(500);
      }),
      { seed: SEED, numRuns: 400, interruptAfterTimeLimit: 25_000, markInterruptAsFailure: false },
    );
    console.log(`coord fuzz: statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
    expect(coord.child.exitCode).toBe(null);
  }, 60_000);

  it("answers raw request lines (any method and target) or closes the connection, and never crashes", async () => {
    const line = fc.tuple(
      fc.oneof(fc.constantFrom("GET", "POST", "PUT", "CONNECT", "TRACE"), fc.stringMatching(/^[A-Z]{1,8}$/)),
      fc.oneof(pathArb, fc.constantFrom("*", "http://[::1", "http://a:b:c/v1/health", "//[zz]/v1/health", "https://coord/v1/health", "/v1/health#x", "v1/health"),
        fc.string({ maxLength: 60 }).map((s) => s.replace(/[\s]/g, ""))),
    );
    await fc.assert(
      fc.asyncProperty(line, fc.boolean(), async ([method, target], withCert) => {
        const answer = await new Promise<string>((resolve, reject) => {
          const sock = connect({ host: "127.0.0.1", port: portOf(coord.url), rejectUnauthorized: false,
            ...(withCert ? { cert: readFileSync(mesh.adminFlags.cert), key: readFileSync(mesh.adminFlags.key) } : {}) });
          let data = "";
          sock.on("secureConnect", () => sock.write(`${method} ${target} HTTP/1.1\r\nHost: coord\r\nConnection: close\r\n\r\n`));
          sock.on("data", (c) => { data += c; });
          sock.on("error", () => {});
          sock.on("close", () => resolve(data));
          sock.setTimeout(10_000, () => { sock.destroy(); reject(new Error(`no answer in 10 s to ${method} ${target}`)); });
        });
        const m = /^HTTP\/1\.1 (\d{3})/.exec(answer);
        if (m) expect(Number(m[1]), `${method} ${target}`).toBeLessThan(500);
      }),
      { seed: SEED, numRuns: 150, interruptAfterTimeLimit: 15_000, markInterruptAsFailure: false },
    );
    expect(coord.child.exitCode).toBe(null);
  }, 40_000);

  it("is alive and healthy afterwards, and logged no internal error", async () => {
    expect(await send({ who: "none", method: "GET", path: PATHS.health })).toBe(200);
    const internal = coord.stderr().split("\n").filter((l) => l.includes('"internal_error"'));
    expect(internal).toEqual([]);
  });
});
