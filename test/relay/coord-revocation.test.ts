// The relay learns revocations from the coordination server: GET /v1/revocation polled over mTLS with the
// relay's certificate. Against the real CoordServer (the endpoint answers, the list applies) and against a
// stand-in that first lacks the endpoint (tolerated) and then revokes a connected node (disconnected).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import type { AddressInfo } from "node:net";
import { signRevocationList, tlsContextOptions, verifyTlsPeer } from "../../src/pki/index.js";
import { CoordServer } from "../../src/coord/server.js";
import { silentLogger } from "../../src/coord/log.js";
import type { RelayClient } from "../../src/nat/relay-client.js";
import { connected, logLines, makePki, nodeClient, relayStatus, startRelay, waitFor, type IdentityFiles, type Pki, type RelayProc } from "./helpers.js";

let pki: Pki;
let relayId: IdentityFiles;
const relays: RelayProc[] = [];
const clients: RelayClient[] = [];
const servers: { close: () => unknown }[] = [];

beforeAll(async () => {
  pki = await makePki();
  relayId = await pki.identity("relay-c", { roles: ["relay"] });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.stop()));
  await Promise.all(relays.map((r) => r.stop()));
  for (const s of servers) await s.close();
  pki?.cleanup();
});

describe("revocation from the coordination server", () => {
  it("polls the real coordination server's /v1/revocation and applies its list", async () => {
    const coord = new CoordServer({ dataDir: join(pki.dir, "coord-data"), caDir: pki.ca.dir, host: "127.0.0.1", port: 0, logger: silentLogger(), relays: [] });
    servers.push(coord);
    const url = await coord.start();
    const relay = await startRelay(pki, relayId, ["--coord", url, "--revocation-poll", "500ms"]);
    relays.push(relay);
    const st = await waitFor(async () => { const s = await relayStatus(relay); return s.counters.revocationListNumber >= 0 ? s : undefined; }, "the coordination server's list");
    expect(st.counters.revocationListNumber).toBeGreaterThanOrEqual(0);
    expect(logLines(relay).some((l) => l.event === "revocation_applied" && l.source === "coord")).toBe(true);
  });

  it("tolerates a server without the endpoint, then disconnects a node the server revokes", async () => {
    const coordId = await pki.identity("coord", { roles: ["server"] });
    let list: string | undefined; // undefined: answer 404 like a server without the endpoint
    const seenClients: string[] = [];
    const server: Server = createServer({ ...tlsContextOptions({ certChainPem: coordId.certChainPem, keyPem: coordId.keyPem, bundlePem: pki.ca.bundlePem }) }, (req, res) => {
      const v = verifyTlsPeer(req.socket as TLSSocket, pki.verifier(), { usage: "client" });
      seenClients.push(v.ok ? v.identity.name : `refused:${v.reason}`);
      if (req.url !== "/v1/revocation" || !list) return void res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "not_found", detail: "no endpoint" }));
      res.writeHead(200, { "content-type": "application/json" }).end(list);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    servers.push({ close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) });
    const relay = await startRelay(pki, relayId, ["--coord", `https://127.0.0.1:${(server.address() as AddressInfo).port}`, "--revocation-poll", "300ms"]);
    relays.push(relay);

    const victim = await pki.identity("node-r");
    const c = nodeClient(pki, relay, victim);
    clients.push(c);
    c.start();
    await connected(c);
    await waitFor(() => logLines(relay).find((l) => l.event === "revocation_poll_failed" && /no \/v1\/revocation endpoint/.test(l.detail)), "the logged missing endpoint");
    expect(c.connected).toBe(true);
    expect(seenClients[0]).toBe("relay-c"); // the relay authenticates with its own certificate

    const dropped = new Promise<string>((r) => c.once("disconnected", r));
    list = signRevocationList(pki.ca, 5, [victim.serial]);
    expect(await dropped).toMatch(/^revoked:/);
    expect((await relayStatus(relay)).counters.revocationListNumber).toBe(5);
    // A forged list (not signed by the CA) is refused and changes nothing.
    const other = await pki.identity("node-s");
    const d = nodeClient(pki, relay, other);
    clients.push(d);
    d.start();
    await connected(d);
    list = JSON.stringify({ list: JSON.parse(signRevocationList(pki.ca, 6, [other.serial])).list, signature: Buffer.alloc(64).toString("base64") });
    await waitFor(() => logLines(relay).find((l) => l.event === "revocation_rejected"), "the refused forged list");
    expect(d.connected).toBe(true);
  });
});
