// Decisions: names, groups, services, tenants, "*", protocols (https is TCP), port ranges, icmp, default deny
// and tenant isolation; plus the peer-map questions (canReach, visiblePeers, rulesConcerning).
import { describe, expect, it } from "vitest";
import { canReach, decide, EMPTY_POLICY, REASON_CROSS_TENANT, REASON_DEFAULT_DENY, rulesConcerning, visiblePeers } from "../../src/policy/index.js";
import { compile, P } from "./helpers.js";

const laptop = P("laptop-1", "acme", ["engineering-team"]);
const dash = P("dashboard-1", "acme", ["edge-dashboard"]);
const db = P("db-1", "acme", ["databases"]);
const ext = P("ext-1", "globex", ["edge-dashboard"]);

describe("decide", () => {
  it("allows by group on listed ports and ranges, names the rule, and denies the rest by default", () => {
    const p = compile(`version: 1
rules:
  - allow: {source: "@engineering-team", target: "@edge-dashboard", protocol: tcp, ports: [443, "8000-8100"]}
`);
    for (const port of [443, 8000, 8050, 8100]) expect(decide(p, laptop, dash, port, "tcp").allow).toBe(true);
    for (const port of [442, 444, 7999, 8101, 22]) expect(decide(p, laptop, dash, port, "tcp")).toEqual({ allow: false, reason: REASON_DEFAULT_DENY });
    expect(decide(p, laptop, dash, 443, "udp").allow).toBe(false);
    expect(decide(p, dash, laptop, 443, "tcp").allow).toBe(false); // rules are directional
    expect(decide(p, laptop, db, 443, "tcp").allow).toBe(false);
    const d = decide(p, laptop, dash, 8000, "tcp");
    expect(d.rule).toEqual({ index: 1, line: 3, text: `allow: {source: "@engineering-team", target: "@edge-dashboard", protocol: tcp, ports: [443, "8000-8100"]}` });
    expect(d.reason).toBe("allowed by rule 1 (line 3)");
  });

  it("first matching rule decides", () => {
    const p = compile(`rules:
  - allow: {source: laptop-1, target: db-1, protocol: tcp, ports: [5432]}
  - allow: {source: "@engineering-team", target: "@databases", protocol: tcp}
`);
    expect(decide(p, laptop, db, 5432, "tcp").rule?.index).toBe(1);
    expect(decide(p, laptop, db, 22, "tcp").rule?.index).toBe(2);
  });

  it("treats https as TCP: an https rule (443 by default) matches tcp flows on its ports, a tcp rule matches https flows", () => {
    const p = compile(`rules:
  - allow: {source: laptop-1, target: dashboard-1, protocol: https}
  - allow: {source: laptop-1, target: db-1, protocol: tcp, ports: [443]}
`);
    expect(decide(p, laptop, dash, 443, "tcp").allow).toBe(true);
    expect(decide(p, laptop, dash, 443, "https").allow).toBe(true);
    expect(decide(p, laptop, dash, 8443, "https").allow).toBe(false); // https without ports means 443 only
    expect(decide(p, laptop, dash, 443, "udp").allow).toBe(false);
    expect(decide(p, laptop, db, 443, "https").allow).toBe(true);
    expect(p.rules[0].ports).toEqual([443, 443]);
  });

  it("protocol any covers tcp, udp and icmp; with ports it covers only tcp and udp", () => {
    const p = compile(`rules:
  - allow: {source: laptop-1, target: db-1, protocol: any}
  - allow: {source: laptop-1, target: dashboard-1, ports: [53]}
`);
    for (const proto of ["tcp", "udp", "https"] as const) expect(decide(p, laptop, db, 9, proto).allow).toBe(true);
    expect(decide(p, laptop, db, undefined, "icmp").allow).toBe(true);
    expect(decide(p, laptop, dash, 53, "udp").allow).toBe(true);
    expect(decide(p, laptop, dash, 53, "tcp").allow).toBe(true);
    expect(decide(p, laptop, dash, undefined, "icmp").allow).toBe(false);
  });

  it("icmp rules match icmp flows only, and a tcp flow without a port matches only all-port rules", () => {
    const p = compile(`rules:
  - allow: {source: laptop-1, target: db-1, protocol: icmp}
  - allow: {source: laptop-1, target: dashboard-1, protocol: tcp, ports: [22]}
`);
    expect(decide(p, laptop, db, undefined, "icmp").allow).toBe(true);
    expect(decide(p, laptop, db, 22, "tcp").allow).toBe(false);
    expect(decide(p, laptop, dash, undefined, "tcp").allow).toBe(false);
    expect(decide(p, laptop, dash, 22, "tcp").allow).toBe(true);
  });

  it("fails closed on a flow it cannot judge", () => {
    const p = compile(`rules:\n  - allow: {source: "*", target: "*"}\n`);
    expect(decide(p, laptop, db, 70000, "tcp").allow).toBe(false);
    expect(decide(p, laptop, db, 0, "tcp").allow).toBe(false);
    expect(decide(p, laptop, db, 1.5, "udp").allow).toBe(false);
    expect(decide(p, laptop, db, 80, "sctp" as "tcp").allow).toBe(false);
    expect(decide(p, laptop, db, 80, "tcp").allow).toBe(true);
  });

  it("services: the rule targets the service's node, port and protocol", () => {
    const p = compile(`services:
  dashboard: {node: dashboard-1, port: 8443, protocol: https}
  dns: {node: db-1, port: 53, protocol: udp}
rules:
  - allow: {source: laptop-1, target: "service:dashboard"}
  - allow: {source: "@engineering-team", target: "service:dns", protocol: any}
`);
    expect(decide(p, laptop, dash, 8443, "tcp").rule?.index).toBe(1);
    expect(decide(p, laptop, dash, 443, "tcp").allow).toBe(false);
    expect(decide(p, laptop, db, 8443, "tcp").allow).toBe(false);
    expect(decide(p, laptop, db, 53, "udp").rule?.index).toBe(2);
    expect(decide(p, laptop, db, 53, "tcp").allow).toBe(false);
    expect(p.rules[0].target).toEqual({ kind: "name", name: "dashboard-1", service: "dashboard" });
  });

  it('"*" is any identity of the same tenant', () => {
    const p = compile(`rules:\n  - allow: {source: "*", target: db-1, protocol: tcp, ports: [5432]}\n`);
    expect(decide(p, laptop, db, 5432, "tcp").allow).toBe(true);
    expect(decide(p, dash, db, 5432, "tcp").allow).toBe(true);
    expect(decide(p, P("spy", "globex"), db, 5432, "tcp")).toEqual({ allow: false, reason: REASON_CROSS_TENANT });
  });

  it("denies cross-tenant flows unless the deciding rule names both tenants", () => {
    const p = compile(`rules:
  - allow: {source: "@engineering-team", target: "@edge-dashboard", protocol: https}
  - allow: {source: "tenant:acme", target: "tenant:globex", protocol: tcp, ports: [22]}
  - allow: {source: "laptop-1.acme", target: "@edge-dashboard.globex", protocol: tcp, ports: [8080]}
  - allow: {source: "tenant:acme", target: "@databases", protocol: tcp, ports: [5432]}
`);
    // Same groups, different tenants: rule 1 names no tenant, so it cannot decide.
    expect(decide(p, laptop, ext, 443, "tcp")).toEqual({ allow: false, reason: REASON_CROSS_TENANT });
    expect(decide(p, laptop, dash, 443, "tcp").allow).toBe(true);
    expect(decide(p, laptop, ext, 22, "tcp").rule?.index).toBe(2);
    expect(decide(p, ext, laptop, 22, "tcp").allow).toBe(false); // only acme -> globex was named
    expect(decide(p, laptop, ext, 8080, "tcp").rule?.index).toBe(3);
    expect(decide(p, P("laptop-1", "initech", ["engineering-team"]), ext, 8080, "tcp").allow).toBe(false);
    // Rule 4 names one tenant only: within acme it works, a globex database is out of reach.
    expect(decide(p, laptop, db, 5432, "tcp").rule?.index).toBe(4);
    expect(decide(p, laptop, P("db-9", "globex", ["databases"]), 5432, "tcp").reason).toBe(REASON_CROSS_TENANT);
    expect(p.rules.map((r) => r.crossTenant)).toEqual([false, true, true, false]);
  });

  it("EMPTY_POLICY denies everything", () => {
    expect(decide(EMPTY_POLICY, laptop, dash, 443, "tcp")).toEqual({ allow: false, reason: REASON_DEFAULT_DENY });
    expect(canReach(EMPTY_POLICY, laptop, dash)).toBe(false);
    expect(visiblePeers(EMPTY_POLICY, laptop, [dash, db])).toEqual([]);
  });
});

