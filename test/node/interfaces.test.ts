// Interface candidates (src/node/interfaces.ts) from a given interface table: which addresses a node offers.
import { describe, expect, it } from "vitest";
import type { networkInterfaces } from "node:os";
import { hasRoutableAddress, localAddresses } from "../../src/node/interfaces.js";

type Table = ReturnType<typeof networkInterfaces>;
type Info = NonNullable<Table[string]>[number];
const addr = (address: string, internal = false): Info => address.includes(":")
  ? { address, internal, family: "IPv6", netmask: "", mac: "00:00:00:00:00:00", cidr: null, scopeid: 0 }
  : { address, internal, family: "IPv4", netmask: "", mac: "00:00:00:00:00:00", cidr: null };
const lo = [addr("127.0.0.1", true), addr("::1", true)];

describe("localAddresses", () => {
  it("an IPv4-only host offers its IPv4 address and no IPv6 loopback", () => {
    const t: Table = { lo, eth0: [addr("198.19.5.10"), addr("fe80::1")] };
    expect(localAddresses("0.0.0.0", 4, t)).toEqual(["198.19.5.10"]);
    expect(localAddresses("::", 6, t)).toEqual([]);
  });

  it("an IPv6-only host (NAT64 site) offers global and ULA addresses and no 127.0.0.1", () => {
    const t: Table = { lo, eth0: [addr("2001:db8:1:6::10"), addr("fd00:0:1:6::10"), addr("fe80::2")] };
    expect(localAddresses("::", 6, t)).toEqual(["2001:db8:1:6::10", "fd00:0:1:6::10"]);
    expect(localAddresses("0.0.0.0", 4, t)).toEqual([]);
  });

  it("a host with loopback alone offers loopback (a single-host mesh)", () => {
    expect(localAddresses("0.0.0.0", 4, { lo })).toEqual(["127.0.0.1"]);
    expect(localAddresses("::", 6, { lo })).toEqual(["::1"]);
  });

  it("a bound address is offered as is", () => {
    expect(localAddresses("::1", 6, { lo, eth0: [addr("198.19.5.10")] })).toEqual(["::1"]);
  });
});

describe("hasRoutableAddress", () => {
  it("says which families have an address beside loopback and link-local", () => {
    const t: Table = { lo, eth0: [addr("2001:db8:1:6::10"), addr("fe80::2")] };
    expect([hasRoutableAddress(4, t), hasRoutableAddress(6, t)]).toEqual([false, true]);
    expect(hasRoutableAddress(6, { lo, eth0: [addr("198.19.5.10"), addr("fe80::1")] })).toBe(false);
  });
});
