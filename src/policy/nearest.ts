// For a denied flow, the rule that comes closest to allowing it and what it would take: the "missing
// policy" diagnosis names this rule and its differences (source, target, protocol, port, tenants), so an
// operator sees "rule 3 allows @eng -> @db on 5433, the flow is to 5432" instead of a bare default deny.
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from "./limits.js";
import { portInRanges, rangesText } from "./ports.js";
import { matches, selectorText } from "./selectors.js";
import type { CompiledPolicy, CompiledRule, FlowProtocol, Principal, Selector } from "./types.js";

export interface NearestRule {
  rule: { index: number; line: number; text: string };
  /** What differs between the rule and the flow, one phrase each; empty never (the flow would be allowed). */
  differences: string[];
}

function describeSel(sel: Selector): string {
  return sel.kind === "name" ? sel.name : selectorText(sel);
}

function who(p: Principal): string {
  if (p.kind === "external") return "an external connection (no mesh identity)";
  const name = p.kind === "user" ? `user ${p.name}${p.device ? ` on ${p.device}` : ""}` : p.name;
  return `${name} (tenant ${p.tenant}${p.groups.length ? `, groups ${p.groups.join(",")}` : ", no groups"})`;
}

const BIT: Record<string, number> = { tcp: PROTO_TCP, https: PROTO_TCP, udp: PROTO_UDP, icmp: PROTO_ICMP };

/**
 * The rule with the fewest differences from the flow (ties: the earlier rule), or undefined when the policy
 * has no rules. Weights: a matching target counts most (the rule is about the right destination), then the
 * source, then protocol and port.
 */
export function nearestRule(policy: CompiledPolicy | { rules: CompiledRule[] }, from: Principal, to: Principal, port: number | undefined, protocol: FlowProtocol): NearestRule | undefined {
  let best: { score: number; r: CompiledRule; diffs: string[] } | undefined;
  const bit = BIT[protocol] ?? 0;
  for (const r of policy.rules) {
    const diffs: string[] = [];
    let score = 0;
    if (!matches(r.target, to)) { score += 4; diffs.push(`target: the rule names ${describeSel(r.target)}, the flow goes to ${who(to)}`); }
    if (!matches(r.source, from)) { score += 3; diffs.push(`source: the rule names ${describeSel(r.source)}, the flow comes from ${who(from)}`); }
    if ((r.protoMask & bit) === 0) { score += 1; diffs.push(`protocol: the rule allows ${r.protocol}, the flow is ${protocol}`); }
    if (bit !== PROTO_ICMP && r.ports !== null && (port === undefined || !portInRanges(r.ports, port))) {
      score += 1; diffs.push(`port: the rule allows ${rangesText(r.ports)}, the flow is to ${port ?? "(no port)"}`);
    }
    if (from.tenant !== to.tenant && !r.crossTenant) { score += 2; diffs.push(`tenants: the flow crosses from ${from.tenant} to ${to.tenant}, and the rule does not name both tenants`); }
    if (diffs.length === 0) continue; // it allows the flow: not a near miss (the caller asked about a denied flow)
    if (!best || score < best.score) best = { score, r, diffs };
  }
  return best && { rule: { index: best.r.index, line: best.r.line, text: best.r.text }, differences: best.diffs };
}
