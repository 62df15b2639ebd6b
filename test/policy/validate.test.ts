// Validation before apply: each kind of mistake is refused with the line it is on; duplicates are errors,
// shadowed rules warnings; embedded tests run against real principals and name what decided.
import { describe, expect, it } from "vitest";
import { parsePolicy, type Principal } from "../../src/policy/index.js";
import { compile, P, refuse, resolver } from "./helpers.js";

/** The single error of a refused policy, as "line: message". */
function only(text: string, ctx?: Parameters<typeof refuse>[1]): { line: number; message: string } {
  const { errors } = refuse(text, ctx);
  expect(errors, JSON.stringify(errors)).toHaveLength(1);
  return { line: errors[0].line, message: errors[0].message };
}

const head = "version: 1\nrules:\n"; // rules start on line 3

describe("validation, with line numbers", () => {
  it("YAML syntax errors", () => {
    const e = refuse(`${head}  - allow: {source: "@eng", target: [\n`).errors;
    expect(e[0].line).toBe(4);
    expect(e[0].message).toMatch(/^YAML: /);
    const extra = refuse(`${head}  - allow: {source: a-1, target: b-1}}\n  - allow: {source: a-1, target: c-1}\n`).errors;
    expect(extra[0]).toMatchObject({ line: 3, column: 38, message: expect.stringContaining("Unexpected flow-map-end") });
    expect(extra.length).toBeLessThanOrEqual(2); // follow-up noise is cut to the first error per line
    expect(only(`version: 1\nversion: 1\nrules: []\n`)).toMatchObject({ line: 2, message: expect.stringContaining(`duplicate key "version"`) });
  });

  it("unquoted * and @ get a hint to quote them", () => {
    expect(only(`${head}  - allow: {source: *, target: db-1}\n`)).toMatchObject({ line: 3, message: expect.stringContaining(`quote the selector ("*")`) });
    expect(only(`${head}  - allow: {source: @eng, target: db-1}\n`)).toMatchObject({ line: 3, message: expect.stringContaining("must be quoted") });
  });

  it("unknown keys at every level", () => {
    expect(only(`version: 1\nrulez: []\n`)).toMatchObject({ line: 2, message: expect.stringContaining(`unknown key "rulez"`) });
    expect(only(`${head}  - allow: {source: a-1, target: b-1}\n    why: because\n`)).toMatchObject({ line: 4, message: expect.stringContaining(`unknown key "why"`) });
    expect(only(`${head}  - allow: {source: a-1, target: b-1, port: [22]}\n`)).toMatchObject({ line: 3, message: expect.stringContaining(`unknown key "port"`) });
    expect(only(`${head}  - deny: {source: a-1, target: b-1}\n`)).toMatchObject({ line: 3, message: expect.stringContaining("rules only allow") });
    expect(only(`services:\n  web: {node: a-1, prot: tcp}\nrules: []\n`)).toMatchObject({ line: 2, message: expect.stringContaining(`unknown key "prot"`) });
    expect(only(`${head}  - allow: {source: a-1, target: b-1}\ntests:\n  - {from: a-1, to: "b-1:22", expect: allow, note: x}\n`)).toMatchObject({ line: 5 });
  });

  it("unknown groups, against the declared list and the caller's known groups", () => {
    const text = `version: 1\ngroups: [eng]\nrules:\n  - allow: {source: "@eng", target: "@dbs"}\n`;
    expect(only(text)).toMatchObject({ line: 4, message: expect.stringContaining(`unknown group "dbs"`) });
    expect(compile(text, { knownGroups: new Set(["dbs"]) }).rules).toHaveLength(1);
    const undeclared = `${head}  - allow: {source: "@eng", target: "@dbz"}\n`;
    expect(only(undeclared, { knownGroups: new Set(["eng", "dbs"]) })).toMatchObject({ line: 3, message: expect.stringContaining(`unknown group "dbz"`) });
    expect(compile(undeclared).rules).toHaveLength(1); // nothing to check against: any group is fine
  });

  it("unknown services and services that cannot match", () => {
    const svc = `services:\n  web: {node: web-1, port: 443, protocol: https}\nrules:\n`;
    expect(only(`${svc}  - allow: {source: a-1, target: "service:wbe"}\n`)).toMatchObject({ line: 4, message: expect.stringContaining(`unknown service "wbe"`) });
    expect(only(`${svc}  - allow: {source: a-1, target: "service:web", protocol: udp}\n`)).toMatchObject({ line: 4, message: expect.stringContaining("can never match") });
    expect(only(`${svc}  - allow: {source: a-1, target: "service:web", ports: [80]}\n`)).toMatchObject({ line: 4, message: expect.stringContaining("can never match") });
    expect(only(`${svc}  - allow: {source: "service:web", target: a-1}\n`)).toMatchObject({ line: 4, message: expect.stringContaining("a service is a destination") });
    expect(only(`services:\n  web: {port: 443}\nrules: []\n`)).toMatchObject({ line: 2, message: expect.stringContaining("has no node") });
    expect(only(`services:\n  web: {node: web-1, port: 7, protocol: icmp}\nrules: []\n`)).toMatchObject({ line: 2, message: expect.stringContaining("icmp has no ports") });
    expect(only(`services:\n  web: {node: web-1, port: "80-90"}\nrules: []\n`)).toMatchObject({ line: 2, message: expect.stringContaining("one port") });
  });

  it("bad ports: 0, above 65535, reversed ranges, non-integers, empty lists, ports with icmp", () => {
    const rule = (ports: string, proto = "tcp") => `${head}  - allow: {source: a-1, target: b-1, protocol: ${proto},\n      ports: ${ports}}\n`;
    for (const [ports, msg] of [
      ["[0]", "outside 1-65535"], ["[65536]", "outside 1-65535"], [`["9000-8000"]`, "reversed"], ["[22.5]", "not an integer"],
      [`["ssh"]`, "not a number"], ["[true]", "not a number"], ["[]", "empty ports list"], [`["1-70000"]`, "outside 1-65535"], ["[-1]", "outside"],
    ]) expect(only(rule(ports)), ports).toMatchObject({ line: 4, message: expect.stringContaining(msg) });
    expect(only(rule("[8]", "icmp"))).toMatchObject({ line: 4, message: expect.stringContaining("icmp has no ports") });
    expect(compile(rule(`[22, "8000-8100", "443"]`)).rules[0].ports).toEqual([22, 22, 443, 443, 8000, 8100]);
  });

  it("bad protocols, selectors and versions", () => {
    expect(only(`${head}  - allow: {source: a-1, target: b-1, protocol: sctp}\n`)).toMatchObject({ line: 3, message: expect.stringContaining(`bad protocol "sctp"`) });
    expect(only(`${head}  - allow: {source: Bad_Name, target: b-1}\n`)).toMatchObject({ line: 3, message: expect.stringContaining("bad selector") });
    expect(only(`${head}  - allow: {source: a-1, target: "tenant:"}\n`)).toMatchObject({ line: 3, message: expect.stringContaining("bad tenant") });
    expect(only(`${head}  - allow: {source: a-1}\n`)).toMatchObject({ line: 3, message: expect.stringContaining("missing target") });
    expect(only(`${head}  - allow: {source: [a-1, c-1], target: b-1}\n`)).toMatchObject({ line: 3, message: expect.stringContaining("one selector") });
    expect(only(`version: 2\nrules: []\n`)).toMatchObject({ line: 1, message: expect.stringContaining("unsupported version 2") });
    expect(only(``)).toMatchObject({ line: 1, message: expect.stringContaining("empty policy") });
    expect(only(`- just\n- a list\n`)).toMatchObject({ line: 1, message: expect.stringContaining("must be a map") });
  });

  it("reports every error of a file, each on its own line", () => {
    const { errors } = refuse(`version: 1
rules:
  - allow: {source: a-1, target: b-1, ports: [0]}
  - allow: {source: a-1, target: b-1, protocol: ftp}
  - allow: {source: "@nope", target: b-1}
`, { knownGroups: new Set(["eng"]) });
    expect(errors.map((e) => e.line)).toEqual([3, 4, 5]);
  });

  it("duplicates are errors (also when spelled differently), shadowed rules warnings", () => {
    const dup = refuse(`${head}  - allow: {source: "@eng", target: db-1, protocol: https}
  - allow: {source: "@eng", target: db-1, protocol: tcp, ports: ["443-443"]}
`);
    expect(dup.errors).toEqual([{ line: 4, message: "rule 2 duplicates rule 1 (line 3): same sources, targets, protocols and ports", severity: "error" }]);
    const r = parsePolicy(`${head}  - allow: {source: "*", target: "@db", protocol: tcp}
  - allow: {source: "@eng", target: "@db", protocol: tcp, ports: [5432]}
  - allow: {source: "@eng", target: "@db", protocol: udp, ports: [5432]}
  - allow: {source: "tenant:acme", target: "@db.acme", protocol: https}
  - allow: {source: "tenant:acme", target: "tenant:globex", protocol: https}
  - allow: {source: "@eng.acme", target: "db-1.globex", protocol: tcp, ports: [443]}
`);
    expect(r.ok).toBe(true);
    expect(r.warnings.map((w) => [w.line, w.message.slice(0, 32)])).toEqual([
      [4, "rule 2 is shadowed by rule 1 (li"],
      [6, "rule 4 is shadowed by rule 1 (li"],
      [8, "rule 6 is shadowed by rule 5 (li"],
    ]);
  });

  it("warns about names no identity has yet, and about empty rule lists", () => {
    const r = parsePolicy(`${head}  - allow: {source: ghost-1, target: "db-1.globex"}\n`, { resolve: resolver(P("db-1", "acme")) });
    expect(r.ok).toBe(true);
    expect(r.warnings.map((w) => w.line)).toEqual([3, 3]);
    expect(r.warnings[0].message).toContain(`"ghost-1" is not known`);
    expect(r.warnings[1].message).toContain(`in tenant "acme", not "globex"`);
    const empty = parsePolicy(`version: 1\n`);
    expect(empty.ok && empty.policy.rules).toEqual([]);
    expect(empty.warnings[0].message).toContain("every flow is denied");
  });
});

