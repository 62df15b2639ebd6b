// Policy file -> CompiledPolicy, validating everything before anything applies: YAML syntax, structure and
// unknown keys, selectors, groups, services, protocols and ports, duplicates and shadowing, and the embedded
// tests. Every issue carries the line it is about. Nothing here throws on bad input.
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode } from "yaml";
import { NAME_PATTERN } from "../pki/constants.js";
import { analyseOverlaps } from "./analysis.js";
import { runEmbeddedTests, type EmbeddedTest } from "./embedded-tests.js";
import { parseFlowSpec } from "./flow-spec.js";
import { Issues } from "./issues.js";
import {
  HTTPS_DEFAULT_PORT, MAX_GROUPS, policySizeProblem, MAX_PORT_ENTRIES, MAX_RULE_TEXT, MAX_RULES, MAX_SERVICES, MAX_TESTS,
  PROTO_PORTED, PROTOCOL_MASK, PROTOCOLS,
} from "./limits.js";
import { intersectRanges, normalizeRanges, parsePortEntry, rangesText } from "./ports.js";
import { namedTenant, parseSelector, qualifiedName } from "./selectors.js";
import type { CompiledPolicy, CompiledRule, FlowProtocol, ParseContext, ParseResult, Protocol, Selector, ServiceDef } from "./types.js";
import { guardYaml } from "./yaml-guard.js";
import { sha256Hex } from "./hash.js";

const MAX_YAML_ERRORS = 5;
const TOP_KEYS = ["version", "groups", "services", "rules", "tests"];
const RULE_KEYS = ["allow"];
const ALLOW_KEYS = ["source", "target", "protocol", "ports"];
const SERVICE_KEYS = ["node", "port", "protocol"];
const TEST_KEYS = ["from", "to", "expect"];

export function parsePolicy(text: string, ctx: ParseContext = {}): ParseResult {
  const issues = new Issues(new LineCounter());
  try {
    return new PolicyParser(text, ctx).run();
  } catch (err) {
    // A bug or an exhausted resource must refuse the policy, never crash the caller.
    issues.error({ line: 1 }, `policy could not be checked: ${(err as Error)?.message ?? String(err)}`);
    return { ok: false, errors: issues.errors, warnings: issues.warnings };
  }
}

export { sha256Hex };

interface Entry { key: string; keyNode: YamlNode; value: YamlNode | null }

class PolicyParser {
  private readonly lines = new LineCounter();
  private readonly issues = new Issues(this.lines);
  private readonly services = new Map<string, ServiceDef>();
  private readonly serviceLines = new Map<string, YamlNode>();
  private declaredGroups?: Set<string>;
  private readonly rules: CompiledRule[] = [];
  private readonly tests: EmbeddedTest[] = [];
  private warnedNames = new Set<string>();

  constructor(private readonly text: string, private readonly ctx: ParseContext) {}

