// The coordination admin verbs as a user runs them: the real `ember` binary against a real `ember coord` child,
// nodes enrolled by real `ember up --coord --token` daemons. Proves that `token create` mints a working one-time
// token, `nodes list` shows what enrolled, `policy set` applies a valid file and refuses broken ones naming the
// problem and its line (keeping the policy in force), `policy check` gives the verdict with its deciding rule,
// `nodes revoke` revokes, and every verb refuses a caller without an admin certificate cleanly (no stack trace).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ember } from "../helpers/cli.js";
import { startNode, type NodeProc } from "../helpers/nodes.js";
import { adminEnv, makeMesh, spawnCoord, type CoordProcess, type Mesh } from "./helpers.js";

const DEMO_POLICY = join(import.meta.dirname, "..", "..", "examples", "policy", "demo.yaml");
const STACK = /\n\s+at /;
/** For the refusal cases: no admin connection leaking in from the caller's environment (env beats --state). */
const NO_ENV = { EMBER_COORD: undefined, EMBER_CERT: undefined, EMBER_KEY: undefined, EMBER_CA: undefined };

let mesh: Mesh;
let coord: CoordProcess;
let env: NodeJS.ProcessEnv;
const nodes: NodeProc[] = [];

/** An admin verb with the connection given through EMBER_COORD/EMBER_CERT/EMBER_KEY/EMBER_CA. */
const admin = (...args: string[]) => ember(args, { env });
const adminJson = (...args: string[]) => {
  const r = admin(...args, "--json");
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
};

async function up(name: string, token: string): Promise<NodeProc> {
  const n = await startNode({ name, dir: join(mesh.dir, name), extraArgs: ["--coord", coord.url, "--token", token, "--name", name] });
  nodes.push(n);
  return n;
}

function policyFile(name: string, text: string): string {
  const f = join(mesh.dir, name);
  writeFileSync(f, text);
  return f;
}

beforeAll(async () => {
  mesh = await makeMesh();
  coord = await spawnCoord(mesh);
  env = adminEnv(mesh, coord);
}, 60_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await coord?.kill9();
  mesh?.cleanup();
}, 60_000);

