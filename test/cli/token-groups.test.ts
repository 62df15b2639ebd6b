// `ember token create --groups nosuch` was accepted silently: a typo meant nodes that reach nothing. Tokens come
// before the policy that names their groups (a policy may name only groups some token grants), so the token is
// still made, and the CLI warns, naming the group and what to do (docs/coord.md "Tokens and groups").
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ember } from "../helpers/cli.js";
import { adminCoord } from "../coord/helpers.js";

let server: Awaited<ReturnType<typeof adminCoord>>;

beforeAll(async () => { server = await adminCoord(); }, 60_000);
afterAll(async () => { await server?.stop(); });

describe("token create and the policy's groups", () => {
  it("warns about a group no rule names (no policy yet, then a typo), and is quiet for a group the policy names", () => {
    const first = ember(["token", "create", "--tenant", "acme", "--groups", "web"], { env: server.env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^ember1\.\S+\n$/);
    expect(first.stderr).toMatch(/^ember: warning: no policy is set yet, so no rule names group "web": nodes enrolled with this token reach nothing until one does \(ember policy set\)$/m);

    const policy = join(server.mesh.dir, "policy.yaml");
    writeFileSync(policy, `version: 1\nrules:\n  - allow: {source: "@web", target: "@web", protocol: tcp, ports: [443]}\n`);
    expect(ember(["policy", "set", policy], { env: server.env }).code).toBe(0);

    const typo = ember(["token", "create", "--tenant", "acme", "--groups", "web,wbe", "--json"], { env: server.env });
    expect(typo.code, typo.stderr).toBe(0);
    expect(JSON.parse(typo.stdout)).toMatchObject({ groups: ["web", "wbe"], unnamedGroups: ["wbe"] });
    expect(typo.stderr.trim().split("\n")).toEqual([
      'ember: warning: no rule of the policy names group "wbe": check the spelling; nodes enrolled with it reach only what rules naming them, their tenant or "*" allow (add a rule with @wbe, ember policy set)',
    ]);

    const fine = ember(["token", "create", "--tenant", "acme", "--groups", "web"], { env: server.env });
    expect(fine.code).toBe(0);
    expect(fine.stderr).not.toMatch(/warning/);
  }, 60_000);
});
