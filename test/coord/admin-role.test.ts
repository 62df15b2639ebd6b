// Issue 14, item 9: an enrollment token that grants role "admin" makes whoever enrolls with it an admin of
// the mesh. By default no token may carry that role: `ember token create --roles admin` is refused unless
// --allow-admin-role is given (which prints a warning), the server refuses such a token unless the request
// says allowAdminRole, and it writes an audit line (who, when, which token) when one is minted and when a
// node enrolls with one: in its log and in <data>/audit.log.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { enroll } from "../../src/coord/client.js";
import { RequestError } from "../../src/pki/mtls-client.js";
import { ember } from "../helpers/cli.js";
import { adminEnv, makeMesh, spawnCoord, waitFor, type CoordProcess, type Mesh } from "./helpers.js";

const STACK = /\n\s+at /;
let mesh: Mesh;
let coord: CoordProcess;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  mesh = await makeMesh();
  coord = await spawnCoord(mesh);
  env = adminEnv(mesh, coord);
}, 60_000);

afterAll(async () => {
  await coord?.kill9();
  mesh?.cleanup();
});

function auditLines(): any[] {
  return coord.stderr().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)).filter((l) => l.event === "audit");
}

function auditFile(): any[] {
  const f = join(mesh.dir, "data", "audit.log");
  return existsSync(f) ? readFileSync(f, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
}

describe("tokens granting the admin role (issue 14.9)", () => {
  it("ember token create --roles admin is refused without --allow-admin-role, and no token is minted", () => {
    const r = ember(["token", "create", "--tenant", "ops", "--roles", "ops,admin"], { env });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^ember: --roles admin: a node enrolled with this token becomes an admin of the mesh; refused unless --allow-admin-role is given\n$/);
    expect(r.stderr).not.toMatch(STACK);
    expect(auditLines()).toEqual([]);
  });

  it("the server refuses such a token from any client unless the request allows it explicitly", async () => {
    const err = await mesh.admin().createToken({ tenant: "ops", groups: [], roles: ["admin"] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RequestError);
    expect((err as RequestError).status).toBe(403);
    expect((err as RequestError).code).toBe("admin_role_refused");
    expect((err as RequestError).detail).toMatch(/allowAdminRole/);
    // Roles of no special meaning need no flag (relay and server need theirs: admin-guards.test.ts).
    const ops = await mesh.admin().createToken({ tenant: "infra", groups: [], roles: ["ops"] });
    expect(ops.roles).toEqual(["ops"]);
    expect(auditLines()).toEqual([]);
  });

  it("with --allow-admin-role: a warning, the token, and audit lines for its creation and for the enrollment that uses it", async () => {
    const before = Date.now();
    const r = ember(["token", "create", "--tenant", "ops", "--roles", "admin", "--allow-admin-role", "--json"], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^ember: warning: this token grants role "admin": the node that enrolls with it can mint tokens, revoke nodes and set the policy\n/);
    const t = JSON.parse(r.stdout);
    expect(t.roles).toEqual(["admin"]);

    const created = await waitFor(() => auditLines().find((l) => l.action === "admin_token_created"), 5_000, "audit line for the token");
    expect(created).toMatchObject({ event: "audit", action: "admin_token_created", by: "ops-admin", token: t.id, tenant: "ops", roles: ["admin"] });
    expect(Date.parse(created.at)).toBeGreaterThanOrEqual(before - 1_000);

    await enroll({ coordUrl: coord.url, token: t.token, name: "ops-2", stateDir: join(mesh.dir, "ops-2") });
    const enrolled = await waitFor(() => auditLines().find((l) => l.action === "admin_enrolled"), 5_000, "audit line for the enrollment");
    expect(enrolled).toMatchObject({ event: "audit", action: "admin_enrolled", name: "ops-2", token: t.id, tokenCreatedBy: "ops-admin", roles: ["admin"] });
    expect(typeof enrolled.serial).toBe("string");
    expect(Date.parse(enrolled.at)).toBeGreaterThanOrEqual(Date.parse(created.at));

    // The same lines, durable, in the data directory.
    expect(auditFile().map((l) => l.action)).toEqual(["admin_token_created", "admin_enrolled"]);
    expect(auditFile()[1]).toMatchObject({ name: "ops-2", token: t.id });
  }, 60_000);
});