describe("embedded tests", () => {
  const who = resolver(P("laptop-1", "demo", ["engineering-team"]), P("dashboard-1", "demo", ["edge-dashboard"]), P("db-1", "demo", ["databases"]));
  const policy = (tests: string) => `version: 1
services:
  dashboard: {node: dashboard-1, port: 443, protocol: https}
rules:
  - allow: {source: "@engineering-team", target: "@edge-dashboard", protocol: https}
tests:
${tests}`;

  it("pass: the policy applies", () => {
    const r = parsePolicy(policy(`  - {from: laptop-1, to: "dashboard-1:443/https", expect: allow}
  - {from: laptop-1, to: "service:dashboard", expect: allow}
  - {from: laptop-1, to: "db-1:5432/tcp", expect: deny}
  - {from: dashboard-1, to: "laptop-1/icmp", expect: deny}
`), { resolve: who });
    expect(r.ok).toBe(true);
  });

  it("fail: an error on the test's line naming the rule that decided, or the default deny", () => {
    const { errors } = refuse(policy(`  - {from: laptop-1, to: "dashboard-1:443", expect: deny}
  - {from: laptop-1, to: "db-1:5432/tcp", expect: allow}
  - {from: laptop-1, to: "dashboard-1:8443", expect: allow}
`), { resolve: who });
    expect(errors.map((e) => e.line)).toEqual([7, 8, 9]);
    expect(errors[0].message).toBe(`test 1 failed: laptop-1 -> dashboard-1:443 expected deny, got allowed by rule 1 (line 5: allow: {source: "@engineering-team", target: "@edge-dashboard", protocol: https})`);
    expect(errors[1].message).toBe("test 2 failed: laptop-1 -> db-1:5432/tcp expected allow, got denied: default deny");
  });

  it("unknown identities, bad flows and bad verdicts in tests are errors; without resolve the tests are not run", () => {
    const { errors } = refuse(policy(`  - {from: ghost-1, to: "dashboard-1:443", expect: allow}
  - {from: laptop-1, to: "dashboard-1:99999", expect: allow}
  - {from: laptop-1, to: "dashboard-1:443", expect: maybe}
  - {from: laptop-1, to: "service:nope", expect: deny}
  - {from: laptop-1, expect: deny}
`), { resolve: who });
    expect(errors.map((e) => e.line)).toEqual([7, 8, 9, 10, 11]);
    expect(errors[0].message).toContain(`unknown identity "ghost-1"`);
    expect(errors[1].message).toContain("outside 1-65535");
    const unrun = parsePolicy(policy(`  - {from: laptop-1, to: "db-1:5432", expect: allow}\n`));
    expect(unrun.ok).toBe(true);
    expect(unrun.warnings[0]).toMatchObject({ line: 7, message: expect.stringContaining("not run") });
  });
});

