// Enrollment: a token turns into an identity; every bad token/CSR/body gets its own clear refusal and the
// server keeps serving.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { createCsr, generateEd25519, initCa, Verifier, withIntermediates } from "../../src/pki/index.js";
import { enroll } from "../../src/coord/client.js";
import { newToken } from "../../src/coord/tokens.js";
import { PATHS, MAX_BODY_BYTES } from "../../src/coord/protocol.js";
import { requestJson, verifiedAgent, RequestError } from "../../src/pki/mtls-client.js";
import { COORD_SERVER } from "../../src/wire/coord-api.js";
import type { CoordServer } from "../../src/coord/server.js";
import { makeMesh, startInProcess, type Mesh } from "./helpers.js";

let mesh: Mesh;
let server: CoordServer;
let url: string;

async function token(o: { tenant?: string; groups?: string[]; ttlMs?: number; uses?: number; certTtlMs?: number } = {}): Promise<string> {
  return (await mesh.admin().createToken({ tenant: o.tenant ?? "acme", groups: o.groups ?? ["eng"], roles: [], ttlMs: o.ttlMs, uses: o.uses, certTtlMs: o.certTtlMs })).token;
}

/** POST /v1/enroll directly (over a verified connection) to see the server's own refusal. */
async function rawEnroll(body: unknown): Promise<RequestError> {
  const agent = verifiedAgent({ verifier: new Verifier({ bundlePem: mesh.ca.bundlePem }), expect: COORD_SERVER, keepAlive: false });
  try {
    await requestJson(agent, url + PATHS.enroll, "POST", body);
  } catch (err) {
    if (err instanceof RequestError) return err;
    throw err;
  } finally { agent.destroy(); }
  throw new Error("enrollment unexpectedly succeeded");
}

beforeAll(async () => {
  mesh = await makeMesh();
  server = await startInProcess(mesh);
  url = server.url;
});
afterAll(async () => { await server?.close(); mesh?.cleanup(); });