  run(): ParseResult {
    const { issues, text } = this;
    if (typeof text !== "string") return this.fail({ line: 1 }, "policy text must be a string");
    const tooLarge = policySizeProblem(Buffer.byteLength(text, "utf8"));
    if (tooLarge) return this.fail({ line: 1 }, tooLarge);
    if (text.includes("\0")) return this.fail({ line: lineOf(text, text.indexOf("\0")) }, "policy contains NUL bytes: not a text file");
    const guard = guardYaml(text);
    if (guard) return this.fail(guard, guard.message);

    // uniqueKeys is checked below in linear time: the yaml package's own check is quadratic in map size.
    const doc = parseDocument(text, { lineCounter: this.lines, uniqueKeys: false, prettyErrors: false, strict: true });
    // One syntax error usually cascades into dozens of follow-ups: keep the first per line, and a few lines.
    const shownLines = new Set<number>();
    for (const e of [...doc.errors, ...doc.warnings].sort((a, b) => a.pos[0] - b.pos[0])) {
      const at = this.at(e.pos[0]);
      if (shownLines.has(at.line) || shownLines.size >= MAX_YAML_ERRORS) continue;
      shownLines.add(at.line);
      issues.error(at, `YAML: ${e.message}`);
    }
    if (issues.hasErrors) return this.result();

    const root = doc.contents as YamlNode | null;
    if (root === null || (isScalar(root) && (root.value === null || root.value === ""))) {
      return this.fail({ line: 1 }, "empty policy: expected at least `rules:` (and `version: 1`)");
    }
    const top = this.entries(root, "the policy", TOP_KEYS);
    if (!top) return this.result();
    const get = (k: string) => top.find((e) => e.key === k);

    const version = get("version");
    if (version && !(isScalar(version.value) && version.value.value === 1)) {
      issues.error(version.value ?? version.keyNode, `unsupported version ${show(scalarValue(version.value))}: this EmberNet reads version 1`);
    }
    const groups = get("groups");
    if (groups) this.parseGroups(groups);
    const services = get("services");
    if (services) this.parseServices(services);
    const rules = get("rules");
    if (rules) this.parseRules(rules);
    else issues.warning(root, "no rules: every flow is denied");
    if (!issues.hasErrors) analyseOverlaps(this.rules, issues);
    // Tests run only against a policy whose rules all compiled; a broken test is reported either way.
    const rulesOk = !issues.hasErrors;
    const tests = get("tests");
    if (tests) this.parseTests(tests);

    const policy: CompiledPolicy = { version: 1, rules: this.rules, services: Object.fromEntries(this.services), source: text, hash: sha256Hex(text) };
    if (rulesOk && this.tests.length > 0) {
      if (this.ctx.resolve) runEmbeddedTests(policy, this.tests, this.ctx.resolve, issues);
      else issues.warning({ line: this.tests[0].line }, `${this.tests.length} embedded test(s) not run: no identities to resolve their names against`);
    }
    if (issues.hasErrors) return this.result();
    issues.finish();
    return { ok: true, policy, warnings: issues.warnings };
  }

  // ---- sections ---------------------------------------------------------------------------------------

  private parseGroups(e: Entry): void {
    const items = this.seq(e, "groups", MAX_GROUPS);
    if (!items) return;
    this.declaredGroups = new Set();
    for (const item of items) {
      const g = this.string(item, "a group name");
      if (g === undefined) continue;
      const name = g.startsWith("@") ? g.slice(1) : g;
      if (!NAME_PATTERN.test(name)) { this.issues.error(item, `bad group name "${show(g)}": groups are lowercase DNS labels`); continue; }
      if (this.declaredGroups.has(name)) this.issues.warning(item, `group "${name}" is declared twice`);
      this.declaredGroups.add(name);
    }
  }

  private parseServices(e: Entry): void {
    const list = this.entries(e.value, "services", null, e.keyNode);
    if (!list) return;
    if (list.length > MAX_SERVICES) { this.issues.error(e.keyNode, `more than ${MAX_SERVICES} services`); return; }
    for (const s of list) {
      if (!NAME_PATTERN.test(s.key)) { this.issues.error(s.keyNode, `bad service name "${show(s.key)}": service names are lowercase DNS labels`); continue; }
      const fields = this.entries(s.value, `service "${s.key}"`, SERVICE_KEYS, s.keyNode);
      if (!fields) continue;
      const f = (k: string) => fields.find((x) => x.key === k);
      const nodeEntry = f("node");
      if (!nodeEntry) { this.issues.error(s.keyNode, `service "${s.key}" has no node`); continue; }
      const node = this.string(nodeEntry.value, "the node's identity name", nodeEntry.keyNode);
      if (node === undefined) continue;
      const q = qualifiedName(node);
      if ("error" in q) { this.issues.error(nodeEntry.value, `service "${s.key}": bad node "${show(node)}": ${q.error}`); continue; }
      this.checkIdentity(nodeEntry.value, q.name, q.tenant);
      const def: ServiceDef = { node };
      const protoEntry = f("protocol");
      if (protoEntry) {
        const p = this.protocol(protoEntry);
        if (p === undefined) continue;
        def.protocol = p;
      }
      const portEntry = f("port");
      if (portEntry) {
        if (def.protocol === "icmp") { this.issues.error(portEntry.keyNode, `service "${s.key}": icmp has no ports`); continue; }
        const r = parsePortEntry(scalarValue(portEntry.value));
        if ("error" in r) { this.issues.error(portEntry.value ?? portEntry.keyNode, `service "${s.key}": ${r.error}`); continue; }
        if (r[0] !== r[1]) { this.issues.error(portEntry.value, `service "${s.key}": a service has one port, not a range`); continue; }
        def.port = r[0];
      }
      this.services.set(s.key, def);
      this.serviceLines.set(s.key, s.keyNode);
    }
  }

