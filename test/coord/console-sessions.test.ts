// Issue 28 item 3: logout did not end the session. It blocked only the jti of the cookie it was given, each
// renewal minted a new jti with no shared session id, and the block list lived in memory: a cookie from before
// a renewal still worked after logout (and renewed for another 15 minutes, up to 8 h), and a logged-out cookie
// worked again after a restart. Now every token of a login carries its server-side id (sid) and the login's
// row in the store decides: logout, `ember admin delete`, `ember users disable` and a replaced password end
// every token of the login, across restarts (SQLite) and replicas (PostgreSQL).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { JwtKey } from "../../src/coord/jwt.js";
import { SESSION_COOKIE, SESSION_TYP } from "../../src/coord/console.js";
import { CoordServer, TOKEN_KEY_FILE } from "../../src/coord/server.js";
import { silentLogger } from "../../src/coord/log.js";
import { postgresSkipReason, startPostgres, type PgCluster } from "../helpers/postgres.js";
import { makeMesh, rawRequest, type Mesh } from "./helpers.js";

const PASSWORD = "correct horse battery staple";
const pgSkip = postgresSkipReason();
if (pgSkip) console.log(`console session replica test skipped: ${pgSkip}`);

let mesh: Mesh;
const servers: CoordServer[] = [];

async function start(dataDir: string, storeUrl?: string): Promise<CoordServer> {
  const s = new CoordServer({ dataDir, caDir: mesh.ca.dir, host: "127.0.0.1", port: 0, logger: silentLogger(), minCertTtlMs: 1_000, storeUrl });
  (mesh as any).setUrl(await s.start());
  servers.push(s);
  return s;
}

async function stop(s: CoordServer): Promise<void> {
  servers.splice(servers.indexOf(s), 1);
  await s.close();
}

function call(s: CoordServer, method: string, path: string, cookie?: string, body?: unknown) {
  return rawRequest(s.url, method, path, {
    headers: { "x-ember-console": "1", ...(cookie ? { cookie: `${SESSION_COOKIE}=${cookie}` } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

function cookieOf(r: { headers: Record<string, string | string[] | undefined> }): string | undefined {
  const set = ([] as string[]).concat(r.headers["set-cookie"] ?? []).find((c) => c.startsWith(`${SESSION_COOKIE}=`));
  const v = set?.split(";")[0].slice(SESSION_COOKIE.length + 1);
  return v || undefined;
}

async function login(s: CoordServer, username: string): Promise<string> {
  const r = await call(s, "POST", "/ui/api/login", undefined, { username, password: PASSWORD });
  expect(r.status, r.body).toBe(200);
  return cookieOf(r)!;
}

/** The session's answer: 200, or the 401's reason. */
async function sessionState(s: CoordServer, cookie: string): Promise<number | string> {
  const r = await call(s, "GET", "/ui/api/session", cookie);
  return r.status === 200 ? 200 : r.json?.error ?? r.status;
}

beforeAll(async () => {
  mesh = await makeMesh();
}, 30_000);

afterAll(async () => {
  for (const s of [...servers]) await s.close();
  mesh?.cleanup();
});

describe("console sessions end server-side (issue 28.3)", () => {
  it("logout ends every token of the login, those from before a renewal too", async () => {
    const dataDir = join(mesh.dir, "data-sqlite");
    const s = await start(dataDir);
    await mesh.admin().putUser("alice", PASSWORD);
    const first = await login(s, "alice");
    // The same login's token near its expiry (as a browser holds it 8 minutes in): the server renews it.
    const key = JwtKey.loadOrCreate(join(dataDir, TOKEN_KEY_FILE));
    const claims = JSON.parse(Buffer.from(first.split(".")[1], "base64url").toString());
    const now = Math.floor(Date.now() / 1000);
    const aging = key.sign(SESSION_TYP, { ...claims, iat: now - 840, exp: now + 60, jti: "aging-copy" });
    const renewedAnswer = await call(s, "GET", "/ui/api/session", aging);
    expect(renewedAnswer.status).toBe(200);
    const renewed = cookieOf(renewedAnswer);
    expect(renewed, "a renewal cookie").toBeDefined();
    expect(renewed).not.toBe(first);
    expect(await sessionState(s, first)).toBe(200);
    // Logging out with the renewed cookie ends the login: the cookie from before the renewal is refused too.
    expect((await call(s, "POST", "/ui/api/logout", renewed)).status).toBe(200);
    for (const c of [first, aging, renewed!]) expect(await sessionState(s, c)).toBe("logged_out");
    // And it stays ended after a restart.
    await stop(s);
    const again = await start(dataDir);
    for (const c of [first, renewed!]) expect(await sessionState(again, c)).toBe("logged_out");
    // A new login works, and is a new login.
    expect(await sessionState(again, await login(again, "alice"))).toBe(200);
  }, 60_000);

  it("ember admin delete, ember users disable and a replaced password end the user's logins", async () => {
    const s = servers[0];
    await mesh.admin().putUser("bob", PASSWORD);
    await mesh.admin().putMeshUser({ username: "carol", password: PASSWORD, tenant: "acme", groups: ["eng"] });
    await mesh.admin().putUser("dave", PASSWORD);
    const bob = await login(s, "bob"), carol = await login(s, "carol"), dave = await login(s, "dave");
    for (const c of [bob, carol, dave]) expect(await sessionState(s, c)).toBe(200);
    await mesh.admin().deleteUser("bob");
    await mesh.admin().setUserDisabled("carol", true);
    await mesh.admin().putUser("dave", `${PASSWORD}!`, true);
    expect(await sessionState(s, bob)).toBe("user_deleted");
    expect(await sessionState(s, carol)).toBe("user_disabled");
    expect(await sessionState(s, dave)).toBe("password_replaced");
    // bob again under the same name: the old login stays ended.
    await mesh.admin().putUser("bob", PASSWORD);
    expect(await sessionState(s, bob)).toBe("user_deleted");
    await mesh.admin().setUserDisabled("carol", false);
    expect(await sessionState(s, carol)).toBe("user_disabled");
  }, 60_000);
});

describe.skipIf(!!pgSkip)("console sessions across replicas on PostgreSQL (issue 28.3)", () => {
  let cluster: PgCluster | undefined;
  afterAll(() => cluster?.stop());

  it("a logout on one replica ends the login on the other", async () => {
    cluster = await startPostgres();
    const url = await cluster.createDatabase("coord");
    const [dirA, dirB] = [join(mesh.dir, "pg-a"), join(mesh.dir, "pg-b")];
    // Replicas share the token signing key (docs/coord.md): one file copied to each.
    JwtKey.loadOrCreate(join(mkdirp(dirA), TOKEN_KEY_FILE));
    copyFileSync(join(dirA, TOKEN_KEY_FILE), join(mkdirp(dirB), TOKEN_KEY_FILE));
    const a = await start(dirA, url);
    const b = await start(dirB, url);
    await mesh.admin().putUser("erin", PASSWORD);
    const cookie = await login(a, "erin");
    expect(await sessionState(b, cookie)).toBe(200);
    expect((await call(b, "POST", "/ui/api/logout", cookie)).status).toBe(200);
    expect(await sessionState(a, cookie)).toBe("logged_out");
  }, 90_000);
});

function mkdirp(d: string): string {
  mkdirSync(d, { recursive: true, mode: 0o700 });
  return d;
}
