// The relay as a real child process: forwarding by identity both ways, payload opacity, certificate
// refusals with logged reasons, revocation at runtime, unknown peers, replacement, bad frames.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect, createServer } from "node:tls";
import type { AddressInfo } from "node:net";
import { signRevocationList, tlsContextOptions } from "../../src/pki/index.js";
import { encodeRelayFrame, RELAY_FRAME, RelayFrameReader, MAX_RELAY_PAYLOAD } from "../../src/wire/relay.js";
import { RelayClient } from "../../src/nat/relay-client.js";
import { craftLeaf, makeCa, makeLeaf } from "../helpers/pki.js";
import {
  connected, logLines, makePki, nodeClient, relayStatus, startRelay, waitFor, type IdentityFiles, type Pki, type RelayProc,
} from "./helpers.js";

let pki: Pki;
let relay: RelayProc;
let relayId: IdentityFiles;
let revocationPath: string;
const clients: RelayClient[] = [];

function client(id: IdentityFiles): RelayClient {
  const c = nodeClient(pki, relay, id);
  clients.push(c);
  c.start();
  return c;
}

function nextPacket(c: RelayClient): Promise<[string, Buffer]> {
  return new Promise((resolve) => c.once("packet", (from: string, p: Buffer) => resolve([from, p])));
}

/** A raw TLS connection with a node certificate, for writing bytes the RelayClient would never send. */
async function rawConnection(id: IdentityFiles) {
  const s = connect({ host: "127.0.0.1", port: relay.info.listen.port, cert: id.certChainPem, key: id.keyPem, rejectUnauthorized: false, minVersion: "TLSv1.3" });
  const reader = new RelayFrameReader();
  const frames: { type: number; name: string; payload: Buffer }[] = [];
  s.on("data", (c: Buffer) => { reader.push(c); for (let f = reader.next(); f; f = reader.next()) frames.push({ ...f, payload: Buffer.from(f.payload) }); });
  s.on("error", () => {});
  const closed = new Promise<void>((r) => s.once("close", () => r()));
  await waitFor(() => frames.some((f) => f.type === RELAY_FRAME.WELCOME), "WELCOME on the raw connection");
  return { s, frames, closed };
}

beforeAll(async () => {
  pki = await makePki();
  relayId = await pki.identity("relay-1", { roles: ["relay"] });
  revocationPath = join(pki.dir, "revocation.json");
  writeFileSync(revocationPath, signRevocationList(pki.ca, 1, []));
  relay = await startRelay(pki, relayId, ["--revocation", revocationPath]);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.stop()));
  await relay?.stop();
  pki?.cleanup();
});

