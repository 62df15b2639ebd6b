// The connection guard on its own, in-process on a plain net.Server: limits clamped to the descriptor limit,
// per-source keys (IPv6 by /64), oldest-pending eviction, refusal when every slot is authenticated, the
// deadline, and its accounting returning to zero.
import { afterEach, describe, expect, it } from "vitest";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { ConnectionGuard, effectiveLimits, FD_RESERVE } from "../../src/net/conn-guard.js";
import { sourceKey } from "../../src/addr/source-key.js";
import { waitFor } from "../relay/helpers.js";

let server: Server | undefined;
const clients: Socket[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function guarded(guard: ConnectionGuard, onConn: (s: Socket) => void = () => {}): Promise<number> {
  server = createServer((s) => { s.on("error", () => {}); onConn(s); });
  guard.attach(server);
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
  return (server.address() as AddressInfo).port;
}

function open(port: number, localAddress = "127.0.0.1"): Promise<{ s: Socket; closed: () => boolean }> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port, localAddress });
    clients.push(s);
    let closed = false;
    s.on("error", () => {});
    s.on("close", () => { closed = true; });
    s.once("connect", () => resolve({ s, closed: () => closed }));
  });
}

describe("connection guard", () => {
  it("clamps the total below the descriptor limit and the pending budget to half the total", () => {
    const l = effectiveLimits({ maxConnections: 10_000, maxPending: 1_024, maxPendingPerSource: 16, pendingDeadlineMs: 10_000 }, 256);
    expect(l.maxConnections).toBe(256 - FD_RESERVE);
    expect(l.maxPending).toBe(Math.floor((256 - FD_RESERVE) / 2));
    expect(l.clampedBy).toMatch(/open-file limit 256/);
    const u = effectiveLimits({ maxConnections: 100, maxPending: 1_024, maxPendingPerSource: 500, pendingDeadlineMs: 1 }, undefined);
    expect(u).toMatchObject({ maxConnections: 100, maxPending: 50, maxPendingPerSource: 50 });
    expect(() => new ConnectionGuard({ maxConnections: 0, maxPending: 1, maxPendingPerSource: 1, pendingDeadlineMs: 1 })).toThrow(/positive/);
  });

  it("counts IPv4 by address and IPv6 by /64", () => {
    expect(sourceKey("198.18.0.1")).toBe("198.18.0.1");
    expect(sourceKey("::ffff:198.18.0.1")).toBe("198.18.0.1");
    expect(sourceKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(sourceKey("2001:db8:1:2::ffff")).toBe("2001:db8:1:2::/64");
    expect(sourceKey("2001:0db8:0001:0002:0:0:0:1")).toBe("2001:db8:1:2::/64");
    expect(sourceKey("::1")).toBe("0:0:0:0::/64");
    expect(sourceKey(undefined)).toBe("?");
  });

  it("evicts the oldest pending socket to admit a new one, never an authenticated one, and refuses when all are authenticated", async () => {
    const events: string[] = [];
    const guard = new ConnectionGuard({ maxConnections: 4, maxPending: 2, maxPendingPerSource: 10, pendingDeadlineMs: 60_000 }, (e) => events.push(e), null);
    const accepted: Socket[] = [];
    const port = await guarded(guard, (s) => accepted.push(s));
    let n = 20;
    const open1 = () => open(port, `127.0.0.${n++}`);
    const a = await open1();
    const b = await open1();
    await waitFor(() => accepted.length === 2, "two accepted");
    expect(guard.authenticate(accepted[0])).toBe(true); // a is authenticated
    const c = await open1();
    const d = await open1(); // pending budget (2) full with b, c: b, the oldest pending, goes
    await waitFor(() => b.closed(), `b evicted (events ${events}, ${JSON.stringify(guard.snapshot())}, closed ${[a, b, c, d].map((x) => x.closed())})`, 2_000);
    expect(a.closed() || c.closed() || d.closed()).toBe(false);
    expect(events).toEqual(["evicted"]);
    await waitFor(() => accepted.length === 4, "four accepted");
    guard.authenticate(accepted[2]);
    guard.authenticate(accepted[3]);
    expect(guard.snapshot()).toMatchObject({ connections: 3, pending: 0, authenticated: 3 });
    const e = await open1();
    await waitFor(() => accepted.length === 5, "e accepted");
    guard.authenticate(accepted[4]);
    const f = await open1(); // 4 authenticated: nothing to evict
    await waitFor(() => f.closed(), "f refused");
    expect(events).toEqual(["evicted", "capacity"]);
    expect(e.closed()).toBe(false);
    for (const x of [a, c, d, e]) x.s.destroy();
    await waitFor(() => guard.snapshot().connections === 0, "all closed and forgotten");
  });

  it("refuses over the per-source limit and destroys sockets still pending at the deadline", async () => {
    const guard = new ConnectionGuard({ maxConnections: 100, maxPending: 50, maxPendingPerSource: 3, pendingDeadlineMs: 300 }, () => {}, null);
    const port = await guarded(guard);
    const same = await Promise.all(Array.from({ length: 5 }, () => open(port, "127.0.0.9")));
    const other = await open(port, "127.0.0.10");
    await waitFor(() => same.filter((x) => x.closed()).length === 2, "two over the per-source limit refused");
    expect(other.closed()).toBe(false);
    const t0 = Date.now();
    await waitFor(() => same.every((x) => x.closed()) && other.closed(), "deadline", 3_000);
    expect(Date.now() - t0).toBeLessThan(2_000);
    const snap = guard.snapshot();
    expect(snap.dropped).toMatchObject({ per_source_limit: 2, deadline: 4 });
    expect(snap).toMatchObject({ connections: 0, pending: 0 });
    guard.close();
  });
});
