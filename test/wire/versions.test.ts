// The wire across versions (src/wire/protocol.ts): what release 0.1.0 writes reads here as protocol 1, what this
// release writes still reads in 0.1.0's decoders (its exact schemas, copied below from commit 3eaae5d), and
// frames or events of kinds a decoder does not know come out as such instead of failing the whole stream.
import { describe, expect, it } from "vitest";
import { Packr } from "msgpackr";
import { decodeHandshakePayload, defineMessage, encodeHandshakePayload, field, MAX_PRESENTED_CHAIN } from "../../src/wire/messages.js";
import { decodeFrameBody, encodeFrame, FrameError, FrameReader, MAP_PROTOCOL_VERSION } from "../../src/wire/coord/map.js";
import { checkBatch } from "../../src/wire/coord/telemetry.js";
import {
  FEATURES, OLDEST_COMPATIBLE_PROTOCOL, PROTOCOL_VERSION, announcedProtocol, announcedSoftware, describeVersion, missingFeatures, speaks, versionLabel,
} from "../../src/wire/protocol.js";
import { decodeProbe, encodeProbe } from "../../src/wire/probe.js";
import { relayAlpnProtocols, relayProtocolOf } from "../../src/wire/relay.js";
import { UnknownTally } from "../../src/wire/unknown.js";
import { outdatedPeers } from "../../src/node/peer-versions.js";

/** Release 0.1.0's handshake payload schema, as it decodes (v must be 1; only these fields are read). */
const payloadOf010 = defineMessage<{ chain: Uint8Array[]; sig: Uint8Array; ts: number }>("handshake payload", 1, {
  chain: field.array(field.bytes(1, 4096), 1, MAX_PRESENTED_CHAIN),
  sig: field.bytes(64, 64),
  ts: field.uint(),
});
const chain = [new Uint8Array(300).fill(7)];
const sig = new Uint8Array(64).fill(9);

describe("handshake payload across releases", () => {
  it("this release's payload, with protocol and version, is read by 0.1.0's decoder unchanged", () => {
    const bytes = encodeHandshakePayload({ chain, sig, ts: 1234, proto: PROTOCOL_VERSION, sw: "0.2.0" });
    const old = payloadOf010.decode(bytes);
    expect(old).toEqual({ v: 1, chain: [Buffer.from(chain[0])], sig: Buffer.from(sig), ts: 1234 });
  });

  it("0.1.0's payload reads here with no protocol (the handshake takes it as protocol 1)", () => {
    const decoded = decodeHandshakePayload(payloadOf010.encode({ chain: chain.map((c) => Buffer.from(c)), sig: Buffer.from(sig), ts: 99 }));
    expect(decoded.proto).toBeUndefined();
    expect(decoded.sw).toBeUndefined();
    expect(decoded.ts).toBe(99);
    expect(announcedProtocol(decoded.proto)).toBe(1);
  });

  it("a hostile protocol or version field is refused as a malformed payload, not trusted", () => {
    const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
    const bad = packr.pack({ v: 1, chain: chain.map((c) => Buffer.from(c)), sig: Buffer.from(sig), ts: 1, proto: -3 });
    expect(() => decodeHandshakePayload(bad)).toThrow(/proto must be an integer/);
    const long = packr.pack({ v: 1, chain: chain.map((c) => Buffer.from(c)), sig: Buffer.from(sig), ts: 1, sw: "x".repeat(100) });
    expect(() => decodeHandshakePayload(long)).toThrow(/sw must be a string/);
  });
});

describe("map stream frames", () => {
  it("a frame of a kind this node does not know comes out as unknown; the frames around it are read", () => {
    const packr = new Packr({ useRecords: false, moreTypes: false });
    const body = packr.pack({ v: MAP_PROTOCOL_VERSION, t: "hologram", seq: 3, stuff: [1, 2] });
    const future = Buffer.alloc(4 + body.length);
    future.writeUInt32BE(body.length, 0);
    body.copy(future, 4);
    const r = new FrameReader();
    const frames = r.push(Buffer.concat([encodeFrame({ v: MAP_PROTOCOL_VERSION, t: "ping" }), future, encodeFrame({ v: MAP_PROTOCOL_VERSION, t: "ping" })]));
    expect(frames.map((f) => f.t)).toEqual(["ping", "unknown", "ping"]);
    expect(frames[1]).toEqual({ v: MAP_PROTOCOL_VERSION, t: "unknown", kind: "hologram" });
  });

  it("a kind that is no short word is still junk", () => {
    const packr = new Packr({ useRecords: false, moreTypes: false });
    expect(() => decodeFrameBody(Buffer.from(packr.pack({ v: 1, t: 42 })))).toThrow(FrameError);
    expect(() => decodeFrameBody(Buffer.from(packr.pack({ v: 1, t: "x".repeat(33) })))).toThrow(FrameError);
  });
});