describe("relay forwarding", () => {
  it("forwards frames by identity name both ways, bytes unchanged, sender named by its certificate", async () => {
    const a = client(await pki.identity("node-a"));
    const b = client(await pki.identity("node-b"));
    await Promise.all([connected(a), connected(b)]);
    expect(a.relayName).toBe("relay-1");

    // Opaque ciphertext-like payloads, including the maximum size: what arrives is exactly what was sent.
    for (const size of [1, 148, 1472, MAX_RELAY_PAYLOAD]) {
      const payload = randomBytes(size);
      const got = nextPacket(b);
      expect(a.send("node-b", payload)).toBe(true);
      const [from, p] = await got;
      expect(from).toBe("node-a");
      expect(p.equals(payload)).toBe(true);
    }
    const back = randomBytes(600);
    const got = nextPacket(a);
    expect(b.send("node-a", back)).toBe(true);
    const [from, p] = await got;
    expect(from).toBe("node-b");
    expect(p.equals(back)).toBe(true);

    // The client refuses what the relay would refuse, without sending it.
    expect(a.send("node-b", new Uint8Array(MAX_RELAY_PAYLOAD + 1))).toBe(false);
    expect(a.send("Not A Name", new Uint8Array(1))).toBe(false);
    await waitFor(() => a.rttMs !== undefined, "a keepalive RTT");
    const rtt = await new Promise<number>((r) => b.rttMs !== undefined ? r(b.rttMs) : b.once("rtt", r));
    expect(rtt).toBeGreaterThan(0);

    const st = await relayStatus(relay);
    expect(st.counters.framesForwarded).toBeGreaterThanOrEqual(5);
    expect(st.nodes).toEqual(expect.arrayContaining(["node-a", "node-b"]));
  });

  it("answers UNKNOWN_PEER for a name that is not connected and counts the drop", async () => {
    const c = client(await pki.identity("node-c"));
    await connected(c);
    const unknown = new Promise<string>((r) => c.once("unknown-peer", r));
    const before = (await relayStatus(relay)).counters.drops.unknown_peer;
    expect(c.send("nobody-here", Buffer.from("x"))).toBe(true);
    expect(await unknown).toBe("nobody-here");
    expect((await relayStatus(relay)).counters.drops.unknown_peer).toBe(before + 1);
  });

  it("tells senders PEER_GONE when their destination leaves", async () => {
    const d = client(await pki.identity("node-d"));
    const e = nodeClient(pki, relay, await pki.identity("node-e"));
    e.start();
    await Promise.all([connected(d), connected(e)]);
    const got = nextPacket(e);
    d.send("node-e", Buffer.from("hi"));
    await got;
    const gone = new Promise<string>((r) => d.once("peer-gone", r));
    await e.stop();
    expect(await gone).toBe("node-e");
  });

  it("a second connection of the same identity replaces the first", async () => {
    const id = await pki.identity("node-f");
    const first = client(id);
    await connected(first);
    const dropped = new Promise<string>((r) => first.once("disconnected", r));
    const second = client(id);
    await connected(second);
    expect(await dropped).toMatch(/^replaced:/);
    await first.stop(); // it would otherwise reconnect and replace the second in turn
    const g = client(await pki.identity("node-g"));
    await connected(g);
    const got = nextPacket(second);
    g.send("node-f", Buffer.from("to the newest"));
    expect((await got)[1].toString()).toBe("to the newest");
  });

  it("stop then start at once (a relay connection reopened on demand) reconnects cleanly; idle time counts datagrams", async () => {
    const h = client(await pki.identity("node-reopen"));
    const i = client(await pki.identity("node-reopen-peer"));
    await Promise.all([connected(h), connected(i)]);
    expect(h.idleMs).toBeLessThan(5_000);
    const got = nextPacket(i);
    h.send("node-reopen-peer", Buffer.from("before"));
    await got;
    expect(h.idleMs).toBeLessThan(1_000);
    const events: string[] = [];
    for (const ev of ["disconnected", "connect-failed", "connected"]) h.on(ev, () => events.push(ev));
    const stopped = h.stop();
    expect(h.running).toBe(false);
    h.start(); // before the old socket finished closing: its close must not touch the new connection
    await stopped;
    await connected(h);
    await new Promise((r) => setTimeout(r, 200));
    expect(events).toEqual(["connected"]);
    expect(h.stats.connects).toBe(2);
    const again = nextPacket(i);
    expect(h.send("node-reopen-peer", Buffer.from("after"))).toBe(true);
    expect((await again)[1].toString()).toBe("after");
  });

  it("reconnectNow (our network changed): a new connection at once, told as on purpose; datagrams flow again", async () => {
    const j = client(await pki.identity("node-moves"));
    const k = client(await pki.identity("node-moves-peer"));
    await Promise.all([connected(j), connected(k)]);
    const events: string[] = [];
    j.on("disconnected", (why: string) => events.push(`disconnected ${j.reconnecting ? "on purpose" : "died"}: ${why}`));
    j.on("connected", () => events.push("connected"));
    const t0 = Date.now();
    j.reconnectNow("our network changed (address)");
    await waitFor(() => events.includes("connected"), "the new connection");
    // No backoff (its minimum is 250 ms, jittered from half of it): the first attempt goes at once.
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(events).toEqual(["disconnected on purpose: our network changed (address)", "connected"]);
    expect(j.reconnecting).toBe(false);
    expect(j.stats.connects).toBe(2);
    const got = nextPacket(k);
    expect(j.send("node-moves-peer", Buffer.from("from the new network"))).toBe(true);
    expect((await got)[1].toString()).toBe("from the new network");
  });
});

