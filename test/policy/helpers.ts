// Principals and a strict parse helper for the policy tests.
import { expect } from "vitest";
import { parsePolicy, type CompiledPolicy, type ParseContext, type PolicyIssue, type Principal } from "../../src/policy/index.js";

export const P = (name: string, tenant = "acme", groups: string[] = []): Principal => ({ name, tenant, groups });

/** Parses and fails the test (showing the issues) unless the policy is valid. */
export function compile(text: string, ctx?: ParseContext): CompiledPolicy {
  const r = parsePolicy(text, ctx);
  if (!r.ok) expect.fail(`policy refused:\n${r.errors.map((e) => `${e.line}: ${e.message}`).join("\n")}`);
  return r.policy;
}

/** Parses a policy that must be refused; returns its errors and warnings. */
export function refuse(text: string, ctx?: ParseContext): { errors: PolicyIssue[]; warnings: PolicyIssue[] } {
  const r = parsePolicy(text, ctx);
  if (r.ok) expect.fail(`policy accepted, expected errors; warnings: ${JSON.stringify(r.warnings)}`);
  return r;
}

export function resolver(...ps: Principal[]): (name: string) => Principal | undefined {
  const m = new Map(ps.map((p) => [p.name, p]));
  return (n) => m.get(n);
}