describe("peer-map questions", () => {
  const p = compile(`rules:
  - allow: {source: "@engineering-team", target: "@edge-dashboard", protocol: https}
  - allow: {source: dashboard-1, target: db-1, protocol: tcp, ports: [5432]}
  - allow: {source: "tenant:acme", target: "tenant:globex", protocol: icmp}
`);
  const hr = P("hr-1", "acme", ["hr"]);
  const all = [laptop, dash, db, ext, hr];

  it("canReach is directional and ignores ports and protocols", () => {
    expect(canReach(p, laptop, dash)).toBe(true);
    expect(canReach(p, dash, laptop)).toBe(false);
    expect(canReach(p, dash, db)).toBe(true);
    expect(canReach(p, laptop, db)).toBe(false);
    expect(canReach(p, hr, ext)).toBe(true);
    expect(canReach(p, ext, hr)).toBe(false);
  });

  it("visiblePeers: reach or be reached, never self, symmetric", () => {
    const names = (self: typeof laptop) => visiblePeers(p, self, all).map((x) => x.name);
    expect(names(laptop)).toEqual(["dashboard-1", "ext-1"]);
    expect(names(dash)).toEqual(["laptop-1", "db-1", "ext-1"]);
    expect(names(db)).toEqual(["dashboard-1", "ext-1"]);
    expect(names(ext)).toEqual(["laptop-1", "dashboard-1", "db-1", "hr-1"]);
    expect(names(hr)).toEqual(["ext-1"]);
    for (const a of all) for (const b of all) {
      expect(visiblePeers(p, a, all).includes(b)).toBe(visiblePeers(p, b, all).includes(a));
    }
  });

  it("rulesConcerning: the rules where the node can be source or target", () => {
    expect(rulesConcerning(p, laptop).map((r) => r.index)).toEqual([1, 3]);
    expect(rulesConcerning(p, db).map((r) => r.index)).toEqual([2, 3]);
    expect(rulesConcerning(p, ext).map((r) => r.index)).toEqual([1, 3]);
    expect(rulesConcerning(p, P("x", "initech")).map((r) => r.index)).toEqual([]);
  });
});

