// Layering rules, checked on the sources: lower layers never import the CLI, and the relay stays deployable
// alone (it may use pki, wire and nat, never the coordination server, the node or the CLI). The coordination
// protocol (src/wire/coord) and its clients (src/coord-client) sit below the server (src/coord): nodes, edges,
// the SDK and the relay talk to the server through them, never by importing it (docs/architecture.md).
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

/** Every relative import of a file, as a path from the repository root. */
function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs = [...text.matchAll(/\bfrom\s+"(\.[^"]+)"|\bimport\(\s*"(\.[^"]+)"\s*\)/g)].map((m) => m[1] ?? m[2]);
  return specs.map((s) => relative(root, resolve(dirname(file), s)));
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

  it("src/node, src/edge, src/sdk and relay/ import nothing of the coordination server (src/coord)", () => {
    const files = ["src/node", "src/edge", "src/sdk", "relay"].flatMap((d) => sources(join(root, d)));
    expect(files.length).toBeGreaterThan(30);
    expect(violations(files, /^src\/coord\//)).toEqual([]);
  });

  it("the coordination protocol (src/wire) imports only src/wire, and its clients (src/coord-client) never the server", () => {
    const wire = sources(join(root, "src/wire"));
    expect(wire.length).toBeGreaterThan(10);
    expect(violations(wire, /^(?!src\/wire\/)/)).toEqual([]);
    const clients = sources(join(root, "src/coord-client"));
    expect(clients.length).toBeGreaterThan(3);
    expect(violations(clients, /^src\/(coord|node|cli)\//)).toEqual([]);
  });

  it("no import cycle between files of src/coord, src/coord-client and src/wire (type-only imports count)", () => {
    const files = ["src/coord", "src/coord-client", "src/wire"].flatMap((d) => sources(join(root, d)));
    expect(cycles(files)).toEqual([]);
  });
});

/** Files that reach themselves through imports (each cycle once, as the files on it, sorted), among `files`. */
function cycles(files: string[]): string[][] {
  const names = new Set(files.map((f) => relative(root, f)));
  const edges = new Map(files.map((f) => [relative(root, f), imports(f).map((i) => i.replace(/\.js$/, ".ts")).filter((i) => names.has(i))]));
  // Tarjan's strongly connected components: a component of more than one file, or a file importing itself, is a cycle.
  let next = 0;
  const index = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next); low.set(v, next); next++;
    stack.push(v); onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do { w = stack.pop()!; onStack.delete(w); scc.push(w); } while (w !== v);
    if (scc.length > 1 || edges.get(v)!.includes(v)) found.push(scc.sort());
  };
  for (const v of names) if (!index.has(v)) visit(v);
  return found;
}
