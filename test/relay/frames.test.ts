// The relay frame format: round trips through any chunking, and every malformed shape is a RelayFrameError.
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import {
  encodeRelayError, encodeRelayFrame, MAX_RELAY_FRAME, MAX_RELAY_PAYLOAD, RELAY_FRAME, RelayFrameError, RelayFrameReader,
} from "../../src/wire/relay.js";

function readAll(bytes: Buffer, chunk: number) {
  const r = new RelayFrameReader();
  const out: { type: number; name: string; payload: string }[] = [];
  for (let i = 0; i < bytes.length; i += chunk) {
    r.push(bytes.subarray(i, i + chunk));
    for (let f = r.next(); f; f = r.next()) out.push({ type: f.type, name: f.name, payload: f.payload.toString("hex") });
  }
  return { out, pending: r.pending };
}

describe("relay frames", () => {
  it("round-trips frames split at every possible boundary", () => {
    const frames = [
      encodeRelayFrame(RELAY_FRAME.SEND, "db-1", randomBytes(MAX_RELAY_PAYLOAD)),
      encodeRelayFrame(RELAY_FRAME.PING, "", randomBytes(8)),
      encodeRelayFrame(RELAY_FRAME.RECV, "a", Buffer.alloc(0)),
      encodeRelayError("revoked", "serial 01 is on list #2"),
    ];
    const all = Buffer.concat(frames);
    const expected = readAll(all, all.length).out;
    expect(expected.map((f) => f.type)).toEqual([RELAY_FRAME.SEND, RELAY_FRAME.PING, RELAY_FRAME.RECV, RELAY_FRAME.ERROR]);
    expect(expected[0].name).toBe("db-1");
    for (const chunk of [1, 2, 3, 7, 100, 2049]) {
      const r = readAll(all, chunk);
      expect(r.out).toEqual(expected);
      expect(r.pending).toBe(0);
    }
  });

  it("refuses bad frames with a code", () => {
    const bad: [Buffer, string, RegExp][] = [
      [Buffer.from([0xff, 0xff]), "frame_too_large", /exceeds/],
      [Buffer.from([0x00, 0x01, 0x01]), "bad_frame", /below/],
      [Buffer.from([0x00, 0x02, 0x42, 0x00]), "bad_frame", /unknown frame type 0x42/],
      [Buffer.from([0x00, 0x03, 0x01, 0x05, 0x61]), "bad_frame", /does not fit/],
      [Buffer.from([0x00, 0x02, 0x01, 0x00]), "bad_frame", /invalid name/], // SEND without a destination
      [Buffer.from([0x00, 0x03, 0x06, 0x01, 0x61]), "bad_frame", /invalid name/], // PING carries no name
      [Buffer.concat([Buffer.from([0x00, 0x04, 0x01, 0x02]), Buffer.from("A\n")]), "bad_frame", /invalid name/],
      [Buffer.concat([Buffer.from([0x00, 0x42, 0x06, 0x00]), Buffer.alloc(0x40)]), "bad_frame", /PING payload/],
    ];
    for (const [bytes, code, msg] of bad) {
      const r = new RelayFrameReader();
      r.push(bytes);
      let err: unknown;
      try { r.next(); } catch (e) { err = e; }
      expect(err, bytes.toString("hex")).toBeInstanceOf(RelayFrameError);
      expect((err as RelayFrameError).code).toBe(code);
      expect((err as Error).message).toMatch(msg);
    }
    expect(() => encodeRelayFrame(RELAY_FRAME.SEND, "x", new Uint8Array(MAX_RELAY_PAYLOAD + 1))).toThrow(RelayFrameError);
    expect(() => encodeRelayFrame(RELAY_FRAME.SEND, "Bad Name", new Uint8Array(1))).toThrow(/invalid name/);
    expect(MAX_RELAY_FRAME).toBeLessThan(0xffff);
  });

  it("an oversized length is refused before its body arrives", () => {
    const r = new RelayFrameReader();
    const hdr = Buffer.alloc(2);
    hdr.writeUInt16BE(MAX_RELAY_FRAME + 1, 0);
    r.push(hdr);
    expect(() => r.next()).toThrow(/exceeds/);
  });
});