  private parseRules(e: Entry): void {
    const items = this.seq(e, "rules", MAX_RULES);
    if (!items) return;
    items.forEach((item, i) => {
      const rule = this.parseRule(item, i + 1);
      if (rule) this.rules.push(rule);
    });
  }

  private parseRule(item: YamlNode, index: number): CompiledRule | undefined {
    const outer = this.entries(item, `rule ${index}`, RULE_KEYS, undefined, (k) => k === "deny" ? `unknown key "deny": rules only allow; everything no rule allows is denied` : undefined);
    if (!outer) return undefined;
    const allow = outer.find((x) => x.key === "allow");
    if (!allow) { this.issues.error(item, `rule ${index} has no "allow:"`); return undefined; }
    const fields = this.entries(allow.value, `rule ${index}'s allow`, ALLOW_KEYS, allow.keyNode);
    if (!fields) return undefined;
    const f = (k: string) => fields.find((x) => x.key === k);
    const errorsBefore = this.issues.errors.length;

    const source = this.selector(f("source"), "source", allow.keyNode);
    const target = this.selector(f("target"), "target", allow.keyNode);
    const protoEntry = f("protocol");
    const protocol = protoEntry ? this.protocol(protoEntry) : undefined;
    const portsEntry = f("ports");
    let ports: number[] | null = null;
    if (portsEntry) {
      ports = this.ports(portsEntry);
      if (ports && protocol === "icmp") { this.issues.error(portsEntry.keyNode, "icmp has no ports: drop ports: or choose another protocol"); ports = null; }
    }
    if (this.issues.errors.length > errorsBefore || !source || !target || (protoEntry && !protocol) || (portsEntry && !ports)) return undefined;
    if (source.kind === "service") {
      this.issues.error(f("source")!.value, `service:${source.service} as a source: a service is a destination; name its node instead`);
      return undefined;
    }
    if (target.kind === "user" || target.kind === "external") {
      const what = target.kind === "user" ? `user:${target.name} as a target: a person is only ever a source` : "external as a target: external is only ever a source";
      this.issues.error(f("target")!.value, `${what}; a target is a node, a service, a group, a tenant or *`);
      return undefined;
    }
    if (source.kind === "external" && target.kind !== "service") {
      this.issues.error(f("target")!.value, "an external source may only reach a service (target: service:NAME): the edge publishes services, not nodes");
      return undefined;
    }

    // What the rule itself allows. An https rule is TCP to its ports, 443 when it lists none.
    let mask = PROTOCOL_MASK[protocol ?? "any"];
    if (ports === null && protocol === "https") ports = [HTTPS_DEFAULT_PORT, HTTPS_DEFAULT_PORT];
    let shownProtocol: Protocol = protocol ?? "any";
    let targetSel: Selector;
    if (target.kind === "service") {
      const svc = this.services.get(target.service);
      const targetNode = f("target")!.value;
      if (!svc) {
        const known = [...this.services.keys()];
        this.issues.error(targetNode, `unknown service "${target.service}" (${known.length ? `services: defines ${known.slice(0, 10).join(", ")}` : "no services: are defined"})`);
        return undefined;
      }
      const q = qualifiedName(svc.node) as { name: string; tenant?: string };
      targetSel = { kind: "name", name: q.name, ...(q.tenant ? { tenant: q.tenant } : {}), service: target.service };
      let svcMask = PROTOCOL_MASK[svc.protocol ?? "any"];
      const svcPorts = svc.port !== undefined ? [svc.port, svc.port] : svc.protocol === "https" ? [HTTPS_DEFAULT_PORT, HTTPS_DEFAULT_PORT] : null;
      if (svcPorts) svcMask &= PROTO_PORTED;
      const ruleMask = ports ? mask & PROTO_PORTED : mask;
      const both = intersectRanges(ports, svcPorts);
      const bothMask = (ruleMask & svcMask) & (both ? PROTO_PORTED : ~0);
      if (bothMask === 0 || (both && both.length === 0)) {
        this.issues.error(item, `rule ${index} can never match: service "${target.service}" is ${describe(svc.protocol ?? "any", svcPorts)} but the rule allows ${describe(protocol ?? "any", ports)}`);
        return undefined;
      }
      mask = bothMask;
      ports = both;
      shownProtocol = protocol ?? svc.protocol ?? "any";
    } else {
      targetSel = target;
      if (ports) mask &= PROTO_PORTED;
    }
    if (mask === 0) { this.issues.error(item, `rule ${index} allows no protocol`); return undefined; }

    return {
      index, line: this.issues.position(item).line, text: this.ruleText(item),
      source, target: targetSel, protocol: shownProtocol, protoMask: mask, ports,
      crossTenant: namedTenant(source) !== undefined && namedTenant(targetSel) !== undefined,
    };
  }

