// Which publications are in force, and what each edge is told: pure decisions over the stored publications,
// the policy and the map's active nodes. A publication is active only while an `external` rule of the current
// policy lets an outside client reach that service on that node (decided with the same decide() the node runs),
// so a policy change can switch it off without deleting it; `ember expose --list` shows why.
import { decide, type CompiledPolicy, type Principal } from "./policy-adapter.js";
import type { EdgeView, MapPublication } from "../wire/coord/edge.js";
import type { PublicationRecord } from "./store.js";

export interface PublicationState {
  record: PublicationRecord;
  active: boolean;
  /** Why (not): the deciding rule, or what is missing. */
  reason: string;
  rule?: string;
}

/** Every outside connection, as the policy sees it: no mesh identity, in the tenant of the service it reaches. */
export function externalPrincipal(tenant: string): Principal {
  return { name: "external", tenant, groups: [], kind: "external" };
}

/** The policy's verdict on an outside client reaching `port` on `node` (https is TCP). */
export function externalDecision(policy: CompiledPolicy, node: Principal, port: number) {
  return decide(policy, externalPrincipal(node.tenant), node, port, "tcp");
}

export function publicationState(policy: CompiledPolicy, record: PublicationRecord, node: Principal | undefined): PublicationState {
  if (!node) return { record, active: false, reason: `node ${record.node} is not an active node of the mesh` };
  if (node.tenant !== record.tenant) return { record, active: false, reason: `node ${record.node} is now in tenant ${node.tenant}, not ${record.tenant}` };
  const d = externalDecision(policy, node, record.port);
  if (!d.allow) return { record, active: false, reason: `no external rule allows service:${record.service} on ${record.node} (tcp port ${record.port}): ${d.reason}` };
  return { record, active: true, reason: d.reason, ...(d.rule ? { rule: d.rule.text } : {}) };
}

export function toMapPublication(r: PublicationRecord): MapPublication {
  return {
    hostname: r.hostname, node: r.node, service: r.service, port: r.port, protocol: r.protocol, clientAuth: r.clientAuth,
    ...(r.clientAuth === "cert" && r.clientCaPem ? { clientCaPem: r.clientCaPem } : {}),
  };
}

export interface EdgePlan {
  /** [edge, publishing node]: pairs that must see each other in their maps whatever the policy says otherwise. */
  links: [string, string][];
  /** Each edge's view (edges of a tenant serve that tenant's active publications only). */
  views: Map<string, EdgeView>;
}

export function planEdges(edges: { name: string; tenant: string }[], states: PublicationState[], tokenKeyPem: string): EdgePlan {
  const links: [string, string][] = [];
  const views = new Map<string, EdgeView>();
  for (const e of edges) {
    const publications: MapPublication[] = [];
    for (const s of states) {
      if (!s.active || s.record.tenant !== e.tenant || s.record.node === e.name) continue;
      publications.push(toMapPublication(s.record));
      links.push([e.name, s.record.node]);
    }
    views.set(e.name, { tokenKeyPem, publications });
  }
  return { links, views };
}
