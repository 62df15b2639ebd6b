// M2M tokens for telemetry (docs/telemetry.md): issued only over mTLS, certificate-bound, audience-restricted,
// every bad token refused with 401 and its reason; a telemetry flood from one node is bounded and counted;
// and no bearer token is ever accepted on the mesh (the node's data plane has no code that reads one).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { randomBytes } from "node:crypto";
import { enroll } from "../../src/coord/client.js";
import { certThumbprint } from "../../src/coord/jwt.js";
import { ACCESS_TYP, TELEMETRY_AUDIENCE, TOKEN_AUDIENCE, TOKEN_ISSUER } from "../../src/coord/m2m.js";
import { pemBlocks } from "../../src/pki/index.js";
import type { CoordServer } from "../../src/coord/server.js";
import { makeMesh, memoryLogger, rawRequest, startInProcess, type Mesh } from "./helpers.js";

let mesh: Mesh;
let server: CoordServer;
const nodes: Record<string, { cert: string; key: string; thumb: string }> = {};

async function enrolled(name: string) {
  const { token } = await mesh.admin().createToken({ tenant: "acme", groups: ["eng"], roles: [] });
  const dir = join(mesh.dir, name);
  await enroll({ coordUrl: server.url, token, name, stateDir: dir });
  const cert = readFileSync(join(dir, "cert.pem"), "utf8");
  nodes[name] = { cert: cert + mesh.ca.bundlePem.split(/(?=-----BEGIN CERTIFICATE-----)/).slice(1).join(""), key: readFileSync(join(dir, "key.pem"), "utf8"), thumb: certThumbprint(pemBlocks(cert, "CERTIFICATE", "c")[0]) };
}

const form = (o: Record<string, string>) => new URLSearchParams(o).toString();
const tokenReq = (who: string | undefined, body: Record<string, string>) => rawRequest(server.url, "POST", "/v1/oauth/token", {
  ...(who ? { cert: nodes[who].cert, key: nodes[who].key } : {}), body: form(body), headers: { "content-type": "application/x-www-form-urlencoded" },
});
const batch = (events: number, seq = Math.floor(Math.random() * 1e9)) => JSON.stringify({
  v: 1, seq, sentAt: Date.now(),
  events: Array.from({ length: events }, (_, i) => ({ t: "decision", at: Date.now(), peer: "web-1", ok: i % 2 === 0, data: { flow: "a -> b:443/tcp", side: "receiver" } })),
});
const post = (who: string, bearer: string, body = batch(1)) => rawRequest(server.url, "POST", "/v1/telemetry", { cert: nodes[who].cert, key: nodes[who].key, body, headers: { authorization: `Bearer ${bearer}` } });

beforeAll(async () => {
  mesh = await makeMesh();
  server = await startInProcess(mesh);
  await enrolled("node-a");
  await enrolled("node-b");
  await enrolled("node-f");
}, 60_000);
afterAll(async () => { await server?.close(); mesh?.cleanup(); });