describe("relay authentication", () => {
  async function refused(id: IdentityFiles, reason: string) {
    const c = client(id);
    const why = await new Promise<string>((r) => c.once("connect-failed", r));
    await c.stop();
    expect(why).toMatch(new RegExp(`^${reason}:`));
    expect(c.connected).toBe(false);
    await waitFor(() => logLines(relay).find((l) => l.event === "refused" && l.reason === reason), `a logged "${reason}" refusal`);
  }

  it("refuses an expired certificate with a logged reason", async () => {
    const leaf = await craftLeaf(pki.ca, { name: "old-node", notBefore: new Date(Date.now() - 7_200_000), notAfter: new Date(Date.now() - 3_600_000) });
    await refused(await pki.identity("old-node", { leaf }), "expired");
  });

  it("refuses a certificate from a foreign CA", async () => {
    const foreign = await makeCa(pki.dir);
    await refused(await pki.identity("spy", { leaf: await makeLeaf(foreign, "spy") }), "unknown_ca");
  });

  it("refuses a revoked certificate, and disconnects a connected node when its revocation arrives", async () => {
    const victim = await pki.identity("node-v");
    const peer = await pki.identity("node-w");
    const v = client(victim);
    const w = client(peer);
    await Promise.all([connected(v), connected(w)]);
    const dropped = new Promise<string>((r) => v.once("disconnected", r));
    writeFileSync(revocationPath, signRevocationList(pki.ca, 2, [victim.serial]));
    expect(await dropped).toMatch(/^revoked:/);
    await waitFor(() => logLines(relay).find((l) => l.event === "disconnected" && l.identity === "node-v" && l.reason === "revoked"), "logged revocation disconnect");
    // It keeps retrying and keeps being refused; peers see it as unknown.
    const why = await new Promise<string>((r) => v.once("connect-failed", r));
    expect(why).toMatch(/^revoked:/);
    await v.stop();
    const unknown = new Promise<string>((r) => w.once("unknown-peer", r));
    w.send("node-v", Buffer.from("x"));
    expect(await unknown).toBe("node-v");
    expect((await relayStatus(relay)).counters.revocationListNumber).toBe(2);
  });

  it("a node refuses a server whose certificate lacks the relay role or has another name", async () => {
    const c = client(await pki.identity("node-n"));
    await connected(c);
    await c.stop();
    const wrongName = nodeClient(pki, relay, await pki.identity("node-m"), { name: "relay-9" });
    clients.push(wrongName);
    wrongName.start();
    const why = await new Promise<string>((r) => wrongName.once("connect-failed", r));
    expect(why).toMatch(/not_a_relay: expected relay "relay-9"/);
    await wrongName.stop();

    // A TLS server holding a valid mesh certificate without the relay role is not a relay.
    const impostor = await pki.identity("impostor");
    const server = createServer({ ...tlsContextOptions({ certChainPem: impostor.certChainPem, keyPem: impostor.keyPem, bundlePem: pki.ca.bundlePem }) }, (s) => {
      s.on("error", () => {});
      s.write(encodeRelayFrame(RELAY_FRAME.WELCOME, "node-m"));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const o = await pki.identity("node-o");
    const fooled = new RelayClient({
      host: "127.0.0.1", port: (server.address() as AddressInfo).port, certChainPem: o.certChainPem, keyPem: o.keyPem, bundlePem: pki.ca.bundlePem, verifier: pki.verifier(), backoffMinMs: 100,
    });
    clients.push(fooled);
    let packets = 0;
    fooled.on("packet", () => packets++);
    fooled.start();
    const whyNot = await new Promise<string>((r) => fooled.once("connect-failed", r));
    await fooled.stop();
    server.close();
    expect(whyNot).toMatch(/not_a_relay: "impostor" is a mesh identity without role "relay"/);
    expect(fooled.connected).toBe(false);
    expect(packets).toBe(0);
  });

  it("the relay refuses to start with a certificate lacking the relay role", async () => {
    const plain = await pki.identity("not-relay");
    await expect(startRelay(pki, plain)).rejects.toThrow(/relay: relay certificate "not-relay" lacks role "relay"/);
  });
});

describe("relay robustness", () => {
  it("an oversized frame closes only that connection; the relay keeps serving others", async () => {
    const a = client(await pki.identity("node-h"));
    const b = client(await pki.identity("node-i"));
    await Promise.all([connected(a), connected(b)]);
    const raw = await rawConnection(await pki.identity("node-big"));
    const big = Buffer.alloc(2 + 60_000);
    big.writeUInt16BE(60_000, 0);
    big[2] = RELAY_FRAME.SEND;
    raw.s.write(big);
    await raw.closed;
    expect(raw.frames.find((f) => f.type === RELAY_FRAME.ERROR)?.name).toBe("frame_too_large");
    const got = nextPacket(b);
    a.send("node-i", Buffer.from("still here"));
    expect((await got)[1].toString()).toBe("still here");
  });

  it("a frame type the relay does not know (a newer node's) is counted and skipped; the connection stays", async () => {
    const raw = await rawConnection(await pki.identity("newer-node"));
    const before = (await relayStatus(relay)).counters.drops.unknown_frame;
    raw.s.write(Buffer.from([0x00, 0x05, 0x7f, 0x00, 1, 2, 3]));
    raw.s.write(encodeRelayFrame(RELAY_FRAME.PING, "", Buffer.from("after-7f")));
    await waitFor(() => raw.frames.some((f) => f.type === RELAY_FRAME.PONG && f.payload.toString() === "after-7f"), "PONG after the unknown frame");
    expect((await relayStatus(relay)).counters.drops.unknown_frame).toBe(before + 1);
    expect(raw.frames.find((f) => f.type === RELAY_FRAME.ERROR)).toBeUndefined();
    raw.s.destroy();
  });

  it("junk and relay-only frames close only that connection", async () => {
    for (const [bytes, code] of [
      [Buffer.from([0x00, 0x04, RELAY_FRAME.SEND, 0x09, 0x41, 0x42]), "bad_frame"], // name longer than the frame
      [encodeRelayFrame(RELAY_FRAME.RECV, "node-a", Buffer.from("forged")), "unexpected_frame"], // a node cannot claim a sender
      [Buffer.concat([Buffer.from([0x00, 0x03, RELAY_FRAME.SEND, 0x01]), Buffer.from("A")]), "bad_frame"], // invalid name
    ] as const) {
      const raw = await rawConnection(await pki.identity(`junk-${code.length}-${bytes[2]}`));
      raw.s.write(bytes);
      await raw.closed;
      expect(raw.frames.find((f) => f.type === RELAY_FRAME.ERROR)?.name).toBe(code);
    }
    const a = client(await pki.identity("node-j"));
    const b = client(await pki.identity("node-k"));
    await Promise.all([connected(a), connected(b)]);
    const got = nextPacket(b);
    a.send("node-k", Buffer.from("alive"));
    expect((await got)[1].toString()).toBe("alive");
    expect((await relayStatus(relay)).counters.drops.frame_error).toBeGreaterThanOrEqual(3);
    expect(relay.proc.exitCode).toBe(null);
  });

  it("a TLS client without a certificate is refused with a reason", async () => {
    const s = connect({ host: "127.0.0.1", port: relay.info.listen.port, rejectUnauthorized: false, minVersion: "TLSv1.3" });
    const reader = new RelayFrameReader();
    const frames: { type: number; name: string; payload: Buffer }[] = [];
    s.on("data", (c: Buffer) => { reader.push(c); for (let f = reader.next(); f; f = reader.next()) frames.push({ ...f, payload: Buffer.from(f.payload) }); });
    s.on("error", () => {});
    await new Promise<void>((r) => s.once("close", () => r()));
    const err = frames.find((f) => f.type === RELAY_FRAME.ERROR);
    expect(err?.name).toBe("malformed");
    expect(err?.payload.toString()).toMatch(/no client certificate/);
  });
});
