// The API with a real third-party client: curl with a client certificate works; without one, or with an
// expired, non-admin or revoked one, the verifier's reason comes back as 401/403 JSON.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { withIntermediates } from "../../src/pki/index.js";
import { enroll } from "../../src/coord-client/client.js";
import type { CoordServer } from "../../src/coord/server.js";
import { makeLeaf } from "../helpers/pki.js";
import { makeMesh, portOf, startInProcess, type Mesh } from "./helpers.js";

let mesh: Mesh;
let server: CoordServer;

/** The server's leaf carries CN=coord and only a URI SAN, so curl matches the host name "coord" on the CN. */
/** Async: the server runs in this process, so the event loop must stay free while curl talks to it. */
function curl(path: string, certArgs: string[] = []): Promise<{ status: number; body: string; stderr: string }> {
  const port = portOf(server.url);
  const args = ["-sS", "--max-time", "10", "--resolve", `coord:${port}:127.0.0.1`, "--cacert", mesh.adminFlags.ca,
    ...certArgs, "-w", "\n%{http_code}", `https://coord:${port}${path}`];
  return new Promise((resolve) => execFile("curl", args, { encoding: "utf8", timeout: 15_000 }, (_err, stdout, stderr) => {
    const lines = stdout.trimEnd().split("\n");
    const status = Number(lines.pop());
    resolve({ status, body: lines.join("\n"), stderr });
  }));
}

beforeAll(async () => {
  mesh = await makeMesh();
  server = await startInProcess(mesh);
});
afterAll(async () => { await server?.close(); mesh?.cleanup(); });

describe("mTLS API with curl", () => {
  it("serves an admin with a client certificate", async () => {
    const r = await curl("/v1/admin/nodes", ["--cert", mesh.adminFlags.cert, "--key", mesh.adminFlags.key]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toHaveProperty("nodes");
  });

  it("refuses a request without a client certificate with 401 and the reason", async () => {
    const r = await curl("/v1/admin/nodes");
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toMatchObject({ error: "malformed", detail: "no client certificate presented" });
    expect((await curl("/v1/revocation")).status).toBe(401);
  });

  it("leaves health and the public bundle open", async () => {
    expect((await curl("/v1/health")).status).toBe(200);
    expect(JSON.parse((await curl("/v1/bundle")).body).bundlePem).toBe(mesh.ca.bundlePem);
  });

  it("says 'expired' for an expired certificate", async () => {
    const old = await makeLeaf(mesh.ca, "stale-1", { ttlMs: 1_000, now: new Date(Date.now() - 3_600_000), roles: ["admin"] });
    const cert = join(mesh.dir, "stale.crt"), key = join(mesh.dir, "stale.key");
    writeFileSync(cert, withIntermediates(old.pem, mesh.ca.bundlePem));
    writeFileSync(key, old.keyPem, { mode: 0o600 });
    const r = await curl("/v1/admin/nodes", ["--cert", cert, "--key", key]);
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body).error).toBe("expired");
  });

  it("refuses admin endpoints to a node without the admin role, serves it the revocation list, then 'revoked'", async () => {
    const t = (await mesh.admin().createToken({ tenant: "acme", groups: ["eng"], roles: [] })).token;
    const stateDir = join(mesh.dir, "node-1");
    await enroll({ coordUrl: server.url, token: t, name: "node-1", stateDir });
    const certArgs = ["--cert", join(stateDir, "cert.pem"), "--key", join(stateDir, "key.pem")];
    const admin = await curl("/v1/admin/nodes", certArgs);
    expect(admin.status).toBe(403);
    expect(JSON.parse(admin.body).error).toBe("not_admin");
    // Every /v1/admin/ path needs the role, served or not (a node learns nothing of which exist); elsewhere a
    // path no route serves is a 404, and only to a verified certificate.
    const unknownAdmin = await curl("/v1/admin/nothing-here", certArgs);
    expect([unknownAdmin.status, JSON.parse(unknownAdmin.body).error]).toEqual([403, "not_admin"]);
    expect((await curl("/v1/nothing-here", certArgs)).status).toBe(404);
    expect((await curl("/v1/nothing-here")).status).toBe(401);
    // An open route is open for its own method only.
    expect((await curl("/v1/health", ["-X", "POST"])).status).toBe(401);
    // cert.pem holds only the leaf: the server completes the chain from its bundle.
    const list = await curl("/v1/revocation", certArgs);
    expect(list.status).toBe(200);
    expect(JSON.parse(list.body)).toHaveProperty("signature");
    await mesh.admin().revoke("node-1");
    const after = await curl("/v1/revocation", certArgs);
    expect(after.status).toBe(401);
    expect(JSON.parse(after.body).error).toBe("revoked");
  });
});