  private parseTests(e: Entry): void {
    const items = this.seq(e, "tests", MAX_TESTS);
    if (!items) return;
    items.forEach((item, i) => {
      const index = i + 1;
      const fields = this.entries(item, `test ${index}`, TEST_KEYS);
      if (!fields) return;
      const f = (k: string) => fields.find((x) => x.key === k);
      const missing = TEST_KEYS.filter((k) => !f(k));
      if (missing.length) { this.issues.error(item, `test ${index} needs ${missing.join(", ")}`); return; }
      const from = this.string(f("from")!.value, "an identity name", f("from")!.keyNode);
      const to = this.string(f("to")!.value, "a flow like db-1:5432/tcp", f("to")!.keyNode);
      const expect = this.string(f("expect")!.value, "allow or deny", f("expect")!.keyNode);
      if (from === undefined || to === undefined || expect === undefined) return;
      if (!testSource(from)) { this.issues.error(f("from")!.value, `test ${index}: "${show(from)}" is not an identity name, user:NAME or external`); return; }
      if (expect !== "allow" && expect !== "deny") { this.issues.error(f("expect")!.value, `test ${index}: expect must be allow or deny, not "${show(expect)}"`); return; }
      const flow = this.testFlow(to, f("to")!.value, index);
      if (!flow) return;
      const line = this.issues.position(item).line;
      this.tests.push({ index, line, from, to: flow.name, port: flow.port, protocol: flow.protocol, expect, spec: to });
    });
  }

  private testFlow(spec: string, node: YamlNode | null, index: number): { name: string; port?: number; protocol: FlowProtocol } | undefined {
    if (spec.startsWith("service:")) {
      const svc = this.services.get(spec.slice(8));
      if (!svc) { this.issues.error(node, `test ${index}: unknown service "${show(spec.slice(8))}"`); return undefined; }
      const name = svc.node.split(".")[0];
      if (svc.protocol === "icmp") return { name, protocol: "icmp" };
      const protocol: FlowProtocol = svc.protocol === undefined || svc.protocol === "any" ? "tcp" : svc.protocol;
      const port = svc.port ?? (protocol === "https" ? HTTPS_DEFAULT_PORT : undefined);
      if (port === undefined) { this.issues.error(node, `test ${index}: service "${spec.slice(8)}" has no port; write NODE:PORT/PROTOCOL`); return undefined; }
      return { name, port, protocol };
    }
    try {
      return parseFlowSpec(spec);
    } catch (err) {
      this.issues.error(node, `test ${index}: ${(err as Error).message}`);
      return undefined;
    }
  }

  // ---- pieces -----------------------------------------------------------------------------------------

