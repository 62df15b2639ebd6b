// A node's own candidates (src/node/candidates.ts) against a real STUN responder on loopback: whether the node
// sits behind no NAT (its mapped address is its own address and port: it holds nothing at rest, src/nat/hold.ts)
// or behind a translation (a UDP forwarder in between, which the responder sees instead of the node).
import { afterEach, describe, expect, it } from "vitest";
import { createSocket, type Socket } from "node:dgram";
import { StunResponder } from "../../relay/stun-server.js";
import { RelayCounters } from "../../relay/metrics.js";
import { UdpConn } from "../../src/node/udp-conn.js";
import { LocalCandidates } from "../../src/node/candidates.js";

const quiet = { debug() {}, warn() {} };
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

async function responder(host = "127.0.0.1"): Promise<number> {
  const r = new StunResponder(new RelayCounters(), { perSec: 1000, perSourcePerSec: 100, perSourceBurst: 100, recvBufferBytes: 1 << 20 });
  const a = await r.listen(host, 0);
  cleanups.push(() => r.close());
  return a.port;
}

async function conn(host = "127.0.0.1"): Promise<UdpConn> {
  const c = await UdpConn.bind({ host, port: 0, onDatagram: () => {}, onDrain: () => {}, log: quiet });
  cleanups.push(() => c.close());
  return c;
}

/** A one-flow UDP translator: what the node sends to it goes on to `to` from the translator's own socket. */
async function translator(to: number): Promise<number> {
  const front: Socket = createSocket("udp4");
  const back: Socket = createSocket("udp4");
  await Promise.all([front, back].map((s) => new Promise<void>((r) => s.bind(0, "127.0.0.1", r))));
  let client: { address: string; port: number } | undefined;
  front.on("message", (m, from) => { client = from; back.send(m, to); });
  back.on("message", (m) => { if (client) front.send(m, client.port, client.address); });
  cleanups.push(() => { front.close(); back.close(); });
  return front.address().port;
}

describe("LocalCandidates: no NAT, or a translation", () => {
  it("the STUN server sees the node's own address and port: no NAT on its side", async () => {
    const stunPort = await responder();
    const c = new LocalCandidates(await conn());
    const report = await c.refresh([{ host: "127.0.0.1", port: stunPort }]);
    expect(report.servers.some((s) => s.mapped)).toBe(true);
    expect(c.noNat).toBe(true);
  });

  it("the STUN server sees another port (a translator in between): behind NAT", async () => {
    const stunPort = await responder();
    const via = await translator(stunPort);
    const udp = await conn();
    const c = new LocalCandidates(udp);
    const report = await c.refresh([{ host: "127.0.0.1", port: via }]);
    const mapped = report.servers.find((s) => s.mapped)?.mapped;
    expect(mapped).toBeDefined();
    expect(mapped!.port).not.toBe(udp.address().port);
    expect(c.noNat).toBe(false);
    expect(c.reflexiveEndpoints()).toHaveLength(1);
  });

  it("no STUN answer: not known, so treated as behind NAT", async () => {
    const c = new LocalCandidates(await conn());
    await c.refresh([]);
    expect(c.noNat).toBe(false);
  });

  it("no STUN answer over IPv4 but one over IPv6 (an IPv6-only host behind NAT64): not UDP-blocked", async () => {
    const stunPort = await responder("::1");
    const dead = createSocket("udp4"); // a bound port that never answers
    await new Promise<void>((r) => dead.bind(0, "127.0.0.1", r));
    cleanups.push(() => { dead.close(); });
    const c = new LocalCandidates(await conn("::"));
    const report = await c.refresh([{ host: "127.0.0.1", port: dead.address().port }, { host: "::1", port: stunPort }]);
    expect(report.mapping).not.toBe("udp-blocked");
    expect(c.natType).not.toBe("udp-blocked");
    expect(report.servers.find((s) => s.mapped)?.server).toBe(`[::1]:${stunPort}`);
    expect(report.ipv4?.mapping).toBe("udp-blocked");
  });
});
