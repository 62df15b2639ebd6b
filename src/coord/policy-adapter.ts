// The coordination server's view of the policy engine (src/policy): the few calls it needs, plus what it
// derives for the peer map (which names the policy mentions, the rules in wire form).
import {
  canReach, decide, EMPTY_POLICY, parseFlowSpec, parsePolicy, rulesConcerning, serializeRules,
  type CompiledPolicy, type Decision, type ParseResult, type PolicyIssue, type Principal,
} from "../policy/index.js";

export { canReach, decide, EMPTY_POLICY, parseFlowSpec, parsePolicy };
export type { CompiledPolicy, Decision, ParseResult, PolicyIssue, Principal };

/**
 * Every word of the policy source that could be an identity name, plus the nodes behind services. A node
 * whose name is here gets its own visibility class; a superset is harmless (only more classes).
 */
export function namedPrincipals(policy: CompiledPolicy): Set<string> {
  const out = new Set<string>(policy.source.toLowerCase().match(/[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?/g) ?? []);
  for (const s of Object.values(policy.services ?? {}) as { node?: string }[]) if (s?.node) out.add(s.node);
  for (const r of policy.rules) for (const sel of [r.source, r.target]) if (sel.kind === "name") out.add(sel.name);
  return out;
}

/** The rules that concern this node, as plain JSON-safe data for the map stream. */
export function rulesForWire(policy: CompiledPolicy, self: Principal): unknown {
  return serializeRules(rulesConcerning(policy, self));
}
