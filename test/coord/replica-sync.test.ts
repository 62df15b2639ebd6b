// The pure decisions of replica-sync.ts: which changes a replica must re-read, and what its MapHub must do
// for one node given the database row and what the hub holds.
import { describe, expect, it } from "vitest";
import { decideNode, planChanges } from "../../src/coord/replica-sync.js";
import type { Change } from "../../src/coord/change-feed.js";
import type { HubPeer } from "../../src/coord/map-hub.js";
import type { NodeRecord } from "../../src/coord/store.js";

const row = (over: Partial<NodeRecord> = {}): NodeRecord => ({
  name: "db-1", tenant: "acme", groups: ["db"], roles: [], enrollmentId: "e1", status: "active", enrolledAt: 1, tokenId: "t",
  certTtlMs: 1, serial: "s1", certPem: "P1", notAfter: 2, endpoints: ["198.18.0.1:1"], homeRelay: "r1", lastSeen: 5, overlayIp: "100.64.0.1", ...over,
});
const held = (over: Partial<HubPeer> = {}): HubPeer => ({
  name: "db-1", tenant: "acme", groups: ["db"], certPem: "P1", serial: "s1", enrollmentId: "e1", endpoints: ["198.18.0.1:1"],
  homeRelay: "r1", online: false, lastSeen: 5, overlayIp: "100.64.0.1", ...over,
});

describe("planChanges", () => {
  const ch = (seq: number, kind: Change["kind"], origin: string, name?: string): Change => ({ seq, kind, origin, at: 1000 + seq, ...(name ? { name } : {}) });

  it("skips this replica's own changes but moves past them", () => {
    expect(planChanges([ch(4, "node", "me", "a"), ch(5, "policy", "me")], "me", 3)).toEqual({ lastSeq: 5, names: [], revocation: false, policy: false, foreign: 0 });
  });

  it("collects each node once and flags the list and the policy", () => {
    const p = planChanges([ch(1, "node", "x", "a"), ch(2, "status", "y", "a"), ch(3, "revoke", "x", "b"), ch(4, "policy", "y"), ch(5, "node", "me", "c")], "me", 0);
    expect(p).toEqual({ lastSeq: 5, names: ["a", "b"], revocation: true, policy: true, foreign: 4, oldestAt: 1001 });
    expect(planChanges([ch(9, "revocation", "x")], "me", 8)).toMatchObject({ revocation: true, names: [] });
    // Publications are re-read when one changed; enrollments and revocations reach external access node by node.
    expect(planChanges([ch(6, "publication", "x", "a")], "me", 5).publications).toBe(true);
    expect(planChanges([ch(6, "node", "x", "a"), ch(7, "revoke", "x", "b")], "me", 5).publications).toBeUndefined();
    expect(planChanges([], "me", 7)).toMatchObject({ lastSeq: 7, foreign: 0 });
  });
});

describe("decideNode", () => {
  it("revokes what the hub holds when the row is revoked or gone, and ignores what it does not hold", () => {
    expect(decideNode(row({ status: "revoked" }), held(), false)).toBe("revoke");
    expect(decideNode(undefined, held(), true)).toBe("revoke");
    expect(decideNode(row({ status: "revoked" }), undefined, false)).toBe("none");
  });

  it("upserts a new node, a re-enrollment, a renewed certificate", () => {
    expect(decideNode(row(), undefined, false)).toBe("upsert");
    expect(decideNode(row({ enrollmentId: "e2" }), held(), true)).toBe("upsert");
    expect(decideNode(row({ certPem: "P2" }), held(), true)).toBe("upsert");
  });

  it("takes status from the database only for nodes whose stream is elsewhere", () => {
    expect(decideNode(row({ endpoints: ["198.18.0.9:9"] }), held(), false)).toBe("status");
    expect(decideNode(row({ lastSeen: 6 }), held(), false)).toBe("status");
    expect(decideNode(row({ endpoints: ["198.18.0.9:9"] }), held(), true)).toBe("none");
    expect(decideNode(row(), held(), false)).toBe("none");
  });
});
