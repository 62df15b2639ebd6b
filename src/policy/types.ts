// The policy engine's data model. Everything here is plain JSON-safe data, so compiled rules travel to nodes
// in the peer map unchanged (see wire.ts) and a node decides flows with the same code as the server.

export type Protocol = "https" | "tcp" | "udp" | "icmp" | "any";
export type FlowProtocol = Exclude<Protocol, "any">;

/**
 * Who is on either end of a flow. Tenant and groups come only from signed certificate grants. `kind` absent is a
 * machine (a node or a service's node); "user" is a person, from a user certificate bound to the device they
 * use (`device` names it, for logs); "external" is a connection with no mesh identity, admitted only by a public
 * edge for a published service (docs/policy.md "Users" and "External access").
 */
export interface Principal { name: string; tenant: string; groups: string[]; kind?: "user" | "external"; device?: string }

export interface PolicyIssue { line: number; column?: number; message: string; severity: "error" | "warning" }

/**
 * A compiled selector. `tenant` on name/group selectors is the qualifier written as `name.tenant` or
 * `@group.tenant`: it restricts the match to that tenant and counts as naming the tenant (cross-tenant rule).
 * A `service:` target compiles to the name selector of its node, with `service` kept for display.
 */
export type Selector =
  | { kind: "any" }
  | { kind: "name"; name: string; tenant?: string; service?: string }
  | { kind: "group"; group: string; tenant?: string }
  | { kind: "tenant"; tenant: string }
  /** `user:alice` or `user:alice.TENANT`: a person, never a machine. Only a source. */
  | { kind: "user"; name: string; tenant?: string }
  /** `external`: a connection through a public edge, with no mesh identity. Only a source. */
  | { kind: "external" };

export interface CompiledRule {
  /** 1-based position in the file's rules list. */
  index: number;
  line: number;
  /** The rule as written, on one line. */
  text: string;
  source: Selector;
  target: Selector;
  /** The protocol as written (or the service's), for display; matching uses protoMask. */
  protocol: Protocol;
  /** Transport protocols matched: PROTO_TCP | PROTO_UDP | PROTO_ICMP (limits.ts). https is TCP. */
  protoMask: number;
  /** Destination port ranges, flat and sorted: [lo0, hi0, lo1, hi1, ...]; null = every port. */
  ports: number[] | null;
  /** Both sides name a tenant, so the rule may decide flows between different tenants. */
  crossTenant: boolean;
}

export interface Service { node: string; port?: number; protocol?: Protocol }
export type ServiceDef = Service;

export interface CompiledPolicy {
  version: 1;
  rules: CompiledRule[];
  services: Record<string, Service>;
  /** The original text. */
  source: string;
  /** sha256 hex of source. */
  hash: string;
}

export interface Decision {
  allow: boolean;
  rule?: { index: number; line: number; text: string };
  reason: string;
}

export interface ParseContext {
  /** Groups that exist in the mesh (token grants, enrolled nodes); a rule naming another group is an error. */
  knownGroups?: Set<string>;
  /** Maps identity names to principals; when given, the embedded tests run and unknown names get a warning. */
  resolve?: (name: string) => Principal | undefined;
}

export type ParseResult =
  | { ok: true; policy: CompiledPolicy; warnings: PolicyIssue[] }
  | { ok: false; errors: PolicyIssue[]; warnings: PolicyIssue[] };