  private selector(e: Entry | undefined, side: "source" | "target", parent: YamlNode) {
    if (!e) { this.issues.error(parent, `missing ${side}`); return undefined; }
    if (isSeq(e.value)) { this.issues.error(e.value, `${side} must be one selector; write one rule per selector`); return undefined; }
    const text = this.string(e.value, `a ${side} selector`, e.keyNode);
    if (text === undefined) return undefined;
    const sel = parseSelector(text);
    if ("error" in sel) { this.issues.error(e.value, `${side}: ${sel.error}`); return undefined; }
    if (sel.kind === "group") {
      const allowed = this.allowedGroups();
      if (allowed && !allowed.has(sel.group)) {
        const why = [this.declaredGroups && "not declared in groups:", this.ctx.knownGroups && "not granted to any identity or enrollment token"].filter(Boolean).join(" and ");
        this.issues.error(e.value, `unknown group "${sel.group}": ${why}`);
        return undefined;
      }
    }
    if (sel.kind === "name") this.checkIdentity(e.value, sel.name, sel.tenant);
    return sel;
  }

  /** Declared groups plus the caller's known ones; undefined when neither exists (then any group is fine). */
  private allowedGroups(): Set<string> | undefined {
    if (!this.declaredGroups && !this.ctx.knownGroups) return undefined;
    return new Set([...(this.declaredGroups ?? []), ...(this.ctx.knownGroups ?? [])]);
  }

  /** Names that no enrolled identity has yet are allowed (a node may enroll later) but worth a warning. */
  private checkIdentity(node: YamlNode | null, name: string, tenant: string | undefined): void {
    if (!this.ctx.resolve || this.warnedNames.has(`${name}.${tenant ?? ""}`)) return;
    this.warnedNames.add(`${name}.${tenant ?? ""}`);
    const p = this.ctx.resolve(name);
    if (!p) this.issues.warning(node, `identity "${name}" is not known (yet): the selector matches nothing until it enrolls`);
    else if (tenant !== undefined && p.tenant !== tenant) this.issues.warning(node, `identity "${name}" is in tenant "${p.tenant}", not "${tenant}": the selector matches nothing`);
  }

  private protocol(e: Entry): Protocol | undefined {
    const p = this.string(e.value, "a protocol", e.keyNode);
    if (p === undefined) return undefined;
    if (!(PROTOCOLS as readonly string[]).includes(p)) { this.issues.error(e.value, `bad protocol "${show(p)}": expected ${PROTOCOLS.join(", ")}`); return undefined; }
    return p as Protocol;
  }

  private ports(e: Entry): number[] | null {
    const items = isSeq(e.value) ? (e.value.items as (YamlNode | null)[]) : [e.value];
    if (items.length === 0) { this.issues.error(e.value, "empty ports list: omit ports: to allow every port"); return null; }
    if (items.length > MAX_PORT_ENTRIES) { this.issues.error(e.value, `more than ${MAX_PORT_ENTRIES} port entries`); return null; }
    const ranges: [number, number][] = [];
    let ok = true;
    for (const item of items) {
      if (isAlias(item)) { this.issues.error(item, "YAML aliases are not allowed in a policy"); ok = false; continue; }
      if (item !== null && !isScalar(item)) { this.issues.error(item, "a port is a number or a \"lo-hi\" range"); ok = false; continue; }
      const r = parsePortEntry(scalarValue(item));
      if ("error" in r) { this.issues.error(item ?? e.keyNode, r.error); ok = false; continue; }
      ranges.push(r);
    }
    return ok ? normalizeRanges(ranges) : null;
  }

