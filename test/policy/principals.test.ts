// Users and external sources in the policy engine (issue 15): a machine never satisfies a user selector and
// a user never satisfies a machine's name; groups and tenants take both; external only ever matches itself.
import { describe, expect, it } from "vitest";
import { decide, inboundFirewallTable, parsePolicy, type Principal } from "../../src/policy/index.js";
import { compile, P, refuse, resolver } from "./helpers.js";

const U = (name: string, groups: string[] = [], device = "laptop-1", tenant = "acme"): Principal => ({ name, tenant, groups, kind: "user", device });
const EXTERNAL: Principal = { name: "external", tenant: "acme", groups: [], kind: "external" };

const POLICY = `version: 1
services:
  dashboard: {node: web-1, port: 443, protocol: https}
  status-page: {node: web-1, port: 8443, protocol: https}
rules:
  - allow: {source: "user:alice", target: "service:dashboard"}
  - allow: {source: "@eng", target: db-1, protocol: tcp, ports: [5432]}
  - allow: {source: laptop-1, target: web-1, protocol: tcp, ports: [22]}
  - allow: {source: external, target: "service:status-page"}
`;

describe("user and external principals", () => {
  const policy = compile(POLICY);
  const web = P("web-1"), db = P("db-1");

  it("a user: rule takes the user on any device, never a machine of the same name", () => {
    expect(decide(policy, U("alice"), web, 443, "https").allow).toBe(true);
    expect(decide(policy, U("alice", [], "laptop-2"), web, 443, "https").allow).toBe(true);
    expect(decide(policy, P("alice"), web, 443, "https").allow).toBe(false);
    expect(decide(policy, U("bob"), web, 443, "https").allow).toBe(false);
  });

  it("a machine's name rule is never satisfied by a user, even one logged in on that machine", () => {
    expect(decide(policy, P("laptop-1"), web, 22, "tcp").allow).toBe(true);
    expect(decide(policy, U("laptop-1", [], "laptop-1"), web, 22, "tcp").allow).toBe(false);
  });

  it("groups hold users and machines alike", () => {
    expect(decide(policy, U("carol", ["eng"]), db, 5432, "tcp").allow).toBe(true);
    expect(decide(policy, P("ci-1", "acme", ["eng"]), db, 5432, "tcp").allow).toBe(true);
    expect(decide(policy, U("dave", ["ops"]), db, 5432, "tcp").allow).toBe(false);
  });

  it("external matches only rules that name it; * and groups never admit it", () => {
    expect(decide(policy, EXTERNAL, web, 8443, "https").allow).toBe(true);
    expect(decide(policy, EXTERNAL, web, 443, "https").allow).toBe(false);
    const open = compile(`version: 1\nrules:\n  - allow: {source: "*", target: "*"}\n`);
    expect(decide(open, EXTERNAL, web, 443, "tcp").allow).toBe(false);
    expect(decide(open, U("alice"), web, 443, "tcp").allow).toBe(true);
    expect(inboundFirewallTable(open, EXTERNAL, web)).toEqual({ tcp: [], udp: [], icmp: false });
  });

  it("refuses user: and external as targets, and external to anything but a service", () => {
    const t = refuse(`version: 1\nrules:\n  - allow: {source: "*", target: "user:alice"}\n`);
    expect(t.errors[0].message).toMatch(/a person is only ever a source/);
    const x = refuse(`version: 1\nrules:\n  - allow: {source: "*", target: external}\n`);
    expect(x.errors[0].message).toMatch(/external is only ever a source/);
    const n = refuse(`version: 1\nrules:\n  - allow: {source: external, target: web-1}\n`);
    expect(n.errors[0].message).toMatch(/external source may only reach a service/);
    const bad = refuse(`version: 1\nrules:\n  - allow: {source: "user:Alice", target: web-1}\n`);
    expect(bad.errors[0].message).toMatch(/bad user selector "user:Alice"/);
  });

  it("embedded tests name users as user:NAME and external connections as external", () => {
    const text = `${POLICY}tests:
  - {from: "user:alice", to: "service:dashboard", expect: allow}
  - {from: laptop-1, to: "service:dashboard", expect: deny}
  - {from: external, to: "service:status-page", expect: allow}
  - {from: external, to: "service:dashboard", expect: deny}
`;
    const resolve = (n: string) => (n === "user:alice" ? U("alice") : resolver(web, db, P("laptop-1"))(n));
    const r = parsePolicy(text, { resolve });
    expect(r.ok, JSON.stringify(!r.ok && r.errors)).toBe(true);
    const wrong = parsePolicy(text.replace("to: \"service:dashboard\", expect: deny", "to: \"service:dashboard\", expect: allow"), { resolve });
    expect(wrong.ok).toBe(false);
  });

  it("duplicate user rules are found like any other", () => {
    const r = refuse(`version: 1\nrules:\n  - allow: {source: "user:alice", target: web-1}\n  - allow: {source: "user:alice", target: web-1}\n`);
    expect(r.errors[0].message).toMatch(/duplicates rule 1/);
  });
});