describe("enrollment", () => {
  it("turns a token and a CSR into a leaf, bundle and revocation list stored in the state dir", async () => {
    const stateDir = join(mesh.dir, "web-1");
    const r = await enroll({ coordUrl: url, token: await token({ groups: ["eng", "web"] }), name: "web-1", stateDir });
    expect(r.tenant).toBe("acme");
    expect(statSync(join(stateDir, "key.pem")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(stateDir, "bundle.pem"), "utf8")).toBe(mesh.ca.bundlePem);
    JSON.parse(readFileSync(join(stateDir, "revocation.json"), "utf8"));
    const v = new Verifier({ bundlePem: mesh.ca.bundlePem }).verifyPem(withIntermediates(readFileSync(join(stateDir, "cert.pem"), "utf8"), mesh.ca.bundlePem));
    expect(v.ok && v.identity.name).toBe("web-1");
    expect(v.ok && v.identity.groups).toEqual(["eng", "web"]);
    const nodes = (await mesh.admin().listNodes()).nodes;
    expect(nodes.map((n: any) => n.name)).toContain("web-1");
  });

  it("refuses a reused token", async () => {
    const t = await token();
    await enroll({ coordUrl: url, token: t, name: "once-1", stateDir: join(mesh.dir, "once-1") });
    await expect(enroll({ coordUrl: url, token: t, name: "once-2", stateDir: join(mesh.dir, "once-2") }))
      .rejects.toThrow("token_used: token already used (1 of 1 uses); ask for a new one");
  });

  it("allows a multi-use token exactly --uses times", async () => {
    const t = await token({ uses: 2 });
    await enroll({ coordUrl: url, token: t, name: "multi-1", stateDir: join(mesh.dir, "multi-1") });
    await enroll({ coordUrl: url, token: t, name: "multi-2", stateDir: join(mesh.dir, "multi-2") });
    await expect(enroll({ coordUrl: url, token: t, name: "multi-3", stateDir: join(mesh.dir, "multi-3") })).rejects.toThrow(/token_used/);
  });

  it("refuses an expired token", async () => {
    const t = await token({ ttlMs: 1_000 });
    await new Promise((r) => setTimeout(r, 1_200));
    await expect(enroll({ coordUrl: url, token: t, name: "late-1", stateDir: join(mesh.dir, "late-1") })).rejects.toThrow(/token_expired/);
  });

  it("refuses a token of another mesh: the client sees the pin mismatch, the server says token_foreign", async () => {
    const other = await initCa(join(mesh.dir, "other-ca"), "other.internal");
    const foreign = newToken(other.rootDer).token;
    await expect(enroll({ coordUrl: url, token: foreign, name: "alien-1", stateDir: join(mesh.dir, "alien-1") })).rejects.toThrow(/does not match the token's pin/);
    const csr = await createCsr(generateEd25519(), "alien-1");
    const e = await rawEnroll({ token: foreign, name: "alien-1", csr });
    expect([e.status, e.code]).toEqual([403, "token_foreign"]);
  });

  it("refuses an unknown token that carries the right pin", async () => {
    const unknown = newToken(mesh.ca.rootDer).token;
    const e = await rawEnroll({ token: unknown, name: "ghost-1", csr: await createCsr(generateEd25519(), "ghost-1") });
    expect([e.status, e.code]).toEqual([403, "token_unknown"]);
    const garbled = await rawEnroll({ token: "ember1.nonsense", name: "ghost-1", csr: "x" });
    expect([garbled.status, garbled.code]).toEqual([400, "token_malformed"]);
  });

  it("refuses a malformed CSR and a CSR for another name, without consuming the token", async () => {
    const t = await token();
    const bad = await rawEnroll({ token: t, name: "db-1", csr: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n" });
    expect([bad.status, bad.code]).toEqual([400, "bad_csr"]);
    const other = await rawEnroll({ token: t, name: "db-1", csr: await createCsr(generateEd25519(), "web-1") });
    expect([other.status, other.code]).toEqual([400, "csr_name_mismatch"]);
    expect(other.detail).toMatch(/"web-1".*"db-1"/);
    await enroll({ coordUrl: url, token: t, name: "db-1", stateDir: join(mesh.dir, "db-1") });
  });

  it("refuses a name held by a live enrollment, and a reserved name", async () => {
    await expect(enroll({ coordUrl: url, token: await token(), name: "web-1", stateDir: join(mesh.dir, "web-1b") })).rejects.toThrow(/name_taken/);
    await expect(enroll({ coordUrl: url, token: await token(), name: "coord", stateDir: join(mesh.dir, "c") })).rejects.toThrow(/reserved/);
  });

  it("lets a revoked name enroll again (a new identity with new serials)", async () => {
    await mesh.admin().revoke("once-1");
    const r = await enroll({ coordUrl: url, token: await token(), name: "once-1", stateDir: join(mesh.dir, "once-1-again") });
    expect(r.certPem).toContain("BEGIN CERTIFICATE");
  });

  it("answers an oversized body with 413 and keeps serving", async () => {
    const e = await rawEnroll({ token: "x", name: "big", csr: "A".repeat(MAX_BODY_BYTES + 10) });
    expect([e.status, e.code]).toEqual([413, "body_too_large"]);
    const junk = await rawEnroll("not an object");
    expect([junk.status, junk.code]).toEqual([400, "bad_json"]);
    const health = await requestJson(undefined, url + PATHS.health, "GET", undefined, { insecure: true });
    expect(health.ok).toBe(true);
  });

  it("refuses a certificate TTL below the server minimum when minting a token", async () => {
    await expect(mesh.admin().createToken({ tenant: "acme", groups: [], roles: [], certTtlMs: 10 })).rejects.toThrow(/below this server's minimum/);
  });
});
