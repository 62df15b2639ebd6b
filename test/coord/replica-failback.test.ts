// Fail-back: a node whose first (preferred) coordination replica died moves its stream to another, and moves
// back once the first has been healthy for `healthyForMs` plus a random jitter; a node with fail-back off stays.
// Real `ember coord` processes on a throwaway PostgreSQL; the preferred one is killed -9 and started again on its
// port. The timing is shortened through the CoordClient option (EMBER_COORD_FAILBACK does the same for `ember up`).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AdminClient } from "../../src/coord/admin-client.js";
import { CoordClient, enroll, type PeerMap } from "../../src/coord/client.js";
import { afterProbe, FAIL_BACK_DEFAULTS, parseFailBack } from "../../src/coord/fail-back.js";
import { ember } from "../helpers/cli.js";
import { postgresSkipReason } from "../helpers/postgres.js";
import { portOf, spawnCoord, startReplicaSet, waitFor, type CoordProcess, type Mesh, type ReplicaSet } from "./helpers.js";

const pgSkip = postgresSkipReason();
if (pgSkip) console.log(`replica fail-back test skipped: ${pgSkip}`);

describe("fail-back timing", () => {
  it("parses EMBER_COORD_FAILBACK: defaults, off, HEALTHY,JITTER[,PROBE]; a bad value is named", () => {
    expect(parseFailBack(undefined)).toEqual(FAIL_BACK_DEFAULTS);
    expect(parseFailBack("")).toEqual(FAIL_BACK_DEFAULTS);
    expect(parseFailBack("off")).toBe(false);
    expect(parseFailBack("2s,500ms")).toEqual({ healthyForMs: 2_000, jitterMs: 500, probeMs: FAIL_BACK_DEFAULTS.probeMs });
    expect(parseFailBack("2m,30s,10s")).toEqual({ healthyForMs: 120_000, jitterMs: 30_000, probeMs: 10_000 });
    expect(() => parseFailBack("soon")).toThrow(/EMBER_COORD_FAILBACK="soon": expected "off" or HEALTHY,JITTER\[,PROBE\]/);
    expect(() => parseFailBack("60s,later")).toThrow(/EMBER_COORD_FAILBACK: invalid duration "later"/);
    expect(() => parseFailBack("60s,30s,10ms")).toThrow(/at least 100ms/);
  });

  it("`ember up` refuses a bad EMBER_COORD_FAILBACK at once, with one line naming it", () => {
    const r = ember(["up", "--coord", "https://127.0.0.1:1,https://127.0.0.1:2", "--state", join(tmpdir(), "ember-failback-none"), "--listen", "127.0.0.1:0"],
      { env: { EMBER_COORD_FAILBACK: "soon" }, timeoutMs: 20_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('ember: EMBER_COORD_FAILBACK="soon": expected "off" or HEALTHY,JITTER[,PROBE], e.g. 60s,30s,15s\n');
  });

  it("a run of good probes must last healthyForMs; one failed probe starts it again", () => {
    let s = afterProbe(undefined, true, 1_000, 3_000);
    expect(s).toEqual({ healthySince: 1_000, ready: false });
    s = afterProbe(s.healthySince, true, 3_999, 3_000);
    expect(s.ready).toBe(false);
    expect(afterProbe(s.healthySince, true, 4_000, 3_000)).toEqual({ healthySince: 1_000, ready: true });
    s = afterProbe(s.healthySince, false, 3_500, 3_000);
    expect(s).toEqual({ healthySince: undefined, ready: false });
    expect(afterProbe(s.healthySince, true, 5_000, 3_000)).toEqual({ healthySince: 5_000, ready: false });
  });
});

describe.skipIf(!!pgSkip)("a node moves back to its preferred replica", () => {
  const TIMING = { healthyForMs: 1_500, jitterMs: 500, probeMs: 250 };
  let set: ReplicaSet | undefined;
  let mesh: Mesh | undefined;
  let reps: CoordProcess[] = [];
  const clients: CoordClient[] = [];
  const admin = (r: CoordProcess) => new AdminClient({ ...mesh!.adminFlags, coord: r.url }, {});
  const names = (m: PeerMap | undefined) => (m?.peers ?? []).map((p) => p.name);

  beforeAll(async () => {
    set = await startReplicaSet(2);
    ({ mesh, reps } = set);
    await admin(reps[0]).setPolicy(`version: 1\nrules:\n  - allow: {source: "*", target: "*"}\n`);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await set?.stop();
  });

  async function node(name: string, failBack: typeof TIMING | false, certTtlMs?: number): Promise<CoordClient> {
    const [a, b] = reps;
    const dir = join(mesh!.dir, name);
    await enroll({ coordUrl: `${a.url},${b.url}`, token: (await admin(a).createToken({ tenant: "acme", groups: [], roles: [], certTtlMs })).token, name, stateDir: dir });
    const c = new CoordClient({ coordUrl: `${a.url},${b.url}`, stateDir: dir, failBack, minBackoffMs: 200, maxBackoffMs: 1_000 });
    clients.push(c);
    c.start();
    await waitFor(() => c.map, 10_000, `${name}'s map`);
    return c;
  }

  it("a certificate renewal reopens the stream on the same replica (it used to rotate to the next)", async () => {
    const c = await node("node-r", false, 3_000);
    const origin = c.origin;
    await waitFor(() => (c.stats.renewals >= 2 && c.stats.connects >= 3 ? true : undefined), 10_000, "two renewals and their reconnects");
    expect(c.origin).toBe(origin);
    expect(c.stats.fullMaps).toBe(1); // each reconnect resumed on the same replica's epoch
    await c.stop();
  }, 30_000);

  it("after a kill -9 and restart of the preferred replica: back within healthy + jitter + one probe, not before healthy", async () => {
    const [a, b] = reps;
    const returning = await node("node-1", TIMING);
    const staying = await node("node-2", false);
    const originA = new URL(a.url).origin, originB = new URL(b.url).origin;
    expect([returning.origin, staying.origin]).toEqual([originA, originA]);

    await a.kill9();
    await waitFor(() => (returning.origin === originB && staying.origin === originB && returning.map ? true : undefined), 5_000, "both streams on replica b");
    let backAt = 0;
    returning.on("connected", () => { if (!backAt && returning.origin === originA) backAt = Date.now(); });

    // The preferred replica comes back on its own port and data directory.
    const restarted = await spawnCoord(mesh!, portOf(a.url), ["--store", set!.db], { dataDir: join(mesh!.dir, "data-0") });
    reps[0] = restarted;
    const upAt = Date.now();
    const bound = TIMING.healthyForMs + TIMING.jitterMs + TIMING.probeMs * 1.2 + 2_000;
    await waitFor(() => (backAt ? true : undefined), bound + 2_000, "node-1 back on replica a");
    const tookMs = backAt - upAt;
    // (It listened a moment before it printed its URL, which is when upAt was taken.)
    expect(tookMs).toBeGreaterThanOrEqual(TIMING.healthyForMs - 200);
    expect(tookMs).toBeLessThanOrEqual(bound);
    expect(returning.stats.failBacks).toBe(1);
    expect(staying.origin).toBe(originB);

    // The moved stream carries changes made anywhere: a node enrolled through b shows in node-1's map from a.
    const t = (await admin(b).createToken({ tenant: "acme", groups: [], roles: [] })).token;
    await enroll({ coordUrl: b.url, token: t, name: "node-3", stateDir: join(mesh!.dir, "node-3") });
    await waitFor(() => (names(returning.map).includes("node-3") ? true : undefined), 5_000, "node-3 in node-1's map");
    expect(returning.origin).toBe(originA);
    console.log(`fail-back: node-1 back on the preferred replica ${tookMs} ms after it listened again (healthy ${TIMING.healthyForMs} ms + jitter <= ${TIMING.jitterMs} ms, probe every ~${TIMING.probeMs} ms); node-2 (fail-back off) stayed on b`);
  }, 60_000);
});
