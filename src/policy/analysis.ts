// Duplicate and shadowed rules. Rules only allow and the first match decides, so a rule whose every flow an
// earlier rule already allows never decides anything: a duplicate (both cover each other) is an error, a
// narrower rule under a broader one is a warning (harmless, but usually a leftover or a misunderstanding).
// The test is sound, not complete: a name rule under a group rule is not flagged, as groups of names are
// only known from certificates.
import type { Issues } from "./issues.js";
import { MAX_SHADOW_COMPARISONS, PROTO_PORTED } from "./limits.js";
import { rangesContain } from "./ports.js";
import { contains, namedTenant } from "./selectors.js";
import type { CompiledRule, Selector } from "./types.js";

/** Every flow `inner` allows is allowed by `outer`. */
export function covers(outer: CompiledRule, inner: CompiledRule): boolean {
  if ((inner.protoMask & ~outer.protoMask) !== 0) return false;
  if ((inner.protoMask & PROTO_PORTED) !== 0 && !rangesContain(outer.ports, inner.ports)) return false;
  if (!contains(outer.source, inner.source) || !contains(outer.target, inner.target)) return false;
  const innerCrosses = inner.crossTenant && namedTenant(inner.source) !== namedTenant(inner.target);
  return !innerCrosses || outer.crossTenant;
}

/** Index keys an earlier rule's source must have to contain this source selector. */
function containerKeys(s: Selector): string[] {
  const keys = ["*"];
  const t = namedTenant(s);
  if (t !== undefined) keys.push(`t:${t}`);
  if (s.kind === "group") keys.push(`g:${s.group}`);
  if (s.kind === "name") keys.push(`n:${s.name}`);
  if (s.kind === "user") keys.push(`u:${s.name}`);
  if (s.kind === "external") return ["x"];
  return keys;
}

function ownKey(s: Selector): string {
  switch (s.kind) {
    case "any": return "*";
    case "tenant": return `t:${s.tenant}`;
    case "group": return `g:${s.group}`;
    case "name": return `n:${s.name}`;
    case "user": return `u:${s.name}`;
    case "external": return "x";
  }
}

export function analyseOverlaps(rules: CompiledRule[], issues: Issues): void {
  const bySource = new Map<string, CompiledRule[]>();
  let budget = MAX_SHADOW_COMPARISONS;
  for (const rule of rules) {
    let dup: CompiledRule | undefined, shadow: CompiledRule | undefined;
    for (const key of containerKeys(rule.source)) {
      for (const earlier of bySource.get(key) ?? []) {
        if (--budget < 0) {
          issues.warning({ line: rule.line }, `duplicate/shadow analysis stopped at rule ${rule.index}: the policy is too large to compare every pair`);
          return;
        }
        if (!covers(earlier, rule)) continue;
        if (covers(rule, earlier)) { if (!dup || earlier.index < dup.index) dup = earlier; }
        else if (!shadow || earlier.index < shadow.index) shadow = earlier;
      }
    }
    if (dup) issues.error({ line: rule.line }, `rule ${rule.index} duplicates rule ${dup.index} (line ${dup.line}): same sources, targets, protocols and ports`);
    else if (shadow) issues.warning({ line: rule.line }, `rule ${rule.index} is shadowed by rule ${shadow.index} (line ${shadow.line}): every flow it allows is already allowed there, so it never decides a flow`);
    const k = ownKey(rule.source);
    let list = bySource.get(k);
    if (!list) bySource.set(k, (list = []));
    list.push(rule);
  }
}
