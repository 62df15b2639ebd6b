// The node's own per-flow decisions: rules from the peer map (wire form, checked), decided with the
// server's code; a rule set that fails the check is replaced by none (fail closed).
import { describe, expect, it } from "vitest";
import { rulesConcerning, serializeRules, rulesFromWire, REASON_DEFAULT_DENY } from "../../src/policy/index.js";
import { FlowPolicy, describeFlow } from "../../src/node/flow-policy.js";
import { compile, P } from "../policy/helpers.js";

const laptop = P("laptop-1", "acme", ["eng"]);
const dash = P("dashboard-1", "acme", ["web"]);
const other = P("intruder", "globex", ["eng"]);

describe("FlowPolicy", () => {
  const policy = compile(`rules:
  - allow: {source: "@eng", target: "@web", protocol: https}
`);
  // What the dashboard's map carries: the rules concerning it, through the wire codec.
  const wire = JSON.parse(JSON.stringify(serializeRules(rulesConcerning(policy, dash))));

  it("decides flows from the map's rules, naming the deciding rule; default deny otherwise", () => {
    const fp = new FlowPolicy();
    expect(fp.decide({ from: laptop, to: dash, port: 443, protocol: "tcp" }).allow).toBe(false); // no rules yet
    expect(fp.setRules(rulesFromWire(wire))).toBe(true);
    expect(fp.setRules(rulesFromWire(wire))).toBe(false); // unchanged: live flows need no re-check
    const d = fp.decide({ from: laptop, to: dash, port: 443, protocol: "https" });
    expect(d).toMatchObject({ allow: true, reason: "allowed by rule 1 (line 2)" });
    expect(fp.decide({ from: laptop, to: dash, port: 22, protocol: "tcp" })).toEqual({ allow: false, reason: REASON_DEFAULT_DENY });
    expect(fp.decide({ from: other, to: dash, port: 443, protocol: "tcp" }).reason).toMatch(/cross-tenant/);
    expect(describeFlow({ from: laptop, to: dash, port: 443, protocol: "tcp" })).toBe("laptop-1.acme -> dashboard-1.acme:443/tcp");
  });

  it("an emptied rule set denies what was allowed", () => {
    const fp = new FlowPolicy();
    fp.setRules(rulesFromWire(wire));
    expect(fp.setRules([])).toBe(true);
    expect(fp.decide({ from: laptop, to: dash, port: 443, protocol: "tcp" }).allow).toBe(false);
  });

  it("rules that fail the wire check are refused with the field named", () => {
    const bad = JSON.parse(JSON.stringify(wire));
    bad[0].source = { kind: "name", name: "Not A Label" };
    expect(() => rulesFromWire(bad)).toThrow(/rule 0: source.name must be a lowercase DNS label/);
  });
});
