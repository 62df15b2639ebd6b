// Rules as they travel in the peer map. CompiledRule is plain JSON-safe data, so serializing is a deep copy;
// the receiving node validates every field before use (a shape it does not understand is refused, never
// guessed at) and rebuilds a policy from the rules it was sent.
import { NAME_PATTERN } from "../pki/constants.js";
import { sha256Hex } from "./hash.js";
import { MAX_PORT_ENTRIES, MAX_RULE_TEXT, MAX_RULES, PROTO_ALL, PROTO_ICMP, PROTO_PORTED, PROTOCOLS } from "./limits.js";
import type { CompiledPolicy, CompiledRule, Protocol, Selector } from "./types.js";

/** No rules: every flow is denied. */
export const EMPTY_POLICY: CompiledPolicy = Object.freeze({
  version: 1 as const, rules: Object.freeze([]) as unknown as CompiledPolicy["rules"], services: Object.freeze({}), source: "", hash: sha256Hex(""),
});

export class PolicyWireError extends Error {
  override name = "PolicyWireError";
}

export function serializeRules(rules: CompiledRule[]): unknown {
  return rules.map((r) => ({
    index: r.index, line: r.line, text: r.text, source: { ...r.source }, target: { ...r.target },
    protocol: r.protocol, protoMask: r.protoMask, ports: r.ports === null ? null : [...r.ports], crossTenant: r.crossTenant,
  }));
}

export function rulesFromWire(x: unknown): CompiledRule[] {
  if (!Array.isArray(x)) throw new PolicyWireError("rules: expected a list");
  if (x.length > MAX_RULES) throw new PolicyWireError(`rules: more than ${MAX_RULES}`);
  return x.map((r, i) => ruleFromWire(r, i));
}

/** A policy made of wire rules: what a node decides its flows with. */
export function policyFromRules(rules: CompiledRule[]): CompiledPolicy {
  const json = JSON.stringify(serializeRules(rules));
  return { version: 1, rules, services: {}, source: "", hash: sha256Hex(json) };
}

function ruleFromWire(r: unknown, i: number): CompiledRule {
  const bad = (why: string): never => { throw new PolicyWireError(`rule ${i}: ${why}`); };
  if (!r || typeof r !== "object" || Array.isArray(r)) bad("not an object");
  const o = r as Record<string, unknown>;
  const int = (k: string, lo: number, hi: number) => {
    const v = o[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) bad(`${k} must be an integer ${lo}-${hi}`);
    return v as number;
  };
  const index = int("index", 1, MAX_RULES);
  const line = int("line", 1, 1 << 30);
  if (typeof o.text !== "string" || o.text.length > MAX_RULE_TEXT) bad("text must be a short string");
  const protocol = o.protocol;
  if (typeof protocol !== "string" || !(PROTOCOLS as readonly string[]).includes(protocol)) bad("bad protocol");
  const protoMask = int("protoMask", 1, PROTO_ALL);
  let ports: number[] | null = null;
  if (o.ports !== null) {
    const p = o.ports;
    if (!Array.isArray(p) || p.length === 0 || p.length % 2 !== 0 || p.length > 2 * MAX_PORT_ENTRIES) bad("ports must be null or [lo, hi, ...]");
    const list = p as unknown[];
    for (let k = 0; k < list.length; k++) {
      const v = list[k];
      if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 65535) bad("ports must be integers 1-65535");
      if (k > 0 && (v as number) < (list[k - 1] as number) + (k % 2 === 0 ? 2 : 0)) bad("ports must be sorted, non-overlapping ranges");
    }
    if ((protoMask & PROTO_ICMP) !== 0 || (protoMask & PROTO_PORTED) === 0) bad("ports need tcp or udp and exclude icmp");
    ports = [...(list as number[])];
  }
  if (typeof o.crossTenant !== "boolean") bad("crossTenant must be a boolean");
  return {
    index, line, text: o.text as string, source: selector(o.source, "source", bad), target: selector(o.target, "target", bad),
    protocol: protocol as Protocol, protoMask, ports, crossTenant: o.crossTenant as boolean,
  };
}

function selector(v: unknown, side: string, bad: (why: string) => never): Selector {
  if (!v || typeof v !== "object" || Array.isArray(v)) return bad(`${side} must be an object`);
  const s = v as Record<string, unknown>;
  const label = (k: string, optional: boolean): string | undefined => {
    const x = s[k];
    if (x === undefined && optional) return undefined;
    if (typeof x !== "string" || !NAME_PATTERN.test(x)) bad(`${side}.${k} must be a lowercase DNS label`);
    return x as string;
  };
  const keysOnly = (...allowed: string[]) => {
    for (const k of Object.keys(s)) if (!allowed.includes(k)) bad(`${side} has unknown field "${k.slice(0, 32)}"`);
  };
  const tenantOpt = (): { tenant?: string } => { const t = label("tenant", true); return t === undefined ? {} : { tenant: t }; };
  switch (s.kind) {
    case "any": keysOnly("kind"); return { kind: "any" };
    case "external": keysOnly("kind"); return { kind: "external" };
    case "user": keysOnly("kind", "name", "tenant"); return { kind: "user", name: label("name", false)!, ...tenantOpt() };
    case "tenant": keysOnly("kind", "tenant"); return { kind: "tenant", tenant: label("tenant", false)! };
    case "group": keysOnly("kind", "group", "tenant"); return { kind: "group", group: label("group", false)!, ...tenantOpt() };
    case "name": {
      keysOnly("kind", "name", "tenant", "service");
      const service = label("service", true);
      return { kind: "name", name: label("name", false)!, ...tenantOpt(), ...(service === undefined ? {} : { service }) };
    }
    default: return bad(`${side} has unknown kind`);
  }
}
