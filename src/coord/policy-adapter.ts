// The coordination server's view of the policy engine (src/policy): the few calls it needs, plus what it
// derives for the peer map (which names the policy mentions, the rules in wire form).
import { matches as selectorMatches } from "../policy/selectors.js";
import {
  canReach, decide, EMPTY_POLICY, parseFlowSpec, parsePolicy, rulesConcerning, serializeRules,
  type CompiledPolicy, type CompiledRule, type Decision, type ParseResult, type PolicyIssue, type Principal, type Selector,
} from "../policy/index.js";

export { canReach, decide, EMPTY_POLICY, parseFlowSpec, parsePolicy };
export type { CompiledPolicy, Decision, ParseResult, PolicyIssue, Principal, Selector };
export { selectorMatches };

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

/** The groups the policy's rules name (`@group`, either side). */
export function groupsNamed(policy: CompiledPolicy): Set<string> {
  const out = new Set<string>();
  for (const r of policy.rules) for (const sel of [r.source, r.target]) if (sel.kind === "group") out.add(sel.group);
  return out;
}

/**
 * The rules that concern this node, as plain JSON-safe data for the map stream: those its flows may be decided
 * by as a source (`outbound`: the person logged in on it, else itself) and as a target (the machine).
 */
export function rulesForWire(policy: CompiledPolicy, outbound: Principal, inbound: Principal = outbound): unknown {
  return serializeRules(rulesConcerning(policy, outbound, inbound));
}

/**
 * What changed between two policies, for the map hub. Rules only allow, and every rule allows some flow, so who
 * may see whom depends only on the rules' (source, target, crossTenant): `visibility` lists the triples in one
 * policy and not the other; only pairs of principals one of them matches can change visibility. `rules` lists
 * the rules whose wire form (what a node receives) is in one policy and not the other, so only principals they
 * concern get new rules.
 */
export function policyDiff(before: CompiledPolicy, after: CompiledPolicy): { visibility: { source: Selector; target: Selector }[]; rules: CompiledRule[] } {
  const visKey = (r: CompiledRule) => JSON.stringify([r.source, r.target, r.crossTenant]);
  const wireKey = (r: CompiledRule) => JSON.stringify(serializeRules([r]));
  const symmetric = (key: (r: CompiledRule) => string) => {
    const a = new Map(before.rules.map((r) => [key(r), r]));
    const b = new Map(after.rules.map((r) => [key(r), r]));
    return [...[...a].filter(([k]) => !b.has(k)), ...[...b].filter(([k]) => !a.has(k))].map(([, r]) => r);
  };
  return { visibility: symmetric(visKey).map((r) => ({ source: r.source, target: r.target })), rules: symmetric(wireKey) };
}
