// The relay frame format: round trips through any chunking, and every malformed shape is a RelayFrameError.
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import {
  encodeRelayError, encodeRelayFrame, MAX_RELAY_FRAME, MAX_RELAY_PAYLOAD, RELAY_FRAME, RelayFrameError, RelayFrameReader,
} from "../../src/wire/relay.js";

function readAll(bytes: Buffer, chunk: number) {
  const r = new RelayFrameReader();
  const out: { type: number; known: boolean; name: string; payload: string }[] = [];
  for (let i = 0; i < bytes.length; i += chunk) {
    r.push(bytes.subarray(i, i + chunk));
    for (let f = r.next(); f; f = r.next()) out.push({ type: f.type, known: f.known, name: f.name, payload: f.payload.toString("hex") });
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
      [Buffer.from([0x00, 0x03, 0x01, 0x05, 0x61]), "bad_frame", /runs past the end/],
      [Buffer.from([0x00, 0x02, 0x01, 0x00]), "bad_frame", /SEND frame without a name/], // SEND without a destination
      [Buffer.from([0x00, 0x03, 0x06, 0x01, 0x61]), "bad_frame", /PING frames carry no name/],
      [Buffer.concat([Buffer.from([0x00, 0x04, 0x01, 0x02]), Buffer.from("A\n")]), "bad_frame", /names "A\?", which is not an identity name/],
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

  it("a frame type it does not know (a newer party's) comes out as unknown, with the frames around it intact", () => {
    const unknown = Buffer.from([0x00, 0x05, 0x42, 0x00, 0xde, 0xad, 0xbe]);
    const all = Buffer.concat([encodeRelayFrame(RELAY_FRAME.PING, "", Buffer.from("a")), unknown, encodeRelayFrame(RELAY_FRAME.SEND, "db-1", Buffer.from("x"))]);
    for (const chunk of [1, 3, all.length]) {
      const r = readAll(all, chunk);
      expect(r.out.map((f) => [f.type, f.known])).toEqual([[RELAY_FRAME.PING, true], [0x42, false], [RELAY_FRAME.SEND, true]]);
      expect(r.out[1].payload).toBe("deadbe"); // everything after type and name length: a newer layout is its own
      expect(r.out[2].name).toBe("db-1");
    }
  });

  it("each refusal names the rule that was broken (issue 14.5)", () => {
    const refusal = (bytes: Buffer): RelayFrameError => {
      const r = new RelayFrameReader();
      r.push(bytes);
      try { r.next(); } catch (e) { return e as RelayFrameError; }
      throw new Error(`accepted ${bytes.subarray(0, 8).toString("hex")}`);
    };
    const frame = (type: number, nameLen: number, name: Buffer, payload: Buffer) => {
      const body = Buffer.concat([Buffer.from([type, nameLen]), name, payload]);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(body.length, 0);
      return Buffer.concat([len, body]);
    };
    // The frame: a 200-byte name in a 203-byte frame fits the frame; it breaks the 63-character name limit.
    const long = refusal(frame(RELAY_FRAME.SEND, 200, Buffer.alloc(200, 0x61), Buffer.alloc(1)));
    expect(long.code).toBe("bad_frame");
    expect(long.message).toMatch(/name of 200 bytes exceeds the 63-character limit of an identity name/);
    expect(long.message).not.toMatch(/does not fit/);
    // A name length that really runs past the frame says so.
    expect(refusal(frame(RELAY_FRAME.SEND, 5, Buffer.from("ab"), Buffer.alloc(0))).message).toMatch(/name length 5 runs past the end of the 4-byte frame/);
    // PING/PONG carry no name: that is the rule, not an "invalid name".
    expect(refusal(frame(RELAY_FRAME.PING, 1, Buffer.from("a"), Buffer.alloc(0))).message).toMatch(/PING frames carry no name \(got 1 byte\)/);
    // A named frame without a name, and one whose name breaks the identity-name pattern.
    expect(refusal(frame(RELAY_FRAME.SEND, 0, Buffer.alloc(0), Buffer.from("x"))).message).toMatch(/SEND frame without a name/);
    expect(refusal(frame(RELAY_FRAME.SEND, 3, Buffer.from("A-b"), Buffer.alloc(0))).message)
      .toMatch(/SEND frame names "A-b", which is not an identity name \(lowercase letters, digits, '-' and '_'; starts and ends with a letter or digit\)/);
    // A short name leaves room in the frame for more than a payload may hold: the payload rule is named.
    const fat = refusal(frame(RELAY_FRAME.SEND, 1, Buffer.from("a"), Buffer.alloc(MAX_RELAY_PAYLOAD + 1)));
    expect(fat.code).toBe("frame_too_large");
    expect(fat.message).toMatch(new RegExp(`SEND payload of ${MAX_RELAY_PAYLOAD + 1} bytes exceeds the ${MAX_RELAY_PAYLOAD}-byte payload limit`));
    const huge = Buffer.alloc(2);
    huge.writeUInt16BE(0xffff, 0);
    expect(refusal(huge).message).toMatch(new RegExp(`frame length 65535 exceeds the ${MAX_RELAY_FRAME}-byte maximum \\(type, name length, a 63-byte name and a ${MAX_RELAY_PAYLOAD}-byte payload\\)`));
    expect(refusal(Buffer.from([0x00, 0x01, 0x01])).message).toMatch(/frame length 1 is below the 2-byte minimum \(type and name length\)/);
  });

  it("an oversized length is refused before its body arrives", () => {
    const r = new RelayFrameReader();
    const hdr = Buffer.alloc(2);
    hdr.writeUInt16BE(MAX_RELAY_FRAME + 1, 0);
    r.push(hdr);
    expect(() => r.next()).toThrow(/exceeds/);
  });
});