describe("examples/policy/demo.yaml", () => {
  it("applies for the demo's identities, its tests pass, and laptop-1 -> db-1 is denied", async () => {
    const { readFileSync } = await import("node:fs");
    const { decide } = await import("../../src/policy/index.js");
    const text = readFileSync(new URL("../../examples/policy/demo.yaml", import.meta.url), "utf8");
    const laptop = P("laptop-1", "demo", ["engineering-team"]), dash = P("dashboard-1", "demo", ["edge-dashboard"]), db = P("db-1", "demo", ["databases"]);
    const alice: Principal = { name: "alice", tenant: "demo", groups: ["engineering-team"], kind: "user" };
    const resolve = (n: string) => (n === "user:alice" ? alice : resolver(laptop, dash, db)(n));
    const r = parsePolicy(text, { resolve, knownGroups: new Set(["engineering-team", "edge-dashboard", "databases"]) });
    expect(r.ok && r.warnings).toEqual([]);
    if (!r.ok) return;
    expect(decide(r.policy, laptop, dash, 443, "https").allow).toBe(true);
    expect(decide(r.policy, laptop, dash, 8100, "tcp").allow).toBe(true);
    expect(decide(r.policy, laptop, db, 5432, "tcp").allow).toBe(false);
    expect(decide(r.policy, laptop, db, 9187, "tcp").allow).toBe(true);
    expect(decide(r.policy, alice, db, 8443, "tcp").allow).toBe(true);
    expect(decide(r.policy, laptop, db, 8443, "tcp").allow).toBe(false);
    // A changed expectation makes the file refuse to apply.
    expect(parsePolicy(text.replace(`"db-1:5432/tcp", expect: deny}\n  - {from: laptop-1, to: "db-1:9187`, `"db-1:5432/tcp", expect: allow}\n  - {from: laptop-1, to: "db-1:9187`), { resolve }).ok).toBe(false);
  });
});

describe("ordinary YAML styles pass the hostile-input guard", () => {
  it("block-style rules, comments with odd characters, quoted brackets and apostrophes", () => {
    const p = compile(`# Team's policy: don't edit by hand - - - [[[[[[[[[[ & * ! @
version: 1
groups:
  - engineering-team   # it's "eng"
  - "databases"
rules:
  # Engineers reach the database's admin port.
  - allow:
      source: '@engineering-team'
      target: "@databases"
      protocol: tcp
      ports:
        - 5432
        - '9000-9010'
  - {allow: {source: "*", target: 'db-1', protocol: icmp}}
`);
    expect(p.rules.map((r) => [r.index, r.line, r.text])).toEqual([
      [1, 8, `allow: source: '@engineering-team' target: "@databases" protocol: tcp ports: - 5432 - '9000-9010'`],
      [2, 15, `{allow: {source: "*", target: 'db-1', protocol: icmp}}`],
    ]);
    expect(p.rules[0].ports).toEqual([5432, 5432, 9000, 9010]);
  });
});
