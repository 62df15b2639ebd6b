// The main job as a user runs it: `ember demo` builds a whole mesh on loopback, connects by name, fetches a
// page from dashboard-1 through laptop-1's proxy, shows db-1 refused with its reason, and leaves nothing behind.
import { describe, expect, it } from "vitest";
import { ember } from "../helpers/cli.js";

describe("ember demo", () => {
  it("fetches by name through the proxy and refuses db-1 with the policy's reason", () => {
    const r = ember(["demo", "--json"], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.flows.map((f: { allow: boolean }) => f.allow)).toEqual([true, false, false]);
    const [web, db] = out.fetches;
    expect(web).toMatchObject({ url: "http://web.dashboard-1/", status: 200 });
    expect(web.body).toContain("EmberNet demo dashboard on dashboard-1");
    expect(db).toMatchObject({ url: "http://db-1:5432/", status: 403 });
    expect(db.body).toMatch(/policy denies laptop-1\.demo -> db-1\.demo:5432\/tcp: default deny/);
  }, 150_000);
});
