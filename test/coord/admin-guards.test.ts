// Issue 28, items 5 and 7: the admin API's user paths answer a malformed percent-escape with 400 bad_path (it
// was a 500 from an unguarded decodeURIComponent), and a token granting role "relay" or "server" needs an
// explicit confirmation (allowInfraRole, --allow-infra-role) as role "admin" does, while the names of the relays
// the server hands out are reserved: no node enrolls under them, whatever its token.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { enroll } from "../../src/coord/client.js";
import { RequestError } from "../../src/pki/mtls-client.js";
import type { CoordServer } from "../../src/coord/server.js";
import { ember } from "../helpers/cli.js";
import { makeMesh, rawRequest, startInProcess, type Mesh } from "./helpers.js";

let mesh: Mesh;
let server: CoordServer;
let admin: { cert: string; key: string };

beforeAll(async () => {
  mesh = await makeMesh();
  server = await startInProcess(mesh);
  admin = { cert: readFileSync(mesh.adminFlags.cert, "utf8"), key: readFileSync(mesh.adminFlags.key, "utf8") };
}, 60_000);

afterAll(async () => {
  await server?.close();
  mesh?.cleanup();
});

describe("admin user paths with malformed escapes (issue 28.5)", () => {
  for (const [method, path] of [["POST", "/v1/admin/users/%ZZ/disable"], ["POST", "/v1/admin/users/%E0%A4%A/enable"], ["DELETE", "/v1/admin/users/%ZZ"], ["DELETE", "/v1/admin/users/%C0%AF"]]) {
    it(`${method} ${path} is 400 bad_path, not a 500`, async () => {
      const r = await rawRequest(server.url, method, path, admin);
      expect(r.status).toBe(400);
      expect(r.json.error).toBe("bad_path");
      expect(r.json.detail).toMatch(/not valid percent-encoded UTF-8/);
    });
  }

  it("a decoded name that cannot be a user name is 400 bad_name; an unknown valid one still 404", async () => {
    const bad = await rawRequest(server.url, "DELETE", "/v1/admin/users/a%2Fb", admin);
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBe("bad_name");
    const unknown = await rawRequest(server.url, "DELETE", "/v1/admin/users/nobody.here", admin);
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toBe("unknown_user");
  });
});

describe("tokens granting infrastructure roles, names of relays (issue 28.7)", () => {
  for (const role of ["relay", "server"]) {
    it(`a token granting role "${role}" is refused unless the request sets allowInfraRole`, async () => {
      const err = await mesh.admin().createToken({ tenant: "infra", groups: [], roles: ["ops", role] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RequestError);
      expect((err as RequestError).status).toBe(403);
      expect((err as RequestError).code).toBe("infra_role_refused");
      expect((err as RequestError).detail).toMatch(/allowInfraRole/);
      const ok = await mesh.admin().createToken({ tenant: "infra", groups: [], roles: [role], allowInfraRole: true });
      expect(ok.roles).toEqual([role]);
      const audit = readFileSync(join(mesh.dir, "data", "audit.log"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
      expect(audit.find((a) => a.action === "infra_token_created" && a.token === ok.id)).toMatchObject({ by: "ops-admin", roles: [role] });
    });
  }

  it("ember token create --roles relay is refused without --allow-infra-role, with a one-line error", () => {
    const env = { EMBER_COORD: server.url, EMBER_CERT: mesh.adminFlags.cert, EMBER_KEY: mesh.adminFlags.key, EMBER_CA: mesh.adminFlags.ca };
    const r = ember(["token", "create", "--tenant", "infra", "--roles", "relay"], { env });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^ember: --roles relay: a node enrolled with this token is trusted as a relay or coordination server; refused unless --allow-infra-role is given\n$/);
  });

  it("no node enrolls under the name of a relay the server hands out, even with a relay token", async () => {
    const t = await mesh.admin().createToken({ tenant: "infra", groups: [], roles: ["relay"], allowInfraRole: true, uses: 2 });
    const err = await enroll({ coordUrl: server.url, token: t.token, name: "relay-1", stateDir: join(mesh.dir, "fake-relay") }).catch((e: unknown) => e);
    expect(String((err as Error).message)).toMatch(/name "relay-1" is reserved: it is the name of a relay/);
    // Another name still enrolls (the token's second use was not spent by the refusal).
    const ok = await enroll({ coordUrl: server.url, token: t.token, name: "relay-9", stateDir: join(mesh.dir, "relay-9") });
    expect(ok).toBeTruthy();
  });
});
