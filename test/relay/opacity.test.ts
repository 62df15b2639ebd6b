// Invariant 3: the relay never sees plaintext. Two session devices whose only path is the real relay
// (a child process, TLS on loopback) exchange application payloads carrying a marker; every byte the relay
// forwarded (what the receiving RelayClient got, which the relay passes on unchanged) is checked for it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Verifier } from "../../src/pki/index.js";
import { Device } from "../../src/session/device.js";
import { INNER, generateStaticKeyPair } from "../../src/session/crypto-adapter.js";
import type { RelayClient } from "../../src/nat/relay-client.js";
import { silentLog } from "../helpers/devices.js";
import { connected, makePki, nodeClient, startRelay, waitFor, type IdentityFiles, type Pki, type RelayProc } from "./helpers.js";

let pki: Pki;
let relay: RelayProc;
const clients: RelayClient[] = [];
const devices: Device[] = [];

beforeAll(async () => {
  pki = await makePki();
  relay = await startRelay(pki, await pki.identity("relay-1", { roles: ["relay"] }));
});

afterAll(async () => {
  for (const d of devices) d.stop();
  await Promise.all(clients.map((c) => c.stop()));
  await relay?.stop();
  pki?.cleanup();
});

/** A device whose every datagram goes through its RelayClient, and the bytes that client received. */
function relayedNode(id: IdentityFiles, received: Buffer[], apps: Buffer[]) {
  const client = nodeClient(pki, relay, id);
  clients.push(client);
  const device = new Device({
    local: { certChainDer: [id.leaf.der, pki.ca.intermediateDer], certPrivateKey: id.leaf.keys.privateKey, ...generateStaticKeyPair() },
    verifier: new Verifier({ bundlePem: pki.ca.bundlePem }),
    log: silentLog,
    timers: { tickMs: 50 },
    send: (to, data) => { if (to.kind === "relay") client.send(to.peer, data); },
  });
  device.inner.register(INNER.APP_DATA, (_peer, _from, payload) => apps.push(Buffer.from(payload)));
  devices.push(device);
  client.on("packet", (from: string, payload: Buffer) => {
    received.push(Buffer.from(payload));
    device.receive(payload, { kind: "relay", relay: "relay-1", peer: from });
  });
  client.start();
  device.start();
  return { client, device };
}

describe("relay opacity", () => {
  it("forwards only handshake messages and ciphertext: no application byte appears in what it relays", async () => {
    const atB: Buffer[] = [], atA: Buffer[] = [], appsA: Buffer[] = [], appsB: Buffer[] = [];
    const a = relayedNode(await pki.identity("node-a"), atA, appsA);
    const b = relayedNode(await pki.identity("node-b"), atB, appsB);
    await Promise.all([connected(a.client), connected(b.client)]);
    a.device.addPeer("node-b", { kind: "relay", relay: "relay-1", peer: "node-b" });
    b.device.addPeer("node-a", { kind: "relay", relay: "relay-1", peer: "node-a" });

    const marker = Buffer.from("EMBER-PLAINTEXT-MARKER-7f3a");
    const message = (i: number) => Buffer.concat([marker, Buffer.from(` #${i} `), Buffer.alloc(200, 0x41)]);
    expect(await a.device.ping("node-b")).toBeGreaterThan(0);
    for (let i = 0; i < 20; i++) {
      a.device.sendTo("node-b", INNER.APP_DATA, message(i));
      b.device.sendTo("node-a", INNER.APP_DATA, message(100 + i));
    }
    await waitFor(() => appsA.length === 20 && appsB.length === 20, "all application payloads delivered");

    // the payloads arrived intact through the relay...
    expect(appsB.map((p) => p.toString("latin1"))).toEqual([...Array(20).keys()].map((i) => message(i).toString("latin1")));
    expect(appsA[0].equals(message(100))).toBe(true);
    // ...and nothing the relay forwarded contains the marker or the filler in clear
    const relayed = Buffer.concat([...atA, ...atB]);
    expect(atA.length + atB.length).toBeGreaterThanOrEqual(40);
    expect(relayed.includes(marker)).toBe(false);
    expect(relayed.includes(Buffer.alloc(32, 0x41))).toBe(false);
  });
});