describe("M2M tokens", () => {
  it("are issued only over mTLS, as a certificate-bound, audience-restricted EdDSA pair", async () => {
    const anon = await tokenReq(undefined, { grant_type: "client_credentials" });
    expect(anon.status).toBe(401);
    expect(anon.json).toMatchObject({ error: "malformed", detail: "no client certificate presented" });
    const r = await tokenReq("node-a", { grant_type: "client_credentials" });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ token_type: "Bearer", expires_in: 300, refresh_expires_in: 1800 });
    const [head, body] = r.json.access_token.split(".").slice(0, 2).map((p: string) => JSON.parse(Buffer.from(p, "base64url").toString()));
    expect(head).toMatchObject({ alg: "EdDSA", typ: "at+jwt", kid: server.tokenKey.kid });
    expect(body).toMatchObject({ iss: TOKEN_ISSUER, aud: TELEMETRY_AUDIENCE, sub: "node-a", cnf: { "x5t#S256": nodes["node-a"].thumb } });
    expect(body.exp - body.iat).toBe(300);
    expect((await post("node-a", r.json.access_token)).json).toMatchObject({ accepted: 1, dropped: 0 });
    // The admin is no node: no telemetry tokens for it.
    const admin = await rawRequest(server.url, "POST", "/v1/oauth/token", { cert: readFileSync(mesh.adminFlags.cert, "utf8"), key: readFileSync(mesh.adminFlags.key, "utf8"), body: form({ grant_type: "client_credentials" }) });
    expect(admin.status).toBe(403);
  });

  it("refuses expired, tampered, wrong-audience, other-certificate and replayed tokens with 401 and the reason", async () => {
    const pair = (await tokenReq("node-a", { grant_type: "client_credentials" })).json;
    const now = Math.floor(Date.now() / 1000);
    const claims = (o: Record<string, unknown>) => ({ iss: TOKEN_ISSUER, sub: "node-a", aud: TELEMETRY_AUDIENCE, iat: now - 600, exp: now - 300, jti: randomBytes(6).toString("hex"), cnf: { "x5t#S256": nodes["node-a"].thumb }, fam: JSON.parse(Buffer.from(pair.access_token.split(".")[1], "base64url").toString()).fam, ...o });
    const cases: [string, string, string][] = [
      ["expired", server.tokenKey.sign(ACCESS_TYP, claims({})), "expired"],
      ["tampered", (() => { const [h, b, s] = pair.access_token.split("."); const c = JSON.parse(Buffer.from(b, "base64url").toString()); c.sub = "node-b"; return `${h}.${Buffer.from(JSON.stringify(c)).toString("base64url")}.${s}`; })(), "bad_signature"],
      ["wrong audience", server.tokenKey.sign(ACCESS_TYP, claims({ aud: TOKEN_AUDIENCE, exp: now + 300 })), "wrong_audience"],
      ["a refresh token as bearer", pair.refresh_token, "wrong_type"],
      ["unbound (no cnf)", server.tokenKey.sign(ACCESS_TYP, claims({ cnf: undefined, exp: now + 300 })), "unbound"],
      ["garbage", "abc.def.ghi", "malformed"],
    ];
    for (const [what, tok, reason] of cases) {
      const r = await post("node-a", tok);
      expect(r.status, what).toBe(401);
      expect(r.json, what).toMatchObject({ error: "invalid_token", reason });
    }
    // node-b presents node-a's valid token on its own connection: bound to another certificate.
    const other = await post("node-b", pair.access_token);
    expect(other.status).toBe(401);
    expect(other.json.reason).toBe("unbound");
    // Refresh rotates; the old refresh token used again is a replay: refused, and the family is revoked.
    const next = await tokenReq("node-a", { grant_type: "refresh_token", refresh_token: pair.refresh_token });
    expect(next.status).toBe(200);
    const replay = await tokenReq("node-a", { grant_type: "refresh_token", refresh_token: pair.refresh_token });
    expect(replay.status).toBe(401);
    expect(replay.json.reason).toBe("replayed");
    const revoked = await post("node-a", next.json.access_token);
    expect(revoked.status).toBe(401);
    expect(revoked.json.reason).toBe("revoked");
    // The owner recovers with its certificate: a new grant.
    const fresh = (await tokenReq("node-a", { grant_type: "client_credentials" })).json;
    expect((await post("node-a", fresh.access_token)).status).toBe(200);
    expect(server.telemetry.tokens.counters.refused).toMatchObject({ expired: 1, bad_signature: 1, wrong_audience: 1, unbound: 2, replayed: 1, revoked: 1 });
  });

  it("after a server restart, a token of a family it no longer holds is refused as unknown_family, logged as routine, not as reuse", async () => {
    const pair = (await tokenReq("node-a", { grant_type: "client_credentials" })).json;
    await server.close();
    const log = memoryLogger();
    server = await startInProcess(mesh, { logger: log.logger }); // same data dir: same signing key, CA and nodes
    const access = await post("node-a", pair.access_token);
    expect(access.status).toBe(401);
    expect(access.json).toMatchObject({ error: "invalid_token", reason: "unknown_family" });
    expect(access.json.detail).toMatch(/not known to this coordination server \(it restarted, another replica issued the token/);
    const refresh = await tokenReq("node-a", { grant_type: "refresh_token", refresh_token: pair.refresh_token });
    expect(refresh.status).toBe(401);
    expect(refresh.json.reason).toBe("unknown_family");
    const lines = log.lines().filter((l) => l.event === "token_refused");
    expect(lines).toHaveLength(2);
    for (const l of lines) {
      expect(l.level).toBe(30); // info: nothing an operator must act on
      expect(JSON.stringify(l)).not.toMatch(/reused|revoked|twice/);
    }
    // The node's own recovery: a new grant, accepted.
    const fresh = (await tokenReq("node-a", { grant_type: "client_credentials" })).json;
    expect((await post("node-a", fresh.access_token)).status).toBe(200);
  });

  it("bounds a telemetry flood from one node and counts it, while another node's batches pass", async () => {
    const f = (await tokenReq("node-f", { grant_type: "client_credentials" })).json.access_token;
    const b = (await tokenReq("node-b", { grant_type: "client_credentials" })).json.access_token;
    const before = server.telemetry.store.count();
    const statuses: number[] = [];
    let accepted = 0;
    // 30 batches of 256 events as fast as one connection goes (bounded: count, not time).
    for (let i = 0; i < 30; i++) {
      const r = await post("node-f", f, batch(256));
      statuses.push(r.status);
      if (r.status === 200) accepted += r.json.accepted;
    }
    const ok = statuses.filter((s) => s === 200).length;
    const limited = statuses.filter((s) => s === 429).length;
    expect(ok + limited).toBe(30);
    expect(limited).toBeGreaterThan(10);
    expect(accepted).toBeLessThan(1_400); // the 1,200-event burst plus what refills in the run
    const counted = server.telemetry.counters.perNode.get("node-f")!;
    expect(counted.refused).toBe(limited);
    expect(counted.dropped).toBe(ok * 256 - accepted);
    expect(server.telemetry.store.count() - before).toBe(accepted);
    expect((await post("node-b", b, batch(10))).json).toMatchObject({ accepted: 10 });
    // Oversized bodies and junk are refused whole.
    expect((await post("node-b", b, "x".repeat(300 * 1024))).status).toBe(413);
    expect((await post("node-b", b, JSON.stringify({ v: 1, seq: 1, sentAt: 1, events: [{ t: "evil", at: 1, data: {} }] }))).json.error).toBe("bad_telemetry");
    console.log(`telemetry flood: 30 batches x 256 events -> ${ok} accepted (${accepted} events), ${limited} refused 429, ${counted.dropped} events dropped over quota`);
  });
});

