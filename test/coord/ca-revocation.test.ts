// Revoking a certificate that was issued offline (an admin's, from `ember cert issue --admin`) with
// `ember ca revoke`: the coordination server must pick the CA's revocations up and refuse that certificate,
// and the lists it signs itself must keep them. Found while writing the threat model (docs/security.md):
// the server never read the CA's revocations, so a stolen admin certificate stayed usable until it expired,
// and each list it signed (numbered above the CA's) replaced the CA's list at relays and nodes, which
// un-revoked the CA's serials there.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { generateEd25519, issueLeaf, privateKeyToPem, toPem, Verifier, withIntermediates } from "../../src/pki/index.js";
import { enroll } from "../../src/coord-client/client.js";
import type { CoordServer } from "../../src/coord/server.js";
import { ember } from "../helpers/cli.js";
import { waitFor } from "../relay/helpers.js";
import { makeMesh, rawRequest, startInProcess, type Mesh } from "./helpers.js";

let mesh: Mesh;
let server: CoordServer;

beforeAll(async () => {
  mesh = await makeMesh();
  server = await startInProcess(mesh);
});
afterAll(async () => { await server?.close(); mesh?.cleanup(); });

/** A second admin, issued offline as `ember cert issue --admin` does. */
async function offlineAdmin(name: string) {
  const keys = generateEd25519();
  const der = await issueLeaf(mesh.ca, { name, tenant: "ops", roles: ["admin"], ttlMs: 3_600_000, publicKey: keys.publicKey });
  const pem = toPem(der, "CERTIFICATE");
  const v = new Verifier({ bundlePem: mesh.ca.bundlePem }).verifyPem(withIntermediates(pem, mesh.ca.bundlePem));
  if (!v.ok) throw new Error(v.detail);
  return { cert: withIntermediates(pem, mesh.ca.bundlePem), key: privateKeyToPem(keys.privateKey), serial: v.identity.serial };
}

/** A signed list's number. */
function listNumber(text: string): number {
  return JSON.parse(JSON.parse(text).list).number;
}

/** The serials of a signed list, after checking its signature as any relay or node would. */
function listedSerials(text: string): string[] {
  const v = new Verifier({ bundlePem: mesh.ca.bundlePem });
  const r = v.applyRevocationList(text);
  if (!r.ok) throw new Error(`${r.reason}: ${r.detail}`);
  return v.revocation.revokedSerials;
}

describe("revocations made with `ember ca revoke`", () => {
  it("are applied by the coordination server, and kept in every list it signs afterwards", async () => {
    const stolen = await offlineAdmin("ops-9");
    expect((await rawRequest(server.url, "GET", "/v1/admin/nodes", stolen)).status).toBe(200);

    const out = join(mesh.dir, "ca-list.json");
    const r = ember(["ca", "revoke", "--ca-dir", mesh.ca.dir, "--serial", stolen.serial, "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    // The server notices the CA's new list on its own (it polls the CA directory's ca.json).
    const refused = await waitFor(async () => {
      const a = await rawRequest(server.url, "GET", "/v1/admin/nodes", stolen);
      return a.status === 401 ? a : undefined;
    }, "the server to refuse the CA-revoked admin certificate", 10_000);
    expect(refused.json).toMatchObject({ error: "revoked" });
    const served = await rawRequest(server.url, "GET", "/v1/revocation", { cert: readFileSync(mesh.adminFlags.cert, "utf8"), key: readFileSync(mesh.adminFlags.key, "utf8") });
    expect(listedSerials(served.body)).toContain(stolen.serial);
    expect(listNumber(served.body)).toBeGreaterThan(listNumber(readFileSync(out, "utf8")));

    // A node revocation signs a new, higher-numbered list: the CA's serial must still be on it.
    const t = (await mesh.admin().createToken({ tenant: "acme", groups: [], roles: [] })).token;
    await enroll({ coordUrl: server.url, token: t, name: "web-7", stateDir: join(mesh.dir, "web-7") });
    const rv = await mesh.admin().revoke("web-7");
    const after = await rawRequest(server.url, "GET", "/v1/revocation", { cert: readFileSync(mesh.adminFlags.cert, "utf8"), key: readFileSync(mesh.adminFlags.key, "utf8") });
    expect(listNumber(after.body)).toBe(rv.number);
    expect(listedSerials(after.body)).toEqual(expect.arrayContaining([stolen.serial, ...rv.serials]));
  }, 30_000);
});
