// The session device at its boundary: certificate refusals, replay, rekey, revocation, hostile input.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { parseCertificate, signRevocationList, Verifier, type CaMaterial } from "../../src/pki/index.js";
import { createHash } from "node:crypto";
import {
  INNER, PACKET, Responder, encodeHandshake, generateStaticKeyPair, openClaim, parseHandshake, parseInitMessage, responderKey,
} from "../../src/session/crypto-adapter.js";
import { MemoryNet, drops } from "../helpers/devices.js";
import type { Device } from "../../src/session/device.js";
import type { SessionTimers } from "../../src/session/timers.js";
import { makeCa, makeLeaf, tempDir, type TestLeaf } from "../helpers/pki.js";
import { eventually } from "../helpers/nodes.js";
import { PROTOCOL_VERSION } from "../../src/wire/protocol.js";
import type { InnerType } from "../../src/session/crypto-adapter.js";

let tmp: ReturnType<typeof tempDir>;
let ca: CaMaterial;
let other: CaMaterial;
let leafA: TestLeaf;
let leafB: TestLeaf;
let net: MemoryNet;

beforeAll(async () => {
  tmp = tempDir();
  ca = await makeCa(tmp.dir);
  other = await makeCa(tmp.dir);
  leafA = await makeLeaf(ca, "node-a");
  leafB = await makeLeaf(ca, "node-b");
});
afterAll(() => tmp.cleanup());
afterEach(() => net?.stop());

function pair(opts: Parameters<MemoryNet["add"]>[3] = {}) {
  net = new MemoryNet();
  const a = net.add("node-a", ca, leafA, opts);
  const b = net.add("node-b", ca, leafB, opts);
  net.link("node-a", "node-b");
  return { a, b };
}

/** A connected pair whose node-b records the number in each APP_DATA datagram it receives. */
async function counting(timers: Partial<SessionTimers>) {
  const { a, b } = pair({ timers });
  const received: number[] = [];
  b.inner.register(INNER.APP_DATA, (_peer, _from, payload) => received.push(payload.readUInt32BE(0)));
  a.start(); b.start();
  await a.ping("node-b");
  return { a, b, received };
}

/**
 * node-a sends `count` numbered APP_DATA datagrams to node-b, `gapMs` apart, and waits up to `waitMs` for node-b
 * (whose handler pushes them into `received`) to have them all; the failure names what each side dropped.
 */
async function sendNumbered(a: Device, b: Device, received: number[], count: number, gapMs: number, waitMs: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const buf = Buffer.alloc(4); buf.writeUInt32BE(i);
    a.sendTo("node-b", INNER.APP_DATA, buf);
    await new Promise((r) => setTimeout(r, gapMs));
  }
  await eventually(() => received.length === count, waitMs, "all packets delivered").catch((err) => {
    throw new Error(`${err.message}: got ${received.length}/${count}; drops a=${JSON.stringify(Object.fromEntries(a.drops))} b=${JSON.stringify(Object.fromEntries(b.drops))}`);
  });
}

