// Decisions: the per-flow check (first matching allow rule wins, default deny, tenants isolated unless the
// rule names both), and the reachability questions the coordination server asks to build peer maps.
// decide() allocates nothing after the first allow by a rule: decisions are shared frozen objects.
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from "./limits.js";
import { portInRanges } from "./ports.js";
import { matches } from "./selectors.js";
import type { CompiledPolicy, CompiledRule, Decision, FlowProtocol, Principal } from "./types.js";

export const REASON_DEFAULT_DENY = "default deny";
export const REASON_CROSS_TENANT = "cross-tenant flow not named by any rule";

const DEFAULT_DENY: Decision = Object.freeze({ allow: false, reason: REASON_DEFAULT_DENY });
const CROSS_TENANT_DENY: Decision = Object.freeze({ allow: false, reason: REASON_CROSS_TENANT });
const BAD_PROTOCOL: Decision = Object.freeze({ allow: false, reason: "denied: unknown flow protocol" });
const BAD_PORT: Decision = Object.freeze({ allow: false, reason: "denied: flow port outside 1-65535" });
const allowCache = new WeakMap<CompiledRule, Decision>();

function allowedBy(r: CompiledRule): Decision {
  let d = allowCache.get(r);
  if (!d) {
    d = Object.freeze({ allow: true, rule: Object.freeze({ index: r.index, line: r.line, text: r.text }), reason: `allowed by rule ${r.index} (line ${r.line})` });
    allowCache.set(r, d);
  }
  return d;
}

function flowBit(protocol: string): number {
  switch (protocol) {
    case "tcp": case "https": return PROTO_TCP;
    case "udp": return PROTO_UDP;
    case "icmp": return PROTO_ICMP;
    default: return 0;
  }
}

/**
 * The decision for one new flow from -> to. `port` is the destination port (ignored for icmp; a tcp/udp flow
 * without a port matches only rules that allow every port). An https flow is a TCP flow.
 */
export function decide(policy: CompiledPolicy, from: Principal, to: Principal, port: number | undefined, protocol: FlowProtocol): Decision {
  const bit = flowBit(protocol);
  if (bit === 0) return BAD_PROTOCOL;
  const ported = bit !== PROTO_ICMP;
  if (ported && port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) return BAD_PORT;
  const sameTenant = from.tenant === to.tenant;
  const rules = policy.rules;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i];
    if ((r.protoMask & bit) === 0) continue;
    if (ported && r.ports !== null && (port === undefined || !portInRanges(r.ports, port))) continue;
    if (!sameTenant && !r.crossTenant) continue;
    if (!matches(r.source, from) || !matches(r.target, to)) continue;
    return allowedBy(r);
  }
  return sameTenant ? DEFAULT_DENY : CROSS_TENANT_DENY;
}

/** Does any rule allow from -> to on some port and protocol? (Every compiled rule allows at least one.) */
export function canReach(policy: CompiledPolicy, from: Principal, to: Principal): boolean {
  const sameTenant = from.tenant === to.tenant;
  for (const r of policy.rules) {
    if ((sameTenant || r.crossTenant) && matches(r.source, from) && matches(r.target, to)) return true;
  }
  return false;
}

/** The principals self may reach or be reached by, in the order given; never self. */
export function visiblePeers(policy: CompiledPolicy, self: Principal, all: Principal[]): Principal[] {
  const asSource = policy.rules.filter((r) => matches(r.source, self));
  const asTarget = policy.rules.filter((r) => matches(r.target, self));
  const out: Principal[] = [];
  if (asSource.length === 0 && asTarget.length === 0) return out;
  for (const p of all) {
    if (p.name === self.name && p.tenant === self.tenant) continue;
    if (sees(asSource, p, self, "target") || sees(asTarget, p, self, "source")) out.push(p);
  }
  return out;
}

function sees(rules: CompiledRule[], p: Principal, self: Principal, side: "source" | "target"): boolean {
  const sameTenant = p.tenant === self.tenant;
  for (const r of rules) if ((sameTenant || r.crossTenant) && matches(r[side], p)) return true;
  return false;
}

/** The rules where self can be the source or the target: what a node receives to re-check its own flows. */
export function rulesConcerning(policy: CompiledPolicy, self: Principal): CompiledRule[] {
  return policy.rules.filter((r) => matches(r.source, self) || matches(r.target, self));
}
