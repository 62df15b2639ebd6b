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
 * Rules by target key, for policies too large to scan: a flow's candidates are the rules whose target is
 * "*", its tenant, its name or one of its groups. Each list keeps file order, so the earliest match over the
 * lists is the rule a full scan would find. Compiled policies are never mutated, so the index is cached.
 */
interface RuleIndex {
  any: CompiledRule[];
  byTenant: Map<string, CompiledRule[]>;
  byName: Map<string, CompiledRule[]>;
  byGroup: Map<string, CompiledRule[]>;
}
const INDEX_FROM_RULES = 16;
const indexCache = new WeakMap<CompiledRule[], RuleIndex>();

function indexOf(rules: CompiledRule[]): RuleIndex {
  let idx = indexCache.get(rules);
  if (idx) return idx;
  idx = { any: [], byTenant: new Map(), byName: new Map(), byGroup: new Map() };
  const add = (m: Map<string, CompiledRule[]>, k: string, r: CompiledRule) => { const l = m.get(k); if (l) l.push(r); else m.set(k, [r]); };
  for (const r of rules) {
    const t = r.target;
    if (t.kind === "any") idx.any.push(r);
    else if (t.kind === "tenant") add(idx.byTenant, t.tenant, r);
    else if (t.kind === "name") add(idx.byName, t.name, r);
    else if (t.kind === "group") add(idx.byGroup, t.group, r);
  }
  indexCache.set(rules, idx);
  return idx;
}

/** The first rule of `list` before position `limit` (file order) that allows the flow; bit 0 = any protocol/port. */
function scan(list: CompiledRule[] | undefined, limit: number, from: Principal, to: Principal, port: number | undefined, bit: number, sameTenant: boolean): CompiledRule | undefined {
  if (list === undefined) return undefined;
  for (let i = 0; i < list.length; i++) {
    const r = list[i];
    if (r.index >= limit) return undefined;
    if (bit !== 0) {
      if ((r.protoMask & bit) === 0) continue;
      if (bit !== PROTO_ICMP && r.ports !== null && (port === undefined || !portInRanges(r.ports, port))) continue;
    }
    if (!sameTenant && !r.crossTenant) continue;
    if (!matches(r.source, from) || !matches(r.target, to)) continue;
    return r;
  }
  return undefined;
}

/** The earliest rule allowing the flow (bit 0: any protocol and port), without allocating. */
function firstAllowing(policy: CompiledPolicy, from: Principal, to: Principal, port: number | undefined, bit: number): CompiledRule | undefined {
  const rules = policy.rules;
  const sameTenant = from.tenant === to.tenant;
  if (rules.length < INDEX_FROM_RULES) return scan(rules, Infinity, from, to, port, bit, sameTenant);
  const idx = indexOf(rules);
  let best = scan(idx.any, Infinity, from, to, port, bit, sameTenant);
  let limit = best ? best.index : Infinity;
  let r = scan(idx.byTenant.get(to.tenant), limit, from, to, port, bit, sameTenant);
  if (r) { best = r; limit = r.index; }
  r = scan(idx.byName.get(to.name), limit, from, to, port, bit, sameTenant);
  if (r) { best = r; limit = r.index; }
  const groups = to.groups;
  for (let g = 0; g < groups.length; g++) {
    r = scan(idx.byGroup.get(groups[g]), limit, from, to, port, bit, sameTenant);
    if (r) { best = r; limit = r.index; }
  }
  return best;
}

/**
 * The decision for one new flow from -> to. `port` is the destination port (ignored for icmp; a tcp/udp flow
 * without a port matches only rules that allow every port). An https flow is a TCP flow.
 */
export function decide(policy: CompiledPolicy, from: Principal, to: Principal, port: number | undefined, protocol: FlowProtocol): Decision {
  const bit = flowBit(protocol);
  if (bit === 0) return BAD_PROTOCOL;
  if (bit !== PROTO_ICMP && port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) return BAD_PORT;
  const r = firstAllowing(policy, from, to, port, bit);
  if (r) return allowedBy(r);
  return from.tenant === to.tenant ? DEFAULT_DENY : CROSS_TENANT_DENY;
}

/** Does any rule allow from -> to on some port and protocol? (Every compiled rule allows at least one.) */
export function canReach(policy: CompiledPolicy, from: Principal, to: Principal): boolean {
  return firstAllowing(policy, from, to, undefined, 0) !== undefined;
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

/**
 * The rules where self can be the source or the target: what a node receives to re-check its own flows. A node
 * with a person logged in is the source as that person (`outbound`) and the target as itself (`inbound`).
 */
export function rulesConcerning(policy: CompiledPolicy, self: Principal, inbound: Principal = self): CompiledRule[] {
  return policy.rules.filter((r) => matches(r.source, self) || matches(r.target, inbound));
}