describe("handshake and data", () => {
  it("establishes a session and pings both ways", async () => {
    const { a, b } = pair();
    a.start(); b.start();
    expect(await a.ping("node-b")).toBeGreaterThan(0);
    expect(await b.ping("node-a")).toBeGreaterThan(0);
    expect(a.peers.get("node-b")!.identity!.spiffeId).toBe("spiffe://acme.internal/acme/node-b");
    expect(b.peers.get("node-a")!.state).toBe("connected");
  });

  it("back-pressure: sendTo answers full (nothing sent, nothing dropped) and onWritable says when to resume", async () => {
    let room = true;
    const writable: string[] = [];
    const { a, b } = pair({ canSend: () => room, onWritable: (p) => writable.push(p.name), timers: { handshakeTimeoutMs: 200 } });
    const got: number[] = [];
    b.inner.register(INNER.APP_DATA, (_peer, _from, p) => got.push(p.readUInt16BE(0)));
    const msg = (i: number) => { const m = Buffer.alloc(2); m.writeUInt16BE(i); return m; };
    // No session yet and the network drops everything: 64 datagrams wait for the handshake, the 65th is refused.
    net.filter = () => false;
    a.start(); b.start();
    const results = Array.from({ length: 65 }, (_, i) => a.sendTo("node-b", INNER.APP_DATA, msg(i)));
    expect(results.slice(0, 64).every((r) => r === "queued")).toBe(true);
    expect(results[64]).toBe("full");
    expect(drops(a, "queue_full")).toBe(1);
    expect(drops(a, "queue_overflow")).toBe(0);
    // The session comes up: the queue goes out in order and the blocked sender is told it may resume.
    net.filter = () => true;
    await eventually(() => got.length === 64, 10_000, "queued datagrams delivered");
    expect(got).toEqual(Array.from({ length: 64 }, (_, i) => i));
    expect(writable).toEqual(["node-b"]);
    // The layer below fills up: "full" again, and nothing is sealed or sent for it.
    room = false;
    const sentBefore = net.sent.length;
    expect(a.sendTo("node-b", INNER.APP_DATA, msg(100))).toBe("full");
    expect(net.sent.length).toBe(sentBefore);
    a.writableChanged(); // still no room: nobody is woken
    expect(writable).toEqual(["node-b"]);
    room = true;
    a.writableChanged();
    expect(writable).toEqual(["node-b", "node-b"]);
    expect(a.sendTo("node-b", INNER.APP_DATA, msg(101))).toBe("sent");
    await eventually(() => got.length === 65, 2_000, "the datagram after the drain");
    expect(got.at(-1)).toBe(101);
    expect(a.sendTo("nobody", INNER.APP_DATA, msg(1))).toBe("unknown_peer");
  });

  it("dispatches inner messages by kind only: a path probe is never answered as a ping", async () => {
    const { a, b } = pair();
    a.start(); b.start();
    await a.ping("node-b");
    const seen: string[] = [];
    a.inner.register(INNER.PATH_PROBE_REPLY, (peer, _from, p) => seen.push(`${peer.name}:${p.toString("hex")}`));
    // No layer on b handles PATH_PROBE: it is counted, and no PONG (nor anything else) comes back for it.
    const before = net.sent.length;
    a.sendTo("node-b", INNER.PATH_PROBE, Buffer.alloc(8, 7));
    await eventually(() => drops(b, "unhandled_inner_path_probe") === 1, 2_000, "probe counted as unhandled");
    expect(net.sent.slice(before).filter((w) => w.from.kind === "udp" && w.from.port === 1001)).toHaveLength(0);
    // Once b's path layer registers, the same 8 bytes get a PATH_PROBE_REPLY, while a PING still gets a PONG.
    b.inner.register(INNER.PATH_PROBE, (peer, from, p) => b.sendVia(peer.name, from, INNER.PATH_PROBE_REPLY, p));
    a.sendTo("node-b", INNER.PATH_PROBE, Buffer.alloc(8, 7));
    await eventually(() => seen.length === 1, 2_000, "probe reply");
    expect(seen).toEqual([`node-b:${"07".repeat(8)}`]);
    expect(await a.ping("node-b")).toBeGreaterThan(0);
    expect(() => b.inner.register(INNER.PATH_PROBE, () => {})).toThrow(/already has a handler/);
  });

  it("rekeys under traffic without losing a packet", async () => {
    const { a, b, received } = await counting({ rekeyAfterTimeMs: 300, rejectAfterTimeMs: 5_000, handshakeTimeoutMs: 200 });
    const total = 400;
    await sendNumbered(a, b, received, total, 3, 5_000);
    expect(received).toEqual([...Array(total).keys()]);
    expect(a.peers.get("node-b")!.stats.handshakes).toBeGreaterThanOrEqual(3);
    for (const d of [a, b]) for (const r of ["decrypt_failed", "unknown_index", "replay", "expired_key"]) expect(drops(d, r), r).toBe(0);
  });

  it("a rekey's data never overtakes its final message: the initiator sends on the old keys until the new ones are confirmed", async () => {
    // The final message is held back (as when it goes through a relay while data goes direct): data sealed
    // with the new keys before the responder has them would be dropped there as unknown_index.
    const { a, b, received } = await counting({ rekeyAfterTimeMs: 60_000, rejectAfterTimeMs: 120_000, handshakeTimeoutMs: 2_000 });
    // Both sides initiated at start: let the second handshake finish before counting.
    const [pa, pb] = [a.peers.get("node-b")!, b.peers.get("node-a")!];
    const settled = () => [pa, pb].every((p) => !p.initiation && p.state === "connected") && pa.stats.handshakes === pb.stats.handshakes;
    await eventually(settled, 2_000, "start-up handshakes over");
    let heldFinals = 0;
    net.filter = (w) => {
      if (w.data[0] !== PACKET.HANDSHAKE_FINAL) return true;
      heldFinals++;
      setTimeout(() => net.deliver(w), 80);
      return false;
    };
    const peer = a.peers.get("node-b")!;
    const before = peer.stats.handshakes;
    a.initiate(peer, "test: rekey with a late final message");
    const total = 60;
    await sendNumbered(a, b, received, total, 4, 3_000);
    expect(heldFinals).toBe(1);
    expect(peer.stats.handshakes, "one rekey").toBe(before + 1);
    expect(received).toEqual([...Array(total).keys()]);
    expect(drops(b, "unknown_index")).toBe(0);
    // Once the responder's keepalive confirmed the new keys, the initiator sends on them.
    await eventually(() => peer.current!.confirmed, 2_000, "new keys confirmed");
    const buf = Buffer.alloc(4); buf.writeUInt32BE(total);
    a.sendTo("node-b", INNER.APP_DATA, buf);
    await eventually(() => received.length === total + 1, 2_000, "the packet after the switch");
    expect(peer.current!.sendCounter).toBeGreaterThan(0);
  });
});