describe("rules on the wire", () => {
  it("a node deciding on its own rules (after JSON) agrees with the server for every flow to or from it", async () => {
    const { serializeRules, rulesFromWire, policyFromRules } = await import("../../src/policy/index.js");
    const p = compile(`services:
  dash: {node: dashboard-1, port: 443, protocol: https}
rules:
  - allow: {source: "@engineering-team", target: "service:dash"}
  - allow: {source: "*", target: db-1, protocol: tcp, ports: ["5000-5999"]}
  - allow: {source: "tenant:acme", target: "@edge-dashboard.globex", protocol: icmp}
  - allow: {source: dashboard-1, target: "@databases", protocol: udp}
`);
    const all = [laptop, dash, db, ext];
    const flows: [number | undefined, "tcp" | "udp" | "icmp" | "https"][] = [[443, "tcp"], [443, "https"], [5432, "tcp"], [6000, "tcp"], [53, "udp"], [undefined, "icmp"]];
    for (const self of all) {
      const wire = JSON.parse(JSON.stringify(serializeRules(rulesConcerning(p, self))));
      const local = policyFromRules(rulesFromWire(wire));
      for (const other of all) for (const [port, proto] of flows) {
        expect(decide(local, other, self, port, proto)).toEqual(decide(p, other, self, port, proto));
        expect(decide(local, self, other, port, proto)).toEqual(decide(p, self, other, port, proto));
      }
    }
  });
});

