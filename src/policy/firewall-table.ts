// The per-packet view of the policy for the TUN data plane: every port `from` may open on `to`, per transport,
// precomputed once per peer pair so the addon never runs decide(). Only allow rules exist and the first allow
// decides, so a port is allowed exactly when some applicable rule allows it: the table is the union of the
// applicable rules' ranges. "Applicable" is decide()'s own test (source and target match, and the rule names
// both tenants when they differ), so tenant isolation carries over unchanged.
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from "./limits.js";
import { normalizeRanges } from "./ports.js";
import { matches } from "./selectors.js";
import type { CompiledPolicy, Principal } from "./types.js";

/** Ports (inclusive ranges) on this node that a peer may open; replies to flows this node opened always pass. */
export interface FirewallTable {
  tcp: Array<[number, number]>;
  udp: Array<[number, number]>;
  /** ICMP echo requests from the peer (echo replies to our own pings always pass). */
  icmp: boolean;
}

const ALL_PORTS: [number, number] = [1, 65535];

/** The ports `from` may open on `to` (tcp, udp) and whether it may ping `to` (an allowed icmp flow). */
export function inboundFirewallTable(policy: CompiledPolicy, from: Principal, to: Principal): FirewallTable {
  const sameTenant = from.tenant === to.tenant;
  const tcp: [number, number][] = [];
  const udp: [number, number][] = [];
  let icmp = false;
  for (const r of policy.rules) {
    if (!sameTenant && !r.crossTenant) continue;
    if (!matches(r.source, from) || !matches(r.target, to)) continue;
    if (r.protoMask & PROTO_ICMP) icmp = true;
    const ranges = r.ports === null ? [ALL_PORTS] : pairs(r.ports);
    if (r.protoMask & PROTO_TCP) tcp.push(...ranges);
    if (r.protoMask & PROTO_UDP) udp.push(...ranges);
  }
  return { tcp: pairs(normalizeRanges(tcp)), udp: pairs(normalizeRanges(udp)), icmp };
}

function pairs(flat: number[]): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i], flat[i + 1]]);
  return out;
}
