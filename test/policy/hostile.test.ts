// Garbage in, a clear refusal out, quickly, never a crash: binary junk, YAML bombs (aliases, anchors, deep
// nesting, the "? ? ?" shape that makes the yaml package run Node out of memory), oversized files, and a
// valid policy of about 1 MB. Time bounds here are generous (shared 2-core machine); speed is in bench/.
import { describe, expect, it } from "vitest";
import { MAX_POLICY_BYTES, parsePolicy, rulesFromWire } from "../../src/policy/index.js";

function refused(text: string): string[] {
  const t0 = performance.now();
  const r = parsePolicy(text);
  const ms = performance.now() - t0;
  expect(r.ok).toBe(false);
  expect(ms).toBeLessThan(10_000);
  if (r.ok) return [];
  for (const e of r.errors) {
    expect(e.line).toBeGreaterThanOrEqual(1);
    expect(typeof e.message).toBe("string");
  }
  expect(r.errors.length).toBeLessThanOrEqual(201);
  return r.errors.map((e) => e.message);
}

describe("hostile policy input", () => {
  it("binary junk", () => {
    let seed = 7;
    const junk = Buffer.from(new Uint8Array(256 * 1024).map(() => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));
    expect(refused(junk.toString("latin1")).length).toBeGreaterThan(0);
    expect(refused(junk.toString("utf8")).length).toBeGreaterThan(0);
    expect(refused("\u0000\u0001\u0002")[0]).toContain("NUL");
    expect(refused("\ufeff\u202e\ud800")).not.toHaveLength(0);
  });

  it("non-string input", () => {
    expect(parsePolicy(undefined as unknown as string).ok).toBe(false);
    expect(parsePolicy(42 as unknown as string).ok).toBe(false);
  });

  it("alias bombs and anchors are refused before any expansion", () => {
    const bomb = `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nrules: *c\n`;
    expect(refused(bomb)[0]).toContain("anchors (&), aliases (*) and tags (!) are not allowed");
    expect(refused(`rules:\n  - allow: &r {source: a-1, target: b-1}\n  - allow: *r\n`)[0]).toContain("not allowed");
    expect(refused(`a: ${"&x ".repeat(300_000)}b\n`)[0]).toContain("not allowed");
    expect(refused(`rules: !!binary aGVsbG8=\n`)[0]).toContain("tags");
  });

  it("deep nesting in every YAML shape", () => {
    expect(refused("[".repeat(500_000))[0]).toContain("nested deeper");
    expect(refused("{a: ".repeat(200_000))[0]).toContain("nested deeper");
    expect(refused("? ".repeat(300_000) + "a")[0]).toContain("block indicators"); // aborts Node inside yaml otherwise
    expect(refused("- ".repeat(300_000) + "a")[0]).toContain("block indicators");
    expect(refused(Array.from({ length: 200 }, (_, i) => " ".repeat(i * 2) + "- x:").join("\n"))[0]).toContain("indentation");
    expect(refused("a: ".repeat(300_000) + "b")[0]).toContain("keys on one line");
  });

  it("oversized input is refused by size, and a real ~1 MB policy still parses", () => {
    expect(refused("#".repeat(MAX_POLICY_BYTES + 1))[0]).toContain("limit");
    const rules: string[] = [];
    for (let i = 0, size = 0; size < MAX_POLICY_BYTES - 120_000; i++) {
      rules.push(`  - allow: {source: "@team-${i}", target: "@service-${i}", protocol: https, ports: [443, "8000-8100"]}   # team ${i}`);
      size += rules[i].length + 1;
    }
    const text = `version: 1\nrules:\n${rules.join("\n")}\n`;
    expect(text.length).toBeGreaterThan(800_000);
    const t0 = performance.now();
    const r = parsePolicy(text);
    expect(performance.now() - t0).toBeLessThan(30_000);
    expect(r.ok && r.policy.rules.length).toBe(rules.length);
  });

  it("10,000 keys in one map are checked for duplicates in linear time", () => {
    const services = Array.from({ length: 10_000 }, (_, i) => `  s-${i}: {node: n-${i}, port: 443}`).join("\n");
    const t0 = performance.now();
    const r = parsePolicy(`services:\n${services}\n  s-17: {node: x-1}\nrules: []\n`);
    expect(performance.now() - t0).toBeLessThan(20_000);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]).toMatchObject({ line: 10_002, message: `duplicate key "s-17" in services` });
  });

  it("thousands of errors are capped with a summary line", () => {
    const text = `rules:\n${Array.from({ length: 1000 }, () => "  - allow: {source: a-1, target: b-1, protocol: ftp}").join("\n")}\n`;
    const r = parsePolicy(text);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.errors.length).toBe(201);
      expect(r.errors[200].message).toBe("800 more issue(s) not shown");
    }
  });

  it("wire rules of the wrong shape are refused with a reason", () => {
    const good = { index: 1, line: 3, text: "t", source: { kind: "any" }, target: { kind: "group", group: "db" }, protocol: "tcp", protoMask: 1, ports: [22, 22], crossTenant: false };
    expect(rulesFromWire([good])).toEqual([good]);
    for (const [bad, why] of [
      [null, "expected a list"], [[null], "not an object"], [[{ ...good, protoMask: 9 }], "protoMask"],
      [[{ ...good, ports: [22] }], "ports"], [[{ ...good, ports: [30, 20] }], "sorted"], [[{ ...good, ports: [1, 2, 2, 3] }], "sorted"],
      [[{ ...good, ports: [22, 22], protoMask: 5 }], "exclude icmp"], [[{ ...good, source: { kind: "group", group: "A B" } }], "DNS label"],
      [[{ ...good, source: { kind: "any", extra: 1 } }], "unknown field"], [[{ ...good, target: { kind: "everyone" } }], "unknown kind"],
      [[{ ...good, crossTenant: "yes" }], "crossTenant"], [[{ ...good, protocol: "sctp" }], "protocol"], [[{ ...good, index: 0 }], "index"],
    ] as const) expect(() => rulesFromWire(bad), why).toThrow(why);
  });
});
