// The TUN data plane's per-pair table must say exactly what decide() says: a port is in the table's ranges
// iff decide() allows that flow, and icmp iff decide() allows an icmp flow, for random policies and principals.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { decide, inboundFirewallTable, parsePolicy, type CompiledPolicy, type Principal } from "../../src/policy/index.js";
import { FlowPolicy } from "../../src/node/flow-policy.js";
import { rulesConcerning } from "../../src/policy/index.js";
import { compile, P } from "./helpers.js";

const NAMES = ["a", "b", "c"];
const TENANTS = ["t1", "t2"];
const GROUPS = ["g1", "g2"];
// Ports around the edges of the ranges the generator writes, plus the extremes.
const SAMPLE_PORTS = [1, 2, 21, 22, 23, 79, 80, 81, 442, 443, 444, 999, 1000, 1500, 2000, 2001, 8080, 65534, 65535];

const selector = fc.oneof(
  fc.constant(`"*"`),
  fc.constantFrom(...NAMES),
  fc.tuple(fc.constantFrom(...NAMES), fc.constantFrom(...TENANTS)).map(([n, t]) => `${n}.${t}`),
  fc.constantFrom(...GROUPS).map((g) => `"@${g}"`),
  fc.tuple(fc.constantFrom(...GROUPS), fc.constantFrom(...TENANTS)).map(([g, t]) => `"@${g}.${t}"`),
  fc.constantFrom(...TENANTS).map((t) => `"tenant:${t}"`),
);
const portEntry = fc.oneof(fc.constantFrom(22, 80, 443, 8080, 65535, 1), fc.constantFrom('"1000-2000"', '"21-23"', '"443-444"', '"1-80"'));
const rule = fc.record({
  source: selector,
  target: selector,
  protocol: fc.constantFrom(undefined, "tcp", "udp", "https", "icmp", "any"),
  ports: fc.option(fc.array(portEntry, { minLength: 1, maxLength: 3 }), { nil: undefined }),
}).map((r) => {
  const parts = [`source: ${r.source}`, `target: ${r.target}`];
  if (r.protocol) parts.push(`protocol: ${r.protocol}`);
  if (r.ports && r.protocol !== "icmp") parts.push(`ports: [${r.ports.join(", ")}]`);
  return `  - allow: {${parts.join(", ")}}`;
});
const principal = fc.record({
  name: fc.constantFrom(...NAMES),
  tenant: fc.constantFrom(...TENANTS),
  groups: fc.subarray(GROUPS),
});

function inTable(ranges: Array<[number, number]>, port: number): boolean {
  return ranges.some(([lo, hi]) => lo <= port && port <= hi);
}

function agrees(policy: CompiledPolicy, from: Principal, to: Principal): void {
  const t = inboundFirewallTable(policy, from, to);
  for (const port of SAMPLE_PORTS) {
    expect(inTable(t.tcp, port), `tcp ${port}`).toBe(decide(policy, from, to, port, "tcp").allow);
    expect(inTable(t.udp, port), `udp ${port}`).toBe(decide(policy, from, to, port, "udp").allow);
  }
  expect(t.icmp).toBe(decide(policy, from, to, undefined, "icmp").allow);
}

describe("inboundFirewallTable", () => {
  it("agrees with decide() for random policies, principals and sampled ports", () => {
    fc.assert(fc.property(fc.array(rule, { minLength: 0, maxLength: 6 }), principal, principal, fc.integer({ min: 1, max: 65535 }), (rules, from, to, extraPort) => {
      const text = `version: 1\nrules:\n${rules.join("\n")}\n`;
      const parsed = parsePolicy(rules.length ? text : "version: 1\nrules: []\n");
      fc.pre(parsed.ok); // a random list may repeat a rule, which the parser refuses as a duplicate
      if (!parsed.ok) return;
      const policy = parsed.policy;
      agrees(policy, from, to);
      const t = inboundFirewallTable(policy, from, to);
      expect(inTable(t.tcp, extraPort)).toBe(decide(policy, from, to, extraPort, "tcp").allow);
      // Ranges are sorted, merged and inside 1-65535, as the addon expects.
      for (const list of [t.tcp, t.udp]) for (let i = 0; i < list.length; i++) {
        expect(list[i][0]).toBeGreaterThanOrEqual(1);
        expect(list[i][1]).toBeLessThanOrEqual(65535);
        expect(list[i][0]).toBeLessThanOrEqual(list[i][1]);
        if (i > 0) expect(list[i][0]).toBeGreaterThan(list[i - 1][1] + 1);
      }
    }), { numRuns: 400 });
  });

  it("keeps tenants apart unless a rule names both, and icmp only from icmp or portless any rules", () => {
    const p = compile(`rules:
  - allow: {source: "*", target: "*", protocol: tcp, ports: [22]}
  - allow: {source: "tenant:t1", target: db.t2, protocol: any, ports: [5432]}
  - allow: {source: "@ops", target: db, protocol: icmp}
  - allow: {source: "@ops", target: db, protocol: udp, ports: ["1000-2000", 2001]}
`);
    const ops = P("ops-1", "t2", ["ops"]);
    const db = P("db", "t2");
    const laptop = P("laptop", "t1");
    expect(inboundFirewallTable(p, laptop, db)).toEqual({ tcp: [[5432, 5432]], udp: [[5432, 5432]], icmp: false });
    expect(inboundFirewallTable(p, ops, db)).toEqual({ tcp: [[22, 22]], udp: [[1000, 2001]], icmp: true });
    expect(inboundFirewallTable(p, db, laptop)).toEqual({ tcp: [], udp: [], icmp: false });
    const any = compile(`rules:\n  - allow: {source: "*", target: "*"}\n`);
    expect(inboundFirewallTable(any, ops, db)).toEqual({ tcp: [[1, 65535]], udp: [[1, 65535]], icmp: true });
  });

  it("is what FlowPolicy hands the data plane for a pair, from the rules in the node's map", () => {
    const policy = compile(`rules:\n  - allow: {source: "@eng", target: "@web", protocol: https}\n`);
    const laptop = P("laptop-1", "acme", ["eng"]);
    const dash = P("dashboard-1", "acme", ["web"]);
    const fp = new FlowPolicy();
    expect(fp.inboundTable(laptop, dash)).toEqual({ tcp: [], udp: [], icmp: false });
    fp.setRules(rulesConcerning(policy, dash));
    expect(fp.inboundTable(laptop, dash)).toEqual({ tcp: [[443, 443]], udp: [], icmp: false });
  });
});
