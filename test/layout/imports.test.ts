// Layering rules, checked on the sources: lower layers never import the CLI, the node, the native addon or
// src/net; the relay stays deployable alone (it may use pki, wire and nat, never the coordination server, the
// node or the CLI); and no two files import each other's values in a cycle (docs/architecture.md).
import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";

const root = resolve(import.meta.dirname, "../..");

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Every relative import of a file, as a path from the repository root; valuesOnly skips `import type`. */
function imports(file: string, valuesOnly = false): string[] {
  const text = readFileSync(file, "utf8");
  const specs = [...text.matchAll(/\b(import\s+type\b[^;]*?|export\s+type\b[^;]*?)?\bfrom\s+"(\.[^"]+)"|\bimport\(\s*"(\.[^"]+)"\s*\)/g)]
    .filter((m) => !(valuesOnly && m[1]))
    .map((m) => m[2] ?? m[3]);
  return specs.map((s) => relative(root, resolve(dirname(file), s)));
}

/** Files in import cycles (strongly connected components of more than one file), by value imports. */
function valueCycles(files: string[]): string[][] {
  const key = (p: string) => p.replace(/\.js$/, ".ts");
  const graph = new Map(files.map((f) => [relative(root, f), imports(f, true).map(key)]));
  let next = 0;
  const index = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next); low.set(v, next); next++; stack.push(v); onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const c: string[] = [];
    let w: string;
    do { w = stack.pop()!; onStack.delete(w); c.push(w); } while (w !== v);
    if (c.length > 1) out.push(c.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

function violations(files: string[], forbidden: RegExp): string[] {
  return files.flatMap((f) => imports(f).filter((i) => forbidden.test(i)).map((i) => `${relative(root, f)} -> ${i}`));
}

describe("layering", () => {
  it("no module outside src/cli imports src/cli", () => {
    const files = sources(join(root, "src")).filter((f) => !relative(root, f).startsWith("src/cli/"));
    expect(files.length).toBeGreaterThan(50);
    expect(violations(files, /^src\/cli\//)).toEqual([]);
  });

  it("relay/ imports nothing from src/coord, src/node or src/cli", () => {
    const files = sources(join(root, "relay"));
    expect(files.length).toBeGreaterThan(5);
    expect(violations(files, /^src\/(coord|node|cli)\//)).toEqual([]);
  });

  it("the lower layers import no higher one, nor the native addon or src/net", () => {
    const lower = ["addr", "clock", "wire", "crypto", "pki", "session", "transport", "policy", "nat"];
    const files = lower.flatMap((d) => sources(join(root, "src", d)));
    expect(files.length).toBeGreaterThan(80);
    expect(violations(files, /^src\/(native|net|node|coord|cli|access|edge|sdk)\//)).toEqual([]);
  });

  it("src/addr and src/clock are leaves", () => {
    const files = ["addr", "clock"].flatMap((d) => sources(join(root, "src", d)));
    expect(violations(files, /^src\/(?!addr\/|clock\/)/)).toEqual([]);
  });

  it("no value-import cycles between files (a type-only import back to a composition root is allowed)", () => {
    const files = sources(join(root, "src"));
    expect(valueCycles(files)).toEqual([]);
  });
});