describe("hostile input to the new endpoints", () => {
  it("token, telemetry, console login and console API: garbage bodies, headers and cookies never get a 5xx", async () => {
    const good = (await tokenReq("node-b", { grant_type: "client_credentials" })).json.access_token as string;
    const junk = () => {
      const pick = Math.floor(Math.random() * 6);
      if (pick === 0) return randomBytes(Math.floor(Math.random() * 300)).toString("latin1");
      if (pick === 1) return JSON.stringify({ v: 1, seq: -1, sentAt: "x", events: [{ t: "decision", at: 1, data: "s" }] });
      if (pick === 2) return JSON.stringify({ v: 1, seq: 1, sentAt: 1, events: Array.from({ length: 300 }, () => ({ t: "path", at: 1, data: {} })) });
      if (pick === 3) return JSON.stringify({ v: 1, seq: 2, sentAt: 1, events: [], peers: [{ name: "../x", path: 1 }], problems: "no" });
      if (pick === 4) return "grant_type=refresh_token&refresh_token=" + encodeURIComponent(good.split("").reverse().join(""));
      return JSON.stringify({ username: "x".repeat(5000), password: { a: 1 } });
    };
    const statuses = new Map<number, number>();
    const admin = { cert: readFileSync(mesh.adminFlags.cert, "utf8"), key: readFileSync(mesh.adminFlags.key, "utf8") };
    for (let i = 0; i < 150; i++) {
      const route = ["/v1/oauth/token", "/v1/telemetry", "/ui/api/login", "/ui/api/login/cert", "/ui/api/overview", "/ui/api/nodes/%ZZ", "/ui/api/policy/check", "/v1/admin/users"][i % 8];
      const who = i % 3 === 0 ? nodes["node-b"] : i % 3 === 1 ? admin : undefined;
      const r = await rawRequest(server.url, i % 5 === 0 ? "GET" : "POST", route, {
        ...(who ? { cert: who.cert, key: who.key } : {}), body: junk(),
        headers: { authorization: i % 2 ? `Bearer ${good}` : `Bearer ${randomBytes(20).toString("base64url")}.x.y`, cookie: `ember_session=${i % 4 ? good : "a.b.c"}`, "x-ember-console": "1" },
      });
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      expect(r.status, `${route} -> ${r.status} ${r.body.slice(0, 200)}`).toBeLessThan(500);
    }
    // Still serving.
    expect((await post("node-b", good)).status).toBe(200);
    console.log(`hostile requests: ${[...statuses].map(([k, v]) => `${v}x ${k}`).join(", ")}`);
  });
});

describe("the mesh accepts no bearer token", () => {
  // (The local proxy strips the hop-by-hop Proxy-Authorization header; that is not a credential it reads.)
  it("no data-plane module reads an Authorization header or imports the token code", () => {
    const root = join(import.meta.dirname, "..", "..");
    const files: string[] = [];
    const walk = (d: string) => { for (const e of readdirSync(d)) { const p = join(d, e); if (statSync(p).isDirectory()) walk(p); else if (p.endsWith(".ts")) files.push(p); } };
    for (const d of ["src/session", "src/transport", "src/access", "src/crypto", "src/wire", "src/nat", "src/node", "relay"]) walk(join(root, d));
    // Only the node's telemetry client (which talks to the coordination server, not to peers) holds a token.
    const offenders = files.filter((f) => !f.endsWith("src/node/telemetry.ts"))
      .filter((f) => /(?<!proxy-)authorization|bearer|m2m\.js|jwt\.js/i.test(readFileSync(f, "utf8"))).map((f) => relative(root, f));
    expect(offenders).toEqual([]);
  });
});
