// A full map assembled from peers encoded once (encodeFullFrame) reads back exactly as encodeFrame's, with the
// peer count on each side of msgpack's header sizes (fixarray up to 15, array16, array32) and optional keys.
import { describe, expect, it } from "vitest";
import { deltaFrame, deltaFrameLength, encodeDelta, encodeFrame, encodeFullFrame, encodePeer, FrameReader, type DeltaBody, MAP_PROTOCOL_VERSION, type FullFrame, type MapPeer } from "../../src/wire/coord/map.js";

/** A peer; `tiny` ones (no certificate to speak of) let 65,536 of them fit in a frame. */
function peer(i: number, tiny = false): MapPeer {
  return {
    name: `n-${i}`, tenant: "acme", groups: [`team-${i % 3}`], certPem: tiny ? "c" : `-----BEGIN CERTIFICATE-----\n${"A".repeat(600 + i % 100)}\n-----END CERTIFICATE-----\n`,
    endpoints: [`198.18.0.${i % 250}:41641`], online: i % 2 === 0,
    ...(i % 3 === 0 ? { homeRelay: "relay-1", overlayIp: `100.64.0.${i % 250}` } : {}),
  };
}

function frame(n: number, extra: Partial<FullFrame> = {}): FullFrame {
  return {
    v: MAP_PROTOCOL_VERSION, t: "full", seq: 7, epoch: "0123456789abcdef",
    self: { name: "me", tenant: "acme", groups: ["team-0"] },
    peers: Array.from({ length: n }, (_, i) => peer(i, n > 0xffff)), rules: [{ allow: "any" }], relays: [{ name: "relay-1", host: "198.18.0.1", port: 443 }],
    ...extra,
  };
}

const read = (bytes: Buffer) => new FrameReader().push(bytes);

describe("encodeFullFrame", () => {
  for (const n of [0, 1, 15, 16, 49, 0x10000]) {
    it(`reads back as encodeFrame's full map with ${n} peers`, () => {
      const f = frame(n, n === 1 ? { revocation: "list" } : {});
      const { peers, ...rest } = f;
      const spliced = encodeFullFrame(rest, peers.map(encodePeer));
      expect(read(spliced)).toEqual(read(encodeFrame(f)));
      expect(read(spliced)).toHaveLength(1);
    });
  }

  it("keeps a peer's bytes apart from later encodings (the encoder reuses its buffer)", () => {
    const a = encodePeer(peer(1));
    const copy = Buffer.from(a);
    encodePeer(peer(2));
    encodeFrame(frame(3));
    expect(a.equals(copy)).toBe(true);
  });
});

describe("deltaFrame", () => {
  const bodies: DeltaBody[] = [
    { patch: [{ name: "n-1", online: true }] },
    { upsert: [peer(1), peer(2)], remove: ["n-3"], revocation: "list" },
    // 16 keys and more after v, t and seq: msgpack's map16 header.
    Object.fromEntries(Array.from({ length: 14 }, (_, i) => [`k${i}`, i])) as DeltaBody,
  ];
  for (const [i, body] of bodies.entries()) {
    it(`is encodeFrame's delta byte for byte (body ${i}), at seqs on each side of msgpack's integer sizes`, () => {
      const shared = encodeDelta(body);
      for (const seq of [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
        const want = encodeFrame({ v: MAP_PROTOCOL_VERSION, t: "delta", seq, ...body });
        expect(deltaFrame(shared, seq).equals(want), `seq ${seq}`).toBe(true);
        expect(deltaFrameLength(shared, seq)).toBe(want.length);
      }
    });
  }

  it("keeps a delta's bytes apart from later encodings", () => {
    const d = encodeDelta(bodies[0]);
    const copy = Buffer.from(d.entries);
    encodeDelta(bodies[1]);
    encodeFrame(frame(3));
    expect(d.entries.equals(copy)).toBe(true);
  });
});
