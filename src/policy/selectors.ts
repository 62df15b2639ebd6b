// Selectors: who a rule's source or target stands for. Syntax, matching against a principal, and the
// containment test the shadow analysis needs.
import { NAME_PATTERN } from "../pki/constants.js";
import type { Principal, Selector } from "./types.js";

export type ParsedSelector = Selector | { kind: "service"; service: string };

const HELP = "expected an identity name (db-1 or db-1.TENANT), @group (or @group.TENANT), user:NAME, service:NAME, tenant:TENANT, external or *";

/** Parses one selector; returns a message naming the problem on bad input. */
export function parseSelector(text: string): ParsedSelector | { error: string } {
  if (text === "*") return { kind: "any" };
  if (text === "external") return { kind: "external" };
  if (text.startsWith("user:")) {
    const q = qualifiedName(text.slice(5));
    if ("error" in q) return { error: `bad user selector "${text}": ${q.error}` };
    return q.tenant === undefined ? { kind: "user", name: q.name } : { kind: "user", name: q.name, tenant: q.tenant };
  }
  if (text.startsWith("tenant:")) {
    const tenant = text.slice(7);
    return NAME_PATTERN.test(tenant) ? { kind: "tenant", tenant } : { error: `bad tenant "${tenant}" in selector "${text}": tenants are lowercase DNS labels` };
  }
  if (text.startsWith("service:")) {
    const service = text.slice(8);
    return NAME_PATTERN.test(service) ? { kind: "service", service } : { error: `bad service name "${service}" in selector "${text}"` };
  }
  const group = text.startsWith("@");
  const q = qualifiedName(group ? text.slice(1) : text);
  if ("error" in q) return { error: `bad selector "${text}": ${q.error}; ${HELP}` };
  if (group) return q.tenant === undefined ? { kind: "group", group: q.name } : { kind: "group", group: q.name, tenant: q.tenant };
  return q.tenant === undefined ? { kind: "name", name: q.name } : { kind: "name", name: q.name, tenant: q.tenant };
}

/** "db-1" or "db-1.acme": a DNS-label name, optionally qualified by its tenant. */
export function qualifiedName(text: string): { name: string; tenant?: string } | { error: string } {
  const parts = text.split(".");
  if (parts.length > 2) return { error: "at most one tenant qualifier (NAME.TENANT)" };
  if (!NAME_PATTERN.test(parts[0])) return { error: `"${parts[0]}" is not a lowercase DNS label` };
  if (parts.length === 2) {
    if (!NAME_PATTERN.test(parts[1])) return { error: `tenant "${parts[1]}" is not a lowercase DNS label` };
    return { name: parts[0], tenant: parts[1] };
  }
  return { name: parts[0] };
}

/**
 * Machines match names, users match `user:` and the edge's outside connections match only `external`: a node
 * certificate never satisfies a user rule and the reverse. Groups, tenants and `*` take machines and users
 * alike (a group may hold both), never an external source, which must be named as such.
 */
export function matches(sel: Selector, p: Principal): boolean {
  if (p.kind === "external") return sel.kind === "external";
  switch (sel.kind) {
    case "any": return true;
    case "name": return p.kind === undefined && p.name === sel.name && (sel.tenant === undefined || p.tenant === sel.tenant);
    case "user": return p.kind === "user" && p.name === sel.name && (sel.tenant === undefined || p.tenant === sel.tenant);
    case "group": return (sel.tenant === undefined || p.tenant === sel.tenant) && p.groups.includes(sel.group);
    case "tenant": return p.tenant === sel.tenant;
    case "external": return false;
  }
}

/** The tenant a selector names explicitly, if any. */
export function namedTenant(sel: Selector): string | undefined {
  return sel.kind === "tenant" || sel.kind === "name" || sel.kind === "group" || sel.kind === "user" ? sel.tenant : undefined;
}

/** True when every principal `inner` matches is matched by `outer` (sound, not complete: groups of names are unknown). */
export function contains(outer: Selector, inner: Selector): boolean {
  switch (outer.kind) {
    case "any": return inner.kind !== "external";
    case "external": return inner.kind === "external";
    case "user": return inner.kind === "user" && inner.name === outer.name && (outer.tenant === undefined || inner.tenant === outer.tenant);
    case "tenant": return namedTenant(inner) === outer.tenant;
    case "group": return inner.kind === "group" && inner.group === outer.group && (outer.tenant === undefined || inner.tenant === outer.tenant);
    case "name": return inner.kind === "name" && inner.name === outer.name && (outer.tenant === undefined || inner.tenant === outer.tenant);
  }
}

export function selectorText(sel: Selector): string {
  switch (sel.kind) {
    case "any": return "*";
    case "external": return "external";
    case "user": return `user:${sel.name}${sel.tenant ? `.${sel.tenant}` : ""}`;
    case "tenant": return `tenant:${sel.tenant}`;
    case "group": return `@${sel.group}${sel.tenant ? `.${sel.tenant}` : ""}`;
    case "name": return sel.service ? `service:${sel.service}` : `${sel.name}${sel.tenant ? `.${sel.tenant}` : ""}`;
  }
}
