// Which publications are active and what each edge is told (src/coord/publications.ts): an external rule for the
// service's port decides; an edge gets its own tenant's active publications only, and a link to each publisher.
import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/policy/index.js";
import { planEdges, publicationState } from "../../src/coord/publications.js";
import type { PublicationRecord } from "../../src/coord/store.js";

function policy(text: string) {
  const r = parsePolicy(text);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.policy;
}
const P = policy(`rules:
  - allow: {source: external, target: "service:status-page"}
  - allow: {source: "*", target: "*"}
services:
  status-page: {node: web-1, port: 443, protocol: https}
`);
const rec = (hostname: string, node: string, service: string, port: number, tenant = "acme"): PublicationRecord =>
  ({ hostname, tenant, node, service, port, protocol: "https", clientAuth: "none", createdAt: 0, createdBy: node });
const web = { name: "web-1", tenant: "acme", groups: [] };

describe("publication state and edge plan", () => {
  it("is active only where an external rule allows the service's port; `*` never admits external", () => {
    expect(publicationState(P, rec("s.example.test", "web-1", "status-page", 443), web)).toMatchObject({ active: true, rule: expect.stringMatching(/external/) });
    expect(publicationState(P, rec("a.example.test", "web-1", "admin", 9443), web)).toMatchObject({ active: false, reason: expect.stringMatching(/no external rule allows service:admin on web-1 \(tcp port 9443\)/) });
    expect(publicationState(P, rec("s.example.test", "web-1", "status-page", 443), undefined)).toMatchObject({ active: false, reason: /not an active node/ });
    expect(publicationState(P, rec("s.example.test", "web-1", "status-page", 443), { ...web, tenant: "globex" })).toMatchObject({ active: false });
  });

  it("gives each edge its tenant's active publications and links it to their nodes", () => {
    const states = [
      publicationState(P, rec("s.example.test", "web-1", "status-page", 443), web),
      publicationState(P, rec("a.example.test", "web-1", "admin", 9443), web),
      { record: rec("g.example.test", "gx-1", "status-page", 443, "globex"), active: true, reason: "test" },
    ];
    const plan = planEdges([{ name: "edge-1", tenant: "acme" }, { name: "edge-g", tenant: "globex" }], states, "KEY");
    expect(plan.links).toEqual([["edge-1", "web-1"], ["edge-g", "gx-1"]]);
    expect(plan.views.get("edge-1")).toEqual({ tokenKeyPem: "KEY", publications: [{ hostname: "s.example.test", node: "web-1", service: "status-page", port: 443, protocol: "https", clientAuth: "none" }] });
    expect(plan.views.get("edge-g")!.publications.map((p) => p.hostname)).toEqual(["g.example.test"]);
  });
});
