// Address changes and wake-ups (src/node/network-change.ts, pure; src/node/network-watch.ts, the poller).
import { describe, expect, it } from "vitest";
import {
  addressEntries, defaultRoutes, diffNetwork, movedAway, sleptMs, WAKE_LATE_FACTOR, WAKE_MIN_LATE_MS, type NetworkSnapshot,
} from "../../src/node/network-change.js";
import { NetworkWatch, WATCH_ACTIVE_MS, type NetworkChange } from "../../src/node/network-watch.js";
import type { NetworkInterfaceInfo } from "node:os";

const v4 = (address: string, internal = false): NetworkInterfaceInfo =>
  ({ address, netmask: "255.255.255.0", family: "IPv4", mac: "00:00:00:00:00:00", internal, cidr: `${address}/24` });
const v6 = (address: string): NetworkInterfaceInfo =>
  ({ address, netmask: "ffff:ffff:ffff:ffff::", family: "IPv6", mac: "00:00:00:00:00:00", internal: false, cidr: `${address}/64`, scopeid: 0 });

// As the lab's hosts have them: a default route and the LAN's own; IPv6 with the kernel's unreachable entry on lo.
const ROUTE = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t011313C6\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t001313C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
`;
const IPV6_ROUTE = `20010db8000100010000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8000100010000000000000001 00000400 00000002 00000000 00000003 eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo
`;

describe("network changes (pure)", () => {
  it("addresses: every one a peer could use, by interface; never loopback, link-local or the overlay", () => {
    const table = { lo: [v4("127.0.0.1", true)], eth0: [v4("198.19.1.10"), v6("fe80::1"), v6("2001:db8:1:1::10")], ember0: [v4("100.64.0.7")] };
    expect(addressEntries(table)).toEqual(["eth0 198.19.1.10", "eth0 2001:db8:1:1::10"]);
  });

  it("default routes from /proc: IPv4 and IPv6, not the kernel's unreachable entry", () => {
    expect(defaultRoutes(ROUTE, IPV6_ROUTE)).toEqual(["default eth0 via 198.19.19.1", "default eth0 via 2001:0db8:0001:0001:0000:0000:0000:0001"]);
    expect(defaultRoutes("", "")).toEqual([]);
  });

  it("diff: what was added and removed, undefined when nothing changed; movedAway unless an address was only added", () => {
    const a: NetworkSnapshot = { addresses: ["eth0 198.19.1.10"], routes: ["default eth0 via 198.19.1.1"] };
    expect(diffNetwork(a, { ...a })).toBeUndefined();
    const renumbered = { addresses: ["eth0 198.19.1.11"], routes: a.routes };
    expect(diffNetwork(a, renumbered)).toEqual({ added: ["eth0 198.19.1.11"], removed: ["eth0 198.19.1.10"] });
    expect(movedAway(diffNetwork(a, renumbered)!)).toBe(true);
    const joined = { addresses: [...a.addresses, "wlan0 198.19.7.10"], routes: a.routes };
    expect(movedAway(diffNetwork(a, joined)!)).toBe(false);
    // A link back: its address and then its route; the route alone is a move (the old TCP and NAT state are stale).
    const down = { addresses: [], routes: [] };
    expect(movedAway(diffNetwork(down, { addresses: a.addresses, routes: [] })!)).toBe(false);
    expect(movedAway(diffNetwork({ addresses: a.addresses, routes: [] }, a)!)).toBe(true);
  });

  it("sleptMs: a timer far later than due on either clock is a wake-up; a stalled loop is not", () => {
    const due = { wallMs: 1_000_000, monoMs: 5_000 };
    const period = 1_000;
    const floor = Math.max(WAKE_LATE_FACTOR * period, WAKE_MIN_LATE_MS);
    expect(sleptMs(due, { wallMs: due.wallMs + 1_500, monoMs: due.monoMs + 1_500 }, period)).toBe(0);
    expect(sleptMs(due, { wallMs: due.wallMs + floor, monoMs: due.monoMs + floor }, period)).toBe(0);
    // SIGSTOP for 120 s: both clocks moved on.
    expect(sleptMs(due, { wallMs: due.wallMs + 120_000, monoMs: due.monoMs + 120_000 }, period)).toBe(120_000);
    // A suspended laptop: the monotonic clock stood still, the wall clock did not.
    expect(sleptMs(due, { wallMs: due.wallMs + 600_000, monoMs: due.monoMs + 2 }, period)).toBe(600_000);
    // A period of 5 s at rest: late by less than two periods is no sleep.
    expect(sleptMs(due, { wallMs: due.wallMs + 9_000, monoMs: due.monoMs + 9_000 }, 5_000)).toBe(0);
  });
});

describe("network watch (the poller)", () => {
  it("reports a change on the next look, and nothing while the network stays as it is", async () => {
    let snap: NetworkSnapshot = { addresses: ["eth0 198.19.1.10"], routes: ["default eth0 via 198.19.1.1"] };
    const changes: NetworkChange[] = [];
    const w = new NetworkWatch({ onChange: (c) => changes.push(c), active: () => true, read: () => snap, netlink: false });
    w.start();
    try {
      await new Promise((r) => setTimeout(r, WATCH_ACTIVE_MS * 1.5));
      expect(changes).toEqual([]);
      snap = { addresses: ["eth0 198.19.1.11"], routes: snap.routes };
      const t0 = Date.now();
      while (!changes.length && Date.now() - t0 < WATCH_ACTIVE_MS * 3) await new Promise((r) => setTimeout(r, 20));
      expect(changes).toEqual([{ why: "address", added: ["eth0 198.19.1.11"], removed: ["eth0 198.19.1.10"] }]);
      expect(Date.now() - t0).toBeLessThanOrEqual(WATCH_ACTIVE_MS + 200);
    } finally {
      w.stop();
    }
  });
});