  /** The entries of a YAML map with linear-time duplicate detection and unknown-key errors (allowed = null: any key). */
  private entries(node: YamlNode | null, what: string, allowed: string[] | null, parent?: YamlNode, hint?: (key: string) => string | undefined): Entry[] | undefined {
    if (isAlias(node)) { this.issues.error(node, "YAML aliases are not allowed in a policy"); return undefined; }
    if (!isMap(node)) { this.issues.error(node ?? parent, `${what} must be a map (key: value)`); return undefined; }
    const out: Entry[] = [];
    const seen = new Set<string>();
    let ok = true;
    for (const pair of node.items) {
      const keyNode = pair.key as YamlNode | null;
      const key = isScalar(keyNode) && (typeof keyNode.value === "string" || typeof keyNode.value === "number") ? String(keyNode.value) : undefined;
      if (key === undefined) { this.issues.error(keyNode ?? node, `${what}: keys must be plain names`); ok = false; continue; }
      if (allowed && !allowed.includes(key)) {
        this.issues.error(keyNode, hint?.(key) ?? `unknown key "${show(key)}" in ${what} (expected ${allowed.join(", ")})`);
        ok = false;
        continue;
      }
      if (seen.has(key)) { this.issues.error(keyNode, `duplicate key "${show(key)}" in ${what}`); ok = false; continue; }
      seen.add(key);
      const value = pair.value as YamlNode | null;
      if (isAlias(value)) { this.issues.error(value, "YAML aliases are not allowed in a policy"); ok = false; continue; }
      out.push({ key, keyNode: keyNode!, value });
    }
    return ok ? out : undefined;
  }

  private seq(e: Entry, what: string, max: number): YamlNode[] | undefined {
    if (e.value === null) return [];
    if (!isSeq(e.value)) { this.issues.error(e.value, `${what} must be a list`); return undefined; }
    if (e.value.items.length > max) { this.issues.error(e.keyNode, `more than ${max} ${what}`); return undefined; }
    const out: YamlNode[] = [];
    for (const item of e.value.items as (YamlNode | null)[]) {
      if (item === null) { this.issues.error(e.value, `empty entry in ${what}`); continue; }
      if (isAlias(item)) { this.issues.error(item, "YAML aliases are not allowed in a policy"); continue; }
      out.push(item);
    }
    return out;
  }

  private string(node: YamlNode | null, what: string, parent?: YamlNode): string | undefined {
    if (isScalar(node) && typeof node.value === "string" && node.value !== "") return node.value;
    this.issues.error(node ?? parent, `expected ${what}, got ${node === null ? "nothing" : isScalar(node) ? show(node.value) : isSeq(node) ? "a list" : "a map"}`);
    return undefined;
  }

  /** The rule as written, on one line, without comments. */
  private ruleText(item: YamlNode): string {
    const [start, end] = item.range ?? [0, 0];
    const raw = this.text.slice(start, end).split("\n").map((l) => l.replace(/(^|\s)#.*$/, "")).join(" ");
    const one = raw.replace(/\s+/g, " ").trim();
    return one.length > MAX_RULE_TEXT ? `${one.slice(0, MAX_RULE_TEXT - 1)}…` : one;
  }

  private at(offset: number): { line: number; column: number } {
    const p = this.lines.linePos(offset);
    return { line: Math.max(1, p.line), column: p.col };
  }

  private fail(where: { line: number; column?: number }, message: string): ParseResult {
    this.issues.error(where, message);
    return this.result();
  }

  private result(): ParseResult {
    this.issues.finish();
    return { ok: false, errors: this.issues.errors, warnings: this.issues.warnings };
  }
}

/** A test's `from`: an identity name, `user:NAME` or `external`. */
function testSource(from: string): boolean {
  return from === "external" || NAME_PATTERN.test(from.startsWith("user:") ? from.slice(5) : from);
}

function scalarValue(node: YamlNode | null | undefined): unknown {
  if (node === null || node === undefined) return null;
  return isScalar(node) ? node.value : isSeq(node) ? "(a list)" : "(a map)";
}

function show(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v) ?? String(v);
  return (s.length > 64 ? `${s.slice(0, 64)}…` : s).replace(/[^\x20-\x7e]/g, "?");
}

function describe(protocol: Protocol, ports: number[] | null): string {
  return ports ? `${protocol} ${rangesText(ports)}` : protocol;
}

function lineOf(text: string, offset: number): number {
  let n = 1;
  for (let i = 0; i < offset; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}




