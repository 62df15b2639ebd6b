// Per-flow decisions on this node, from the rules its peer map carries (the coordination server's policy,
// restricted to the rules that concern this node) and decided by the same code the server uses. The
// receiving node's decision is authoritative and takes the peer's principal from its verified session
// certificate; the sender pre-checks with the peer map's view to fail fast.
// From their own modules, not ../policy/index.js, which also holds the YAML parser (see there).
import { decide } from "../policy/decide.js";
import { inboundFirewallTable } from "../policy/firewall-table.js";
import type { CompiledPolicy, CompiledRule, Decision, FlowProtocol, Principal } from "../policy/types.js";
import { EMPTY_POLICY, policyFromRules } from "../policy/wire.js";
import type { FirewallTable } from "../native/types.js";
import type { Identity } from "../pki/index.js";

export interface Flow { from: Principal; to: Principal; port: number; protocol: FlowProtocol }

export function principalOf(id: Pick<Identity, "name" | "tenant" | "groups">): Principal {
  return { name: id.name, tenant: id.tenant, groups: id.groups };
}

export class FlowPolicy {
  private policy: CompiledPolicy = EMPTY_POLICY;

  /** Replaces the rules; true when they changed (live flows must then be checked again). */
  setRules(rules: CompiledRule[]): boolean {
    const next = rules.length ? policyFromRules(rules) : EMPTY_POLICY;
    if (next.hash === this.policy.hash) return false;
    this.policy = next;
    return true;
  }

  decide(flow: Flow): Decision {
    return decide(this.policy, flow.from, flow.to, flow.port, flow.protocol);
  }

  /** What `from` may open on `to`, for the TUN data plane's per-packet check; recompute after setRules. */
  inboundTable(from: Principal, to: Principal): FirewallTable {
    return inboundFirewallTable(this.policy, from, to);
  }

  /** The rules in force (diagnostics look for the nearest one to a denied flow). */
  get rules(): CompiledRule[] {
    return this.policy.rules;
  }

  get ruleCount(): number {
    return this.policy.rules.length;
  }

  get hash(): string {
    return this.policy.hash;
  }
}

/** "db-1.acme -> web-1.acme:443/tcp" for logs; a person's flow is "user:alice.acme@laptop-1 -> ...". */
export function describeFlow(f: Flow): string {
  const from = f.from.kind === "user" ? `user:${f.from.name}.${f.from.tenant}@${f.from.device ?? "?"}` : `${f.from.name}.${f.from.tenant}`;
  return `${from} -> ${f.to.name}.${f.to.tenant}:${f.port}/${f.protocol}`;
}