describe("certificate refusals", () => {
  async function refusedWith(leaf: TestLeaf, caOfLeaf: CaMaterial, reason: string, verifierB?: Verifier) {
    net = new MemoryNet();
    const a = net.add("node-a", caOfLeaf, leaf);
    const b = net.add("node-b", ca, leafB, { verifier: verifierB });
    net.link("node-a", "node-b");
    a.start(); b.start();
    await eventually(() => drops(b, `handshake_${reason}`) > 0 || drops(a, `handshake_${reason}`) > 0, 5_000, `handshake_${reason}`);
    expect(b.peers.get("node-a")!.current).toBeUndefined();
    const log = net.logs.find((l) => l.msg === "handshake refused" && l.obj.reason === reason);
    expect(log, `a logged refusal with reason ${reason}`).toBeDefined();
  }

  it("a peer from a foreign CA gets no answer at all: its mac1 is keyed for another root (and so is ours for it)", async () => {
    net = new MemoryNet();
    const a = net.add("node-a", other, await makeLeaf(other, "node-a"), { timers: { handshakeTimeoutMs: 200, handshakeBackoffMaxMs: 400 } });
    const b = net.add("node-b", ca, leafB, { timers: { handshakeTimeoutMs: 200, handshakeBackoffMaxMs: 400 } });
    net.link("node-a", "node-b");
    a.start(); b.start();
    await eventually(() => drops(b, "handshake_bad_mac1") >= 2 && drops(a, "handshake_bad_mac1") >= 2, 5_000, "both sides drop the other's INITs");
    expect(net.sent.every((w) => w.data[0] === PACKET.HANDSHAKE_INIT)).toBe(true); // nothing but INITs, never answered
    await eventually(() => a.peers.get("node-b")!.state === "no_answer" && b.peers.get("node-a")!.state === "no_answer", 3_000, "no_answer both ways");
  });
  it("refuses a peer with an expired certificate", async () => {
    await refusedWith(await makeLeaf(ca, "node-a", { ttlMs: 3_600_000, now: new Date(Date.now() - 7_200_000) }), ca, "expired");
  });
  it("refuses a revoked peer and drops its live session", async () => {
    const verifierB = new Verifier({ bundlePem: ca.bundlePem });
    const { a, b } = pair();
    (b as any).opts.verifier = verifierB;
    a.start(); b.start();
    await a.ping("node-b");
    const serial = b.peers.get("node-a")!.identity!.serial;
    expect(verifierB.applyRevocationList(signRevocationList(ca, 1, [serial]))).toEqual({ ok: true });
    expect(b.enforceRevocations()).toEqual(["node-a"]);
    expect(b.peers.get("node-a")!.state).toBe("revoked");
    await expect(a.ping("node-b", 1_500)).rejects.toThrow(/no pong/);
    // a new handshake from the revoked identity is refused with its reason
    b.peers.get("node-a")!.revoked = false;
    await eventually(() => drops(b, "handshake_revoked") > 0, 8_000, "handshake_revoked");
  });
  it("refuses an identity that is not one of its peers", async () => {
    net = new MemoryNet();
    const a = net.add("node-a", ca, await makeLeaf(ca, "stranger"));
    const b = net.add("node-b", ca, leafB);
    a.addPeer("node-b", net.addr("node-b"));
    a.start(); b.start();
    await eventually(() => drops(b, "handshake_unknown_peer") > 0, 5_000, "unknown peer refusal");
  });
  it("an impostor at the peer's address that knows the mesh's root gets node-a's claim, not its trust: wrong_peer", async () => {
    // A node's own device answers only INITs for its own name, so the impostor here is an attacker's program:
    // it knows the root CA and the name node-b (so it can read the INIT's claim) and answers with its own
    // certificate. node-a refuses the response (wrong_peer), says so, and never sends its own certificate.
    net = new MemoryNet();
    const a = net.add("node-a", ca, leafA);
    const impostorLeaf = await makeLeaf(ca, "impostor");
    net.add("impostor", ca, impostorLeaf);
    a.addPeer("node-b", net.addr("impostor"));
    const impostor = { certChainDer: [impostorLeaf.der, ca.intermediateDer], certPrivateKey: impostorLeaf.keys.privateKey, ...generateStaticKeyPair() };
    const rk = responderKey(new Uint8Array(createHash("sha256").update(ca.rootDer).digest()), "node-b");
    let claimed = "";
    net.filter = (w) => {
      if (w.to.kind !== "udp" || w.to.port !== 1001) return true;
      const f = parseHandshake(w.data);
      if (!f.ok || f.type !== PACKET.HANDSHAKE_INIT) return false;
      const m = parseInitMessage(f.chunk)!;
      claimed = openClaim(rk, m.e, m.sealedClaim)?.name ?? "?";
      const r = new Responder(impostor, new Verifier({ bundlePem: ca.bundlePem }));
      r.readInit(m.e);
      for (const frag of encodeHandshake(PACKET.HANDSHAKE_RESP, 77, f.senderIndex, r.writeResp())) {
        setImmediate(() => a.receive(frag, w.to));
      }
      return false;
    };
    a.start();
    await eventually(() => drops(a, "handshake_wrong_peer") > 0, 5_000, "wrong peer refusal");
    expect(claimed).toBe("node-a");
    expect(net.sent.filter((w) => w.data[0] === PACKET.HANDSHAKE_FINAL)).toHaveLength(0);
    expect(a.peers.get("node-b")!.state).toBe("refused");
    expect(a.peers.get("node-b")!.describeState()).toMatch(/refused \(wrong_peer: the responder is impostor/);
  });
});

describe("coordinated peers: certificates from the peer map", () => {
  it("INITs carry no certificate (400 bytes); after a rotation to a new key, the next INIT carries the new chain", async () => {
    const map: Record<string, Uint8Array> = { "node-a": leafA.der, "node-b": leafB.der };
    net = new MemoryNet();
    const timers = { handshakeTimeoutMs: 5_000 };
    const a = net.add("node-a", ca, leafA, { timers, peerCertificate: (n) => map[n] });
    const b = net.add("node-b", ca, leafB, { timers, peerCertificate: (n) => map[n] });
    net.link("node-a", "node-b");
    b.peers.get("node-a")!.persistent = false;
    a.start(); b.start();
    expect(await a.ping("node-b")).toBeGreaterThan(0);
    const inits = () => net.sent.filter((w) => w.data[0] === PACKET.HANDSHAKE_INIT);
    expect(inits().map((w) => w.data.length)).toEqual([400]);
    // node-a renews its certificate with a new key; node-b's map still has the old one
    const renewed = await makeLeaf(ca, "node-a");
    a.setLocalIdentity({ certChainDer: [renewed.der, ca.intermediateDer], certPrivateKey: renewed.keys.privateKey, ...generateStaticKeyPair() });
    a.initiate(a.peers.get("node-b")!, "test: rekey after rotation");
    await eventually(() => a.peers.get("node-b")!.stats.handshakes === 2 && a.peers.get("node-b")!.state === "connected", 2_000, "rekeyed at the first attempt");
    expect(inits()).toHaveLength(2);
    expect(inits()[1].data.length).toBeGreaterThan(400 + renewed.der.length); // the claim carried the new chain
    expect(b.peers.get("node-a")!.identity!.serial).toBe(parseCertificate(renewed.der).serial);
    // once confirmed, the next rekey is small again (node-b's map still holds the old certificate: node-b also
    // tries the key of its last session with node-a, so the lagging map costs no retry)
    a.initiate(a.peers.get("node-b")!, "test: another rekey");
    await eventually(() => a.peers.get("node-b")!.stats.handshakes === 3, 2_000, "second rekey");
    expect(inits()[2].data.length).toBe(400);
  });
});

describe("peer states are truthful (issue 14 item 7)", () => {
  it("an initiator whose final message never reaches the responder is not connected: handshaking, then no_answer", async () => {
    const { a, b } = pair({ timers: { handshakeTimeoutMs: 150, handshakeBackoffMaxMs: 300 } });
    net.filter = (w) => w.data[0] !== PACKET.HANDSHAKE_FINAL; // the responder never gets the keys we install
    b.peers.get("node-a")!.persistent = false; // only node-a initiates
    a.start(); b.start();
    await eventually(() => a.peers.get("node-b")!.current, 2_000, "node-a installed keys (answered, not confirmed)");
    expect(a.peers.get("node-b")!.state).toBe("handshaking");
    await eventually(() => a.peers.get("node-b")!.state === "no_answer", 3_000, "no_answer after the handshake timeout");
    await expect(a.ping("node-b", 300)).rejects.toThrow(/state: no_answer \(\d+ handshake attempts? unanswered/);
    net.filter = () => true;
    // (a ping sent under the unconfirmed keys is lost: node-b never had them, and starts a handshake of its own)
    await eventually(() => a.ping("node-b", 500).catch(() => undefined), 5_000, "ping once the final messages pass");
    expect(a.peers.get("node-b")!.state).toBe("connected");
  });

  it("a revoked initiator: the node that knows refuses it (refused, revoked) in silence; the revoked node says no_answer", async () => {
    const verifierB = new Verifier({ bundlePem: ca.bundlePem });
    expect(verifierB.applyRevocationList(signRevocationList(ca, 1, [parseCertificate(leafA.der).serial]))).toEqual({ ok: true });
    net = new MemoryNet();
    const timers = { handshakeTimeoutMs: 150, handshakeBackoffMaxMs: 300 };
    const a = net.add("node-a", ca, leafA, { timers });
    const b = net.add("node-b", ca, leafB, { timers, verifier: verifierB });
    net.link("node-a", "node-b");
    a.start(); b.start();
    await eventually(() => b.peers.get("node-a")!.state === "refused" && a.peers.get("node-b")!.state === "no_answer", 4_000, "refused / no_answer");
    expect(b.peers.get("node-a")!.describeState()).toMatch(/^refused \(revoked: serial/);
    await expect(a.ping("node-b", 300)).rejects.toThrow(/state: no_answer/);
    await expect(b.ping("node-a", 300)).rejects.toThrow(/state: refused \(revoked/);
    // node-b answers node-a's INITs with nothing: it never sends node-a a RESP (its own INITs get RESPs it refuses)
    expect(net.sent.filter((w) => w.from.kind === "udp" && w.from.port === 1001 && w.data[0] === PACKET.HANDSHAKE_RESP)).toHaveLength(0);
    expect(drops(b, "handshake_revoked")).toBeGreaterThan(0);
  });
});

describe("hostile input", () => {
  it("drops replays, bit flips, truncation, oversize, unknown types and wild counters, and keeps working", async () => {
    const { a, b } = pair();
    a.start(); b.start();
    await a.ping("node-b");
    await new Promise((r) => setTimeout(r, 50)); // let every datagram in flight arrive first
    const data = net.sent.filter((w) => w.data[0] === PACKET.DATA && w.to.kind === "udp" && w.to.port === 1001);
    const init = net.sent.find((w) => w.data[0] === PACKET.HANDSHAKE_INIT)!;
    const final = net.sent.find((w) => w.data[0] === PACKET.HANDSHAKE_FINAL)!;
    const sample = data[data.length - 1];
    const from = sample.from;
    const before = b.peers.get("node-a")!.current;

    b.receive(sample.data, from); // replay
    expect(drops(b, "replay")).toBe(1);
    b.receive(final.data, from); // replayed final: its handshake state is gone
    expect(drops(b, "handshake_unknown_index")).toBeGreaterThanOrEqual(1);
    b.receive(init.data, from); // replayed initiation: answered, but cannot be completed
    expect(b.peers.get("node-a")!.current).toBe(before);

    // Bit flips in a packet already seen: the replay check refuses them before any decryption.
    const replaysBefore = drops(b, "replay");
    for (let i = 16; i < sample.data.length; i += 7) {
      const flipped = Buffer.from(sample.data); flipped[i] ^= 0x40;
      b.receive(flipped, from);
    }
    expect(drops(b, "replay")).toBeGreaterThanOrEqual(replaysBefore + 3);
    // With an unseen counter the same flips reach the AEAD, which refuses them.
    const fresh = Buffer.from(sample.data); fresh.writeUInt32LE(fresh.readUInt32LE(8) + 100, 8);
    b.receive(fresh, from);
    expect(drops(b, "decrypt_failed")).toBe(1);
    b.receive(sample.data.subarray(0, 20), from);
    b.receive(Buffer.alloc(3), from);
    expect(drops(b, "too_short")).toBe(2);
    b.receive(Buffer.alloc(70_000, PACKET.DATA), from);
    expect(drops(b, "too_big")).toBe(1);
    b.receive(Buffer.from([0x7f, 0, 0, 0, 1, 2, 3, 4]), from);
    expect(drops(b, "unknown_type")).toBe(1);
    // Counter far ahead (2^53 and beyond: not a safe integer) and far behind the window: both refused.
    const ahead = Buffer.from(sample.data); ahead.writeUInt32LE(0xffffffff, 12);
    b.receive(ahead, from);
    const behind = Buffer.from(sample.data); behind.fill(0, 8, 16);
    b.receive(behind, from);
    expect(drops(b, "replay")).toBeGreaterThanOrEqual(replaysBefore + 5);
    expect(b.peers.get("node-a")!.current).toBe(before);
    expect(await a.ping("node-b")).toBeGreaterThan(0);
  });

  it("survives 1,000,000 random and mutated datagrams and still passes traffic", async () => {
    const { a, b } = pair();
    a.start(); b.start();
    await a.ping("node-b");
    const samples = net.sent.filter((w) => w.to.kind === "udp" && w.to.port === 1001).map((w) => w.data);
    const from = net.sent.find((w) => w.to.kind === "udp" && w.to.port === 1001)!.from;
    const pool = randomBytes(1 << 20);
    let off = 0;
    const rnd = (n: number) => { if (off + n > pool.length) off = 0; const v = pool.subarray(off, off + n); off += n; return v; };
    const N = 1_000_000;
    const t0 = Date.now();
    for (let i = 0; i < N; i++) {
      let d: Buffer;
      const kind = i % 4;
      if (kind === 0) d = Buffer.from(rnd(1 + (pool[i % pool.length] % 200)));
      else {
        d = Buffer.from(samples[i % samples.length]);
        if (kind === 1) d[pool[i % pool.length] % d.length] ^= 1 << (i % 8);
        else if (kind === 2) d = d.subarray(0, pool[(i * 7) % pool.length] % d.length);
        else { d[0] = 0x10 + (i % 6); d[1 + (i % 15)] = pool[(i * 3) % pool.length]; }
      }
      b.receive(d, from);
      if (Date.now() - t0 > 120_000) throw new Error(`fuzz too slow: ${i} datagrams in 120 s`);
    }
    const total = [...b.drops.values()].reduce((x, y) => x + y, 0);
    expect(total).toBeGreaterThan(N * 0.9);
    expect(drops(b, "internal_error")).toBe(0);
    expect(await a.ping("node-b")).toBeGreaterThan(0);
    expect(await b.ping("node-a")).toBeGreaterThan(0);
  }, 180_000);
});

describe("at rest (docs/sessions.md)", () => {
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it("an idle peer gets no keepalive, no rekey and no reconnect; its keys expire quietly and the next datagram starts a handshake, losing nothing", async () => {
    const timers = { idleAfterMs: 400, keepaliveMs: 100, deadAfterMs: 300, rekeyAfterTimeMs: 600, rejectAfterTimeMs: 900, handshakeTimeoutMs: 200, restTickMs: 50 };
    const { a, b } = pair({ timers });
    const got: number[] = [];
    b.inner.register(INNER.APP_DATA, (_peer, _from, p) => got.push(p.readUInt16BE(0)));
    a.start(); b.start();
    expect(await a.ping("node-b")).toBeGreaterThan(0);
    // Active: keepalives flow (every 100 ms when nothing else is sent).
    await wait(300);
    expect(net.sent.length).toBeGreaterThan(4);
    // Idle after 400 ms without application data: from then on nothing at all is sent.
    await wait(500);
    expect(a.isIdle(a.peers.get("node-b")!)).toBe(true);
    const quietFrom = net.sent.length;
    await wait(1_200); // past rekeyAfterTime, rejectAfterTime and deadAfter
    expect(net.sent.length).toBe(quietFrom);
    expect(a.peers.get("node-b")!.current).toBeUndefined(); // keys expired at rest
    expect(net.logs.some((l) => l.msg === "session closed" && l.obj.why === "keys expired at rest")).toBe(true);
    // The next datagrams: a handshake at once, then every datagram in order.
    const msg = (i: number) => { const m = Buffer.alloc(2); m.writeUInt16BE(i); return m; };
    for (let i = 0; i < 10; i++) expect(a.sendTo("node-b", INNER.APP_DATA, msg(i))).toBe("queued");
    await eventually(() => got.length === 10, 3_000, "all ten datagrams");
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("an INIT left unanswered while the session stands is given up, so the timers slow down at rest", async () => {
    const timers = { idleAfterMs: 300, keepaliveMs: 100, handshakeTimeoutMs: 200, restTickMs: 50 };
    const { a, b } = pair({ timers });
    a.start(); b.start();
    expect(await a.ping("node-b")).toBeGreaterThan(0);
    // A second INIT whose answer never comes (both sides starting at once leave one like it).
    const bAddr = net.addr("node-b");
    net.filter = (w) => !(w.from.kind === "udp" && bAddr.kind === "udp" && w.from.port === bAddr.port);
    a.initiate(a.peers.get("node-b")!, "test: unanswered");
    expect(a.peers.get("node-b")!.initiation).toBeDefined();
    await eventually(() => a.peers.get("node-b")!.initiation === undefined, 2_000, "the stale INIT given up");
    expect(a.peers.get("node-b")!.state).toBe("connected");
    net.filter = () => true;
    expect(await a.ping("node-b")).toBeGreaterThan(0);
  });

  it("an active peer still detects a dead peer; a rest is not a dead peer once it wakes", async () => {
    const timers = { idleAfterMs: 1_000, keepaliveMs: 100, deadAfterMs: 400, handshakeTimeoutMs: 5_000 };
    const { a } = pair({ timers });
    a.start(); net.devices.get("node-b")!.start();
    expect(await a.ping("node-b")).toBeGreaterThan(0);
    await wait(1_300); // at rest now; keys still valid (default lifetime)
    expect(a.peers.get("node-b")!.current).toBeDefined();
    // Waking with the peer unreachable: the rest itself does not count as silence...
    net.filter = () => false;
    a.sendTo("node-b", INNER.APP_DATA, Buffer.from([1]));
    await wait(150);
    expect(a.peers.get("node-b")!.current).toBeDefined();
    // ...but deadAfter of silence after the wake-up does.
    await eventually(() => !a.peers.get("node-b")!.current, 2_000, "dead-peer detection");
  });

  it("a shadow path gets a copy of every data packet; the receiver takes the first and drops the second as a replay", async () => {
    const { a, b } = pair();
    const got: number[] = [];
    b.inner.register(INNER.APP_DATA, (_peer, _from, p) => got.push(p[0]));
    a.start(); b.start();
    expect(await a.ping("node-b")).toBeGreaterThan(0);
    const direct = net.addr("node-b");
    a.setPath("node-b", direct, direct);
    expect(a.peers.get("node-b")!.shadow).toBeUndefined(); // a shadow equal to the path is no shadow
    const other = { kind: "udp" as const, host: "127.0.0.2", port: 1001 }; // node-b again, by another address
    a.setPath("node-b", direct, other);
    const before = drops(b, "replay");
    for (let i = 0; i < 5; i++) a.sendTo("node-b", INNER.APP_DATA, Buffer.from([i]));
    // Every data packet twice, the second copy a replay (keepalives, also copied, may add a few).
    await eventually(() => got.length === 5 && drops(b, "replay") - before >= 5, 2_000, "copies");
    expect(got).toEqual([0, 1, 2, 3, 4]);
    a.setPath("node-b", direct);
    expect(a.peers.get("node-b")!.shadow).toBeUndefined();
  });
});

// Versions (src/wire/protocol.ts, invariant 10): each side learns what the other announced in its handshake, and an
// inner message of a kind nobody here handles (a newer peer's) is counted and logged once with the peer's version.
describe("versions between peers", () => {
  it("each side learns the protocol and software version the other announced in its handshake", async () => {
    net = new MemoryNet();
    const a = net.add("node-a", ca, leafA, { software: "9.8.7" });
    const b = net.add("node-b", ca, leafB, { software: "1.2.3-rc.1" });
    net.link("node-a", "node-b");
    a.start(); b.start();
    await a.ping("node-b");
    expect(a.peers.get("node-b")!.version).toEqual({ protocol: PROTOCOL_VERSION, software: "1.2.3-rc.1" });
    expect(b.peers.get("node-a")!.version).toEqual({ protocol: PROTOCOL_VERSION, software: "9.8.7" });
    const established = net.logs.find((l) => l.obj.device === "node-b" && l.msg === "session established");
    expect(established?.obj.peerVersion).toBe(`protocol ${PROTOCOL_VERSION}, ember 9.8.7`);
  });

  it("an inner kind nobody handles is counted each time and logged once, naming the peer's version", async () => {
    net = new MemoryNet();
    const a = net.add("node-a", ca, leafA, { software: "0.3.0" });
    const b = net.add("node-b", ca, leafB);
    net.link("node-a", "node-b");
    a.start(); b.start();
    await a.ping("node-b");
    const newerKind = 0x3e as InnerType;
    for (let i = 0; i < 3; i++) a.sendTo("node-b", newerKind, Buffer.from("from the future"));
    await eventually(() => drops(b, "unhandled_inner_0x3e") === 3, 5_000, "three unknown inner messages counted");
    const lines = net.logs.filter((l) => l.obj.device === "node-b" && l.level === "warn" && l.obj.kind === "0x3e");
    expect(lines).toHaveLength(1);
    expect(lines[0].obj).toMatchObject({ peer: "node-a", peerVersion: `protocol ${PROTOCOL_VERSION}, ember 0.3.0`, count: 1 });
    expect(lines[0].msg).toMatch(/does not know/);
    expect(b.unknownInner.byKind.get("0x3e")).toBe(3);
    // The session is unharmed: the next ping still answers.
    await a.ping("node-b");
  });
});
