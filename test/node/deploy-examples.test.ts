// The shipped deployment examples stay valid: the node config loads, the policy parses and its embedded
// tests pass, the Grafana dashboard asks only for metrics the node, relay and coordination server export,
// and the systemd units keep their hardening.
import { describe, expect, it } from "vitest";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { loadNodeConfig } from "../../src/node/config.js";
import { parsePolicy } from "../../src/policy/index.js";

const root = join(import.meta.dirname, "..", "..");
const read = (p: string) => readFileSync(join(root, p), "utf8");

describe("deployment examples", () => {
  it("node.yaml loads and policy.yaml parses", async () => {
    const c = await loadNodeConfig({ config: join(root, "examples/deploy/node.yaml") });
    expect(c).toMatchObject({ stateDir: "/var/lib/ember", coordUrl: "https://coord.example.net", coordReplicas: ["https://coord.example.net"], metrics: { host: "127.0.0.1", port: 9101 }, proxy: { host: "127.0.0.1", port: 1080 } });
    expect(c.services.map((s) => s.name)).toEqual(["web"]);
    const p = parsePolicy(read("examples/deploy/policy.yaml"));
    expect(p.ok).toBe(true);
  });

  it("the Grafana dashboard queries only exported metric names", () => {
    const d = JSON.parse(read("examples/grafana/embernet.json"));
    const exported = [read("src/node/metrics.ts"), read("src/coord/metrics.ts"), read("relay/metrics.ts")].join("\n");
    const names = new Set<string>();
    for (const p of d.panels) for (const t of p.targets) for (const m of t.expr.matchAll(/\bember_[a-z_]+/g)) names.add(m[0].replace(/_(bucket|count|sum)$/, ""));
    expect(names.size).toBeGreaterThan(10);
    for (const n of names) expect(exported, n).toContain(n);
  });

  it("the systemd units run unprivileged with only the capabilities they need", () => {
    const dir = join(root, "examples/deploy/systemd");
    for (const f of readdirSync(dir)) {
      const u = readFileSync(join(dir, f), "utf8");
      expect(u, f).toMatch(/^User=ember/m);
      expect(u, f).toMatch(/^NoNewPrivileges=yes$/m);
      expect(u, f).toMatch(/^ProtectSystem=strict$/m);
      expect(u, f).toMatch(/^CapabilityBoundingSet=(CAP_NET_BIND_SERVICE)?$/m);
    }
  });
});
