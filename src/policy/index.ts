// Access policy: allow rules over identities, groups, services and tenants; default deny; tenants isolated
// unless a rule names both. Used by the coordination server (validation, peer-map visibility, rules per
// node) and by nodes (per-flow decisions on the rules they receive). See docs/policy.md.
import { sha256Hex } from "./hash.js";
import type { CompiledPolicy } from "./types.js";

export type { CompiledPolicy, CompiledRule, Decision, FlowProtocol, ParseContext, ParseResult, PolicyIssue, Principal, Protocol, Selector, Service } from "./types.js";
export { parsePolicy } from "./parse.js";
export { decide, canReach, visiblePeers, rulesConcerning, REASON_CROSS_TENANT, REASON_DEFAULT_DENY } from "./decide.js";
export { parseFlowSpec, FlowSpecError } from "./flow-spec.js";
export { serializeRules, rulesFromWire, policyFromRules, PolicyWireError, EMPTY_POLICY } from "./wire.js";
export { parseSelector, selectorText } from "./selectors.js";
export { MAX_POLICY_BYTES, policySizeProblem } from "./limits.js";
export { nearestRule, type NearestRule } from "./nearest.js";
export { inboundFirewallTable } from "./firewall-table.js";
