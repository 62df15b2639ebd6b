// Layering rules, checked on the sources: lower layers never import the CLI, and the relay stays deployable
// alone (it may use pki, wire and nat, never the coordination server, the node or the CLI).
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
});
