// The policy's own tests: each names a flow and the expected verdict. They run against the compiled policy
// before it applies; a failing test is an error on the test's line naming what decided instead.
import { decide } from "./decide.js";
import type { Issues } from "./issues.js";
import type { CompiledPolicy, FlowProtocol, Principal } from "./types.js";

export interface EmbeddedTest {
  index: number;
  line: number;
  from: string;
  to: string;
  port?: number;
  protocol: FlowProtocol;
  expect: "allow" | "deny";
  /** The flow as written, for messages. */
  spec: string;
}

/** `resolve` takes an identity name, or `user:NAME` for a person (see Principal.kind). */
export function runEmbeddedTests(policy: CompiledPolicy, tests: EmbeddedTest[], resolve: (name: string) => Principal | undefined, issues: Issues): void {
  for (const t of tests) {
    const where = { line: t.line };
    const to = resolve(t.to);
    // An external connection has no identity; the edge admits it into the published service's tenant.
    const from = t.from === "external" ? (to && { name: "external", tenant: to.tenant, groups: [], kind: "external" as const }) : resolve(t.from);
    if (!from || !to) {
      issues.error(where, `test ${t.index}: unknown identity "${!from ? t.from : t.to}": a test can only name identities that exist`);
      continue;
    }
    const d = decide(policy, from, to, t.port, t.protocol);
    const got = d.allow ? "allow" : "deny";
    if (got === t.expect) continue;
    const by = d.rule ? `allowed by rule ${d.rule.index} (line ${d.rule.line}: ${d.rule.text})` : `denied: ${d.reason}`;
    issues.error(where, `test ${t.index} failed: ${t.from} -> ${t.spec} expected ${t.expect}, got ${by}`);
  }
}
