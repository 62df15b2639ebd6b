// The main job as a user runs it: `ember demo` builds a whole mesh on loopback, connects by name, fetches a
// page from dashboard-1 through laptop-1's proxy, shows db-1 refused with its reason, logs a person in on
// laptop-1 to reach a user: service, and leaves nothing behind.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ember } from "../helpers/cli.js";

describe("ember demo", () => {
  it("fetches by name through the proxy and refuses db-1 with the policy's reason", () => {
    const r = ember(["demo", "--json"], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.flows.map((f: { allow: boolean }) => f.allow)).toEqual([true, false, false]);
    // Every node names its release, and every connected peer the protocol it announced: this release's own.
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, "../../package.json"), "utf8"));
    for (const n of out.nodes) {
      expect(n.release.version, n.name).toBe(pkg.version);
      const connected = n.peers.filter((p: { state: string }) => p.state === "connected");
      expect(connected.length, n.name).toBeGreaterThan(0);
      for (const p of connected) expect(p.protocol, `${n.name} -> ${p.name}`).toBe(n.release.protocol);
    }
    const [web, db, asMachine, asUser] = out.fetches;
    expect(web).toMatchObject({ url: "http://web.dashboard-1/", status: 200 });
    expect(web.body).toContain("EmberNet demo dashboard on dashboard-1");
    expect(db).toMatchObject({ url: "http://db-1:5432/", status: 403 });
    expect(db.body).toMatch(/policy denies laptop-1\.demo -> db-1\.demo:5432\/tcp: default deny/);
    // Step 8: a user: rule refuses the machine and admits the person once she logs in on it.
    expect(asMachine).toMatchObject({ url: "http://admin.db-1/", as: "laptop-1", status: 403 });
    expect(asUser).toMatchObject({ url: "http://admin.db-1/", as: "user:alice", status: 200 });
    expect(asUser.body).toContain("db-1 admin, for alice only");
  }, 150_000);
});
