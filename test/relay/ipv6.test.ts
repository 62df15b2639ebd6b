// The relay on both address families: with no host in --listen and --stun (the default), one process serves
// nodes over IPv4 and IPv6 (TLS on TCP, STUN on UDP), and STUN answers each family with its own mapping.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSocket, type Socket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { RelayClient } from "../../src/nat/relay-client.js";
import { StunClient } from "../../src/nat/stun.js";
import { connected, makePki, nodeClient, startRelay, waitFor, type Pki, type RelayProc } from "./helpers.js";

let pki: Pki;
let relay: RelayProc;
const clients: RelayClient[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  pki = await makePki();
  const relayId = await pki.identity("relay-1", { roles: ["relay"] });
  relay = await startRelay(pki, relayId, ["--listen", ":0", "--stun", ":0"]);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.stop()));
  for (const s of sockets) s.close();
  await relay?.stop();
  pki?.cleanup();
});

async function stunFrom(family: 4 | 6): Promise<{ address: string; port: number }> {
  const socket = createSocket({ type: family === 6 ? "udp6" : "udp4", ipv6Only: family === 6 });
  sockets.push(socket);
  const stun = new StunClient(socket, family);
  socket.on("message", (m, r) => stun.handle(m, r));
  await new Promise<void>((r) => socket.bind(0, family === 6 ? "::1" : "127.0.0.1", r));
  const r = await stun.request({ host: family === 6 ? "::1" : "127.0.0.1", port: relay.info.stun!.port }, 2_000);
  expect(r.mapped.port).toBe(socket.address().port);
  return r.mapped;
}

describe("relay over IPv4 and IPv6 at once", () => {
  it("listens on every address of both families by default", () => {
    expect(relay.info.listen.address).toBe("::");
    expect(relay.info.stun!.address).toBe("::");
  });

  it("STUN answers an IPv6 client with its IPv6 address and an IPv4 client with its IPv4 one", async () => {
    expect((await stunFrom(6)).address).toBe("::1");
    expect((await stunFrom(4)).address).toBe("127.0.0.1");
  });

  it("forwards between a node connected over IPv6 and one connected over IPv4", async () => {
    const a = await pki.identity("v6-node");
    const b = await pki.identity("v4-node");
    const ca = nodeClient(pki, relay, a, { host: "::1" });
    const cb = nodeClient(pki, relay, b, { host: "127.0.0.1" });
    for (const c of [ca, cb]) { clients.push(c); c.start(); }
    await Promise.all([connected(ca), connected(cb)]);
    const payload = randomBytes(600);
    const got = new Promise<[string, Buffer]>((r) => cb.once("packet", (from: string, p: Buffer) => r([from, p])));
    await waitFor(() => ca.send("v4-node", payload), "room to send");
    const [from, p] = await got;
    expect(from).toBe("v6-node");
    expect(p.equals(payload)).toBe(true);
  });
});