describe("ember token/nodes/policy against a live coordination server", () => {
  it("token create prints a one-time token that enrolls a node once, then is refused as already used", async () => {
    const before = Date.now();
    const t = adminJson("token", "create", "--tenant", "demo", "--groups", "engineering-team,staff", "--ttl", "1h");
    expect(t.token).toMatch(/^ember1\.[0-9a-f]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(t).toMatchObject({ tenant: "demo", groups: ["engineering-team", "staff"], roles: [], uses: 1 });
    expect(Math.abs(Date.parse(t.expiresAt) - (before + 3_600_000))).toBeLessThan(60_000);
    await up("laptop-1", t.token);

    // Human form: only the token on stdout (so `$(ember token create ...)` works), a summary on stderr.
    const h = admin("token", "create", "--tenant", "demo", "--groups", "edge-dashboard");
    expect(h.code, h.stderr).toBe(0);
    expect(h.stdout).toMatch(/^ember1\.\S+\n$/);
    expect(h.stderr).toMatch(/^token [0-9a-f]{16}: tenant demo, groups edge-dashboard, 1 use\(s\), expires \d{4}-/);
    const db = adminJson("token", "create", "--tenant", "demo", "--groups", "databases");
    await Promise.all([up("dashboard-1", h.stdout.trim()), up("db-1", db.token)]);

    const again = ember(["up", "--coord", coord.url, "--token", t.token, "--state", join(mesh.dir, "laptop-2"), "--name", "laptop-2", "--listen", "127.0.0.1:0"]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/token_used: token already used \(1 of 1 uses\)/);
    expect(again.stderr).not.toMatch(STACK);
  }, 120_000);

  it("nodes list shows each enrolled node with tenant, groups and certificate expiry, as JSON and as a table", () => {
    const list = adminJson("nodes", "list") as any[];
    expect(list.map((n) => n.name)).toEqual(["dashboard-1", "db-1", "laptop-1"]);
    const laptop = list.find((n) => n.name === "laptop-1");
    expect(laptop).toMatchObject({ tenant: "demo", groups: ["engineering-team", "staff"], status: "active" });
    expect(laptop.serial).toMatch(/^[0-9a-f]+$/);
    // The token's default --cert-ttl is 8h.
    expect(Math.abs(Date.parse(laptop.certExpires) - (Date.now() + 8 * 3_600_000))).toBeLessThan(5 * 60_000);
    expect(list.find((n) => n.name === "db-1").groups).toEqual(["databases"]);
    expect(laptop.overlayIp).toMatch(/^100\.\d+\.\d+\.\d+$/);

    const table = ember(["nodes", "list", "--coord", coord.url, ...flags(mesh)]);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+TENANT\s+OVERLAY IP\s+GROUPS\s+STATUS\s+ONLINE\s+VERSION\s+LAST SEEN\s+ENDPOINTS\s+CERT EXPIRES$/);
    expect(lines).toHaveLength(4);
    expect(lines.find((l) => l.startsWith("laptop-1 "))).toMatch(/^laptop-1\s+demo\s+100\.\d+\.\d+\.\d+\s+engineering-team,staff\s+active\s+(yes|no)\s+(-|\S+ \(protocol \d+\))\s.*\(7h5\dm\)$/);
  }, 60_000);

  it("policy set applies a valid file and refuses a syntax error, an unknown group, a bad port and a duplicate rule by line", () => {
    // The demo's embedded tests name the person alice (user:alice) as well as the enrolled nodes.
    const alice = ember(["users", "add", "alice", "--tenant", "demo", "--groups", "engineering-team", "--password-stdin"], { env, input: "a long enough password\n" });
    expect(alice.code, alice.stderr).toBe(0);
    const ok = admin("policy", "set", DEMO_POLICY);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^policy applied: 4 rule\(s\), hash [0-9a-f]+\n$/);
    expect(ok.stderr).toBe(""); // every identity the embedded tests name is enrolled: no warnings

    const syntax = policyFile("syntax.yaml", 'version: 1\nrules:\n  - allow:\n      source: "@engineering-team"\n     target: "@edge-dashboard"\n');
    const badRefs = policyFile("refs.yaml", [
      "version: 1",
      "groups: [engineering-team, edge-dashboard, databases]",
      "rules:",
      '  - allow: {source: "@marketing", target: "@edge-dashboard", protocol: tcp, ports: [443]}',
      '  - allow: {source: "@engineering-team", target: "@databases", protocol: tcp, ports: [70000]}',
      "",
    ].join("\n"));
    const dup = policyFile("dup.yaml", [
      "version: 1",
      "rules:",
      '  - allow: {source: "@engineering-team", target: "@edge-dashboard", protocol: https}',
      '  - allow: {source: "@engineering-team", target: "@edge-dashboard", protocol: tcp, ports: [443]}',
      "",
    ].join("\n"));
    const expectRefused = (file: string, count: number, issues: [number, RegExp][]) => {
      const r = admin("policy", "set", file);
      expect(r.code, r.stdout).toBe(2);
      expect(r.stdout).toBe("");
      for (const [line, re] of issues) expect(r.stderr).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:${line}(:\\d+)?: error: .*${re.source}`, "m"));
      expect(r.stderr).toContain(`ember: policy ${file} has ${count} error(s); nothing applied`);
      expect(r.stderr).not.toMatch(STACK);
    };
    expectRefused(syntax, 1, [[5, /YAML: All mapping items must start at the same column/]]);
    expectRefused(badRefs, 2, [[4, /unknown group "marketing"/], [5, /port 70000 is outside 1-65535/]]);
    expectRefused(dup, 1, [[4, /rule 2 duplicates rule 1 \(line 3\)/]]);

    // Nothing of the refused files applied: the demo policy is still the one in force (its rule 2 decides).
    expect(admin("policy", "get").stdout).toBe(readFileSync(DEMO_POLICY, "utf8"));
    const tcp = adminJson("policy", "check", "--from", "laptop-1", "--to", "dashboard-1:8080/tcp");
    expect(tcp).toMatchObject({ allow: true, rule: { index: 2, line: 9 }, port: 8080, protocol: "tcp" });
  }, 90_000);

  it("policy check reports allow with the deciding rule, and default deny (exit 1) otherwise", () => {
    const allow = admin("policy", "check", "--from", "laptop-1", "--to", "dashboard-1:443/https");
    expect(allow.code, allow.stderr).toBe(0);
    expect(allow.stdout).toBe('ALLOW laptop-1 -> dashboard-1:443/https by rule #1 (line 8: allow: {source: "@engineering-team", '
      + 'target: "@edge-dashboard", protocol: https, ports: [443]}): allowed by rule 1 (line 8)\n');
    const deny = admin("policy", "check", "--from", "laptop-1", "--to", "db-1:5432/tcp", "--json");
    expect(deny.code).toBe(1);
    expect(JSON.parse(deny.stdout)).toMatchObject({ allow: false, reason: expect.stringMatching(/default deny/) });
    const human = admin("policy", "check", "--from", "dashboard-1", "--to", "laptop-1:22");
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/^DENY dashboard-1 -> laptop-1:22: .*default deny/);
  }, 60_000);

  it("nodes revoke revokes a node (listed as revoked) and refuses an unknown name", () => {
    const r = admin("nodes", "revoke", "db-1");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^revoked\s+db-1\nserials\s+[0-9a-f]+\nlist number\s+\d+\n$/);
    const db = (adminJson("nodes", "list") as any[]).find((n) => n.name === "db-1");
    expect(db).toMatchObject({ status: "revoked", tenant: "demo" });
    const unknown = admin("nodes", "revoke", "ghost-9");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^ember: coordination server refused \(404 unknown_node\): no node named "ghost-9"\n$/);
  }, 60_000);

  it("refuses admin verbs to a node certificate, a revoked one and no certificate, without a stack trace", () => {
    const asNode = ember(["nodes", "list", "--coord", coord.url, "--state", join(mesh.dir, "laptop-1")], { env: NO_ENV });
    expect(asNode.code).toBe(2);
    expect(asNode.stderr).toMatch(/^ember: coordination server refused \(403 not_admin\): identity "laptop-1" has no role "admin"/);
    const revoked = ember(["token", "create", "--tenant", "demo", "--coord", coord.url, "--state", join(mesh.dir, "db-1")], { env: NO_ENV });
    expect(revoked.code).toBe(2);
    expect(revoked.stderr).toMatch(/^ember: coordination server refused \(401 revoked\): /);
    const none = ember(["policy", "set", DEMO_POLICY, "--coord", coord.url], { env: NO_ENV });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^ember: missing --cert, --key, --ca /);
    for (const r of [asNode, revoked, none]) { expect(r.stdout).toBe(""); expect(r.stderr).not.toMatch(STACK); }
  }, 60_000);

  it("up --enroll-only enrolls (key and certificate 0600 in the state directory) and exits; a second run refuses", () => {
    const t = adminJson("token", "create", "--tenant", "demo", "--groups", "staff");
    const dir = join(mesh.dir, "kiosk-1");
    const r = ember(["up", "--coord", coord.url, "--token", t.token, "--name", "kiosk-1", "--state", dir, "--enroll-only"], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0); // returned by itself: no daemon kept running
    expect(r.stderr).toMatch(/^enrolled as kiosk-1 \(tenant demo, certificate until \d{4}-/);
    for (const f of ["cert.pem", "key.pem"]) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, "cert.pem"), "utf8")).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect((adminJson("nodes", "list") as any[]).find((n) => n.name === "kiosk-1")).toMatchObject({ tenant: "demo", groups: ["staff"] });
    const again = ember(["up", "--coord", coord.url, "--token", t.token, "--state", dir, "--enroll-only"]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/cert\.pem exists: this state directory is already enrolled/);
    const noToken = ember(["up", "--state", join(mesh.dir, "kiosk-2"), "--enroll-only"]);
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/--enroll-only needs --token/);
  }, 60_000);
});

function flags(m: Mesh): string[] {
  return ["--cert", m.adminFlags.cert, "--key", m.adminFlags.key, "--ca", m.adminFlags.ca];
}