describe("indexed decisions agree with a plain first-match scan", () => {
  it("random policies of 60 rules, random principals and flows", async () => {
    const { policyFromRules, rulesFromWire } = await import("../../src/policy/index.js");
    let seed = 12345;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    const pick = <T,>(xs: readonly T[]): T => xs[rnd(xs.length)];
    const sels = [
      { kind: "any" }, { kind: "tenant", tenant: "t0" }, { kind: "tenant", tenant: "t1" },
      ...[0, 1, 2, 3, 4].map((g) => ({ kind: "group", group: `g${g}` })), { kind: "group", group: "g1", tenant: "t0" },
      ...[0, 1, 2, 3, 4, 5].map((n) => ({ kind: "name", name: `n${n}` })), { kind: "name", name: "n2", tenant: "t1" },
    ] as const;
    const tenantOf = (s: (typeof sels)[number]) => ("tenant" in s ? s.tenant : undefined);
    const portSets = [null, [22, 22], [80, 80, 443, 443], [8000, 8100], [1, 1024]];
    const inRanges = (r: number[], p: number) => { for (let i = 0; i < r.length; i += 2) if (p >= r[i] && p <= r[i + 1]) return true; return false; };
    const selMatch = (s: any, x: { name: string; tenant: string; groups: string[] }) =>
      s.kind === "any" || (s.kind === "tenant" ? x.tenant === s.tenant : (s.tenant === undefined || s.tenant === x.tenant) && (s.kind === "name" ? x.name === s.name : x.groups.includes(s.group)));

    for (let round = 0; round < 20; round++) {
      const wire = Array.from({ length: 60 }, (_, i) => {
        const source = pick(sels), target = pick(sels);
        const ports = pick(portSets);
        const protoMask = ports ? pick([1, 2, 3]) : pick([1, 2, 3, 4, 5, 7]);
        return { index: i + 1, line: i + 3, text: `r${i}`, source, target, protocol: "any", protoMask, ports, crossTenant: tenantOf(source) !== undefined && tenantOf(target) !== undefined };
      });
      const policy = policyFromRules(rulesFromWire(wire));
      const people = Array.from({ length: 12 }, (_, i) => P(`n${i % 6}`, `t${rnd(2)}`, [0, 1, 2, 3, 4].filter(() => rnd(3) === 0).map((g) => `g${g}`)));
      const reference = (from: typeof people[0], to: typeof people[0], port: number | undefined, bit: number) => {
        for (const r of policy.rules) {
          if (bit && !(r.protoMask & bit)) continue;
          if (bit && bit !== 4 && r.ports && (port === undefined || !inRanges(r.ports, port))) continue;
          if (from.tenant !== to.tenant && !r.crossTenant) continue;
          if (selMatch(r.source, from) && selMatch(r.target, to)) return r.index;
        }
        return undefined;
      };
      for (const from of people) for (const to of people) {
        for (let k = 0; k < 6; k++) {
          const proto = pick(["tcp", "udp", "icmp", "https"] as const);
          const port = proto === "icmp" ? undefined : pick([22, 80, 443, 8080, 9000, 60000]);
          const bit = proto === "udp" ? 2 : proto === "icmp" ? 4 : 1;
          expect(decide(policy, from, to, port, proto).rule?.index).toBe(reference(from, to, port, bit));
        }
        expect(canReach(policy, from, to)).toBe(reference(from, to, undefined, 0) !== undefined);
      }
      for (const self of people) {
        const expected = people.filter((x) => !(x.name === self.name && x.tenant === self.tenant) && (reference(self, x, undefined, 0) !== undefined || reference(x, self, undefined, 0) !== undefined));
        expect(visiblePeers(policy, self, people)).toEqual(expected);
      }
    }
  });
});
