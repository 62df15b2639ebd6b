// Group commit in the SQLite store: enrollments of one event-loop turn share a transaction (one fsync), yet
// each is judged alone (token uses, names), a failing one rolls back alone, and every promise settles only
// after the commit, with its rows on disk.
import { afterAll, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { join } from "node:path";
import { DB_FILE, SqliteStore } from "../../src/coord/sqlite-store.js";
import type { NodeRecord } from "../../src/coord/store.js";
import { tempDir } from "./helpers.js";

function enrollArgs(name: string, tokenId: string, serial = `s-${name}`) {
  const node: NodeRecord = {
    name, tenant: "acme", groups: [], roles: [], enrollmentId: `e-${name}`, status: "active", enrolledAt: 1, tokenId, certTtlMs: 60_000,
    serial, certPem: "PEM", notAfter: Date.now() + 60_000, endpoints: [],
  };
  return { tokenId, now: Date.now(), node, nameFree: () => false, cert: { serial, name, enrollmentId: node.enrollmentId, notAfter: node.notAfter, issuedAt: 1, kind: "enroll" as const } };
}

describe("SqliteStore group commit", () => {
  const tmp = tempDir("ember-group-commit-");
  afterAll(() => tmp.cleanup());

  it("judges each enrollment of a batch alone and settles each after the shared commit", async () => {
    const dir = join(tmp.dir, "a");
    const s = new SqliteStore(dir);
    await s.migrate();
    await s.createToken({ id: "t3", secretHash: "", tenant: "acme", groups: [], roles: [], usesLeft: 3, usesTotal: 3, expiresAt: Date.now() + 60_000, certTtlMs: 60_000, createdAt: 1, createdBy: "t" });
    // Same event-loop turn: one batch. Five ask for a 3-use token, one repeats a name, one reuses a serial (a constraint error).
    const names = ["a-1", "a-2", "a-3", "a-4", "a-5"];
    const settled = await Promise.allSettled([
      ...names.map((n) => s.enroll(enrollArgs(n, "t3"))),
      s.enroll(enrollArgs("a-1", "t3")),
      s.enroll(enrollArgs("zz-1", "t3", "s-a-1")),
      s.enroll(enrollArgs("nobody-1", "missing")),
    ]);
    const outcome = settled.map((r) => r.status === "rejected" ? "error" : r.value.ok ? "ok" : r.value.reason);
    expect(outcome).toEqual(["ok", "ok", "ok", "token_used", "token_used", "token_used", "token_used", "token_unknown"]);
    expect((await s.getToken("t3"))!.usesLeft).toBe(0);

    // A constraint error rolls back that enrollment only (its token use included).
    await s.createToken({ id: "t9", secretHash: "", tenant: "acme", groups: [], roles: [], usesLeft: 9, usesTotal: 9, expiresAt: Date.now() + 60_000, certTtlMs: 60_000, createdAt: 1, createdBy: "t" });
    const second = await Promise.allSettled([s.enroll(enrollArgs("b-1", "t9")), s.enroll(enrollArgs("b-2", "t9", "s-a-2")), s.enroll(enrollArgs("b-3", "t9"))]);
    expect(second.map((r) => r.status === "rejected" ? "error" : r.value.ok)).toEqual([true, "error", true]);
    expect((await s.getToken("t9"))!.usesLeft).toBe(7);

    // Acknowledged means committed: another connection sees every acknowledged row.
    const raw = new Database(join(dir, DB_FILE), { readonly: true });
    expect((raw.prepare("SELECT name FROM nodes ORDER BY name").all() as { name: string }[]).map((r) => r.name)).toEqual(["a-1", "a-2", "a-3", "b-1", "b-3"]);
    raw.close();
    await s.close();
  });

  it("commits a burst larger than one batch", async () => {
    const s = new SqliteStore(join(tmp.dir, "b"));
    await s.migrate();
    await s.createToken({ id: "big", secretHash: "", tenant: "acme", groups: [], roles: [], usesLeft: 600, usesTotal: 600, expiresAt: Date.now() + 60_000, certTtlMs: 60_000, createdAt: 1, createdBy: "t" });
    const r = await Promise.all(Array.from({ length: 600 }, (_, i) => s.enroll(enrollArgs(`n-${i}`, "big"))));
    expect(r.every((x) => x.ok)).toBe(true);
    expect((await s.listNodes()).length).toBe(600);
    await s.close();
  });
});
