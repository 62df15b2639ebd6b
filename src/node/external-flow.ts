// Flows a public edge opens for connections from outside the mesh (docs/external-access.md). The receiving node
// is authoritative: it admits such a flow only from a peer whose verified certificate grants role edge, only to a
// named service, and decides it as the `external` principal of its own tenant, so only rules with
// `source: external` can allow it; the edge's own identity never stands in for the outside client.
import type { Identity } from "../pki/index.js";
import type { Principal } from "../policy/index.js";
import type { FlowOpen } from "../wire/messages.js";
import { EDGE_ROLE } from "../wire/coord/names.js";
import { principalOf, type Flow } from "./flow-policy.js";

export function externalPrincipal(tenant: string): Principal {
  return { name: "external", tenant, groups: [], kind: "external" };
}

/**
 * The flow policy decides for an incoming open, or why none may be decided: an external open from a peer
 * without role edge, or without a service, is refused before policy (fail closed).
 */
export function incomingFlowOf(peer: Identity, from: Principal, self: Identity, open: FlowOpen): { flow: Flow } | { refusal: string } {
  const to = principalOf(self);
  // `from`: the peer's principal, the person logged in on it or its machine (src/node/user-bindings.ts).
  if (!open.external) return { flow: { from, to, port: open.port, protocol: open.protocol } };
  if (!peer.roles.includes(EDGE_ROLE)) return { refusal: `${peer.name} opened an external flow, but its certificate grants no role "${EDGE_ROLE}"` };
  if (open.service === undefined) return { refusal: `external flow from ${peer.name} names no service: outside clients reach published services only` };
  return { flow: { from: externalPrincipal(self.tenant), to, port: open.port, protocol: open.protocol } };
}