describe("path probes", () => {
  it("9 bytes as 0.1.0 sends them; a longer (newer) probe is read as its first 9; a shorter one is no probe", () => {
    const id = Buffer.from("01020304050607ff", "hex");
    const p = encodeProbe(id, true);
    expect([...p]).toEqual([1, 2, 3, 4, 5, 6, 7, 0xff, 1]);
    expect(decodeProbe(Buffer.concat([p, Buffer.from([9, 9, 9])]))).toEqual({ id: Buffer.from(id), noNat: true });
    expect(decodeProbe(p.subarray(0, 8))).toBeUndefined();
  });
});

describe("relay ALPN", () => {
  it("offers this protocol down to the oldest compatible (none below 2); no ALPN means release 0.1.0", () => {
    expect(relayAlpnProtocols()[0]).toBe(`ember-relay/${PROTOCOL_VERSION}`);
    expect(relayAlpnProtocols().every((a) => Number(a.split("/")[1]) >= Math.max(2, OLDEST_COMPATIBLE_PROTOCOL))).toBe(true);
    expect(relayProtocolOf(false)).toBe(1);
    expect(relayProtocolOf(null)).toBe(1);
    expect(relayProtocolOf("ember-relay/7")).toBe(7);
    expect(relayProtocolOf("h2")).toBe(1);
  });
});

describe("telemetry batches", () => {
  it("events of an unknown kind are set aside and counted; junk kinds still refuse the batch", () => {
    const b = checkBatch({ v: 1, seq: 1, sentAt: 1, events: [{ t: "warp", at: 1, data: {} }, { t: "path", at: 2, data: {} }, { t: "warp", at: 3, data: {} }] });
    expect(b.events.map((e) => e.t)).toEqual(["path"]);
    expect(b.skippedKinds).toEqual({ warp: 2 });
    expect(() => checkBatch({ v: 1, seq: 1, sentAt: 1, events: [{ t: 5, at: 1, data: {} }] })).toThrow(/events\[0\]\.t must be one of/);
  });
});

describe("protocol versions", () => {
  it("announcements are bounded; what is absent or insane reads as protocol 1 (release 0.1.0)", () => {
    expect(announcedProtocol(undefined)).toBe(1);
    expect(announcedProtocol("2")).toBe(2);
    expect(announcedProtocol(2)).toBe(2);
    expect(announcedProtocol(-1)).toBe(1);
    expect(announcedProtocol(1e9)).toBe(1);
    expect(announcedProtocol("2; drop table")).toBe(1);
    expect(announcedSoftware("0.2.0")).toBe("0.2.0");
    expect(announcedSoftware("0.2.0\n")).toBeUndefined();
    expect(announcedSoftware(undefined)).toBeUndefined();
    expect(describeVersion(1)).toMatch(/announced nothing/);
    expect(versionLabel({})).toBe("-");
    expect(versionLabel({ protocol: 1 })).toBe("0.1.x (protocol 1)");
    expect(versionLabel({ protocol: 2, version: "0.2.0" })).toBe("0.2.0 (protocol 2)");
  });

  it("a protocol-1 peer lacks every feature added since; status warns about it with what it lacks", () => {
    expect(missingFeatures(PROTOCOL_VERSION)).toEqual([]);
    // What a sender asks before it uses a feature with a party of that protocol.
    expect(speaks(1, "tolerant-decoders")).toBe(false);
    expect(speaks(PROTOCOL_VERSION, "tolerant-decoders")).toBe(true);
    expect(missingFeatures(1)).toEqual(Object.keys(FEATURES).filter((f) => FEATURES[f as keyof typeof FEATURES] > 1));
    const [p] = outdatedPeers([{ name: "laptop", protocol: 1 }, { name: "fresh", protocol: PROTOCOL_VERSION, software: "0.2.0" }]);
    expect(p.code).toBe("peer_outdated");
    expect(p.severity).toBe(OLDEST_COMPATIBLE_PROTOCOL <= 1 ? "warning" : "error");
    expect(p.summary).toMatch(/peer laptop runs protocol 1 .*too old for version-announce, tolerant-decoders/);
    expect(p.fix).toMatch(/upgrade laptop/);
    expect(outdatedPeers([{ name: "ancient", protocol: 0 }])[0].severity).toBe("error");
  });

  it("unknown messages: every one counted, a log line the first time and then once a minute per sender and kind", () => {
    const t = new UnknownTally(60_000);
    expect(t.note("b", "0x3e", 0)).toEqual({ count: 1, log: true });
    expect(t.note("b", "0x3e", 1_000)).toEqual({ count: 2, log: false });
    expect(t.note("c", "0x3e", 1_000)).toEqual({ count: 1, log: true });
    expect(t.note("b", "0x3e", 61_000)).toEqual({ count: 3, log: true });
    expect(t.total).toBe(4);
    // Bounded: a sender inventing kinds pushes the oldest entries out (b's starts again at 1), it grows no further.
    for (let i = 0; i < 5_000; i++) t.note("evil", `k${i}`, 0);
    expect(t.note("b", "0x3e", 62_000).count).toBe(1);
  });
});
