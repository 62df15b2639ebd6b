// Policy limits and protocol bits, in one place. A policy is written by people: these bounds are far above
// any real file and keep a hostile or broken one from costing more than a moment.

/**
 * THE policy size limit: bytes of policy source text (UTF-8). The CLI checks it before sending, the parser
 * checks it first, and the coordination server derives its JSON body limit from it (MAX_POLICY_BODY_BYTES),
 * so every policy within this limit fits any request that carries it.
 */
export const MAX_POLICY_BYTES = 1024 * 1024;

/** The one message for a policy over the limit (CLI, parser, server), or undefined when it fits. */
export function policySizeProblem(bytes: number): string | undefined {
  return bytes > MAX_POLICY_BYTES ? `policy is ${bytes} bytes; the limit is ${MAX_POLICY_BYTES} bytes` : undefined;
}
export const MAX_RULES = 10_000;
export const MAX_TESTS = 10_000;
export const MAX_SERVICES = 10_000;
export const MAX_GROUPS = 10_000;
export const MAX_PORT_ENTRIES = 1_024;
/** Issues reported per parse; the rest are summarised in one line. */
export const MAX_ISSUES = 200;
/** Flow-collection nesting and indentation a policy never needs; deeper input is refused before YAML parsing. */
export const MAX_NESTING = 8;
export const MAX_INDENT = 64;
/** Pairwise comparisons spent on duplicate/shadow analysis before it stops with a warning. */
export const MAX_SHADOW_COMPARISONS = 20_000_000;
/** Rule text shown in decisions and logs. */
export const MAX_RULE_TEXT = 200;
export const MAX_FLOW_SPEC = 256;

export const PROTO_TCP = 1;
export const PROTO_UDP = 2;
export const PROTO_ICMP = 4;
export const PROTO_ALL = PROTO_TCP | PROTO_UDP | PROTO_ICMP;
/** Protocols that carry ports. */
export const PROTO_PORTED = PROTO_TCP | PROTO_UDP;
/** The port an `https` rule or service means when it lists none. */
export const HTTPS_DEFAULT_PORT = 443;

export const PROTOCOLS = ["https", "tcp", "udp", "icmp", "any"] as const;

/** The transport bits a rule protocol matches. */
export const PROTOCOL_MASK: Record<string, number> = { https: PROTO_TCP, tcp: PROTO_TCP, udp: PROTO_UDP, icmp: PROTO_ICMP, any: PROTO_ALL };
