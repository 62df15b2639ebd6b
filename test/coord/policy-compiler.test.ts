// The policy compiler's worker thread on its own: it returns what parsePolicy returns (with the map hub's
// named principals), runs one policy at a time with a bounded queue, and a policy that takes too long or
// exhausts the worker's heap is refused without taking the caller down; the next one gets a fresh worker.
import { afterEach, describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/policy/index.js";
import { namedPrincipals } from "../../src/coord/policy-adapter.js";
import { PolicyCompileError, PolicyCompiler } from "../../src/coord/policy-compiler.js";

const compilers: PolicyCompiler[] = [];
afterEach(async () => { await Promise.all(compilers.splice(0).map((c) => c.close())); });

function compiler(o: ConstructorParameters<typeof PolicyCompiler>[0] = {}): PolicyCompiler {
  const c = new PolicyCompiler(o);
  compilers.push(c);
  return c;
}

function manyRules(n: number): string {
  const lines = ["version: 1", "rules:"];
  for (let i = 0; i < n; i++) lines.push(`  - allow: {source: a${i}, target: b${i}}`);
  return lines.join("\n") + "\n";
}

const SMALL = 'version: 1\ngroups: [eng]\nrules:\n  - allow: {source: "@eng", target: db-1, protocol: tcp, ports: [5432]}\ntests:\n  - {from: laptop-1, to: "db-1:5432/tcp", expect: allow}\n';
const ctx = { knownGroups: ["eng"], principals: [{ name: "laptop-1", tenant: "acme", groups: ["eng"] }, { name: "db-1", tenant: "acme", groups: [] }] };

describe("policy compiler (worker thread)", () => {
  it("returns what parsePolicy returns, with the source and the map hub's named principals", async () => {
    const c = compiler();
    const out = await c.compile(SMALL, ctx);
    const direct = parsePolicy(SMALL, { knownGroups: new Set(ctx.knownGroups), resolve: (n) => ctx.principals.find((p) => p.name === n) });
    expect(out.result).toEqual(direct);
    expect(direct.ok && out.named).toEqual(direct.ok && namedPrincipals(direct.policy));
    const bad = await c.compile("rules:\n  - allow: {source: x}\n", ctx);
    expect(bad.result.ok).toBe(false);
    expect(bad.named).toBeUndefined();
  });

  it("refuses a policy over its deadline, then serves the next one with a fresh worker", async () => {
    const c = compiler();
    await c.compile(SMALL, ctx); // worker started and warm
    const err = await c.compile(manyRules(9_991), ctx, { timeoutMs: 50 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyCompileError);
    expect((err as PolicyCompileError).code).toBe("policy_timeout");
    expect((err as Error).message).toMatch(/longer than 50 ms; nothing applied/);
    expect((await c.compile(SMALL, ctx)).result.ok).toBe(true);
    expect(c.stats).toMatchObject({ timedOut: 1, workerStarts: 2 });
  }, 30_000);

  it("runs one policy at a time and refuses uploads beyond its queue", async () => {
    const c = compiler({ maxQueue: 1 });
    const first = c.compile(manyRules(2_000), ctx);
    const second = c.compile(SMALL, ctx);
    const third = c.compile(SMALL, ctx).catch((e: unknown) => e);
    expect(await third).toMatchObject({ code: "policy_busy" });
    expect((await first).result.ok).toBe(true);
    expect((await second).result.ok).toBe(true);
  }, 30_000);

  it("a policy that exhausts the worker's heap is refused; the caller's thread is untouched", async () => {
    const c = compiler({ maxHeapMb: 48 });
    await c.compile(SMALL, ctx);
    const err = await c.compile(manyRules(20_900), ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyCompileError);
    expect((err as PolicyCompileError).code).toBe("policy_check_failed");
    expect((await c.compile(SMALL, ctx)).result.ok).toBe(true);
  }, 30_000);
});
