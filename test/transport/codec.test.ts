// The stream packet codec, before any mux exists: every frame round-trips, our encoder agrees byte for byte
// with a slow reference written straight from the layout in frames.ts / packet.ts, and every truncation or
// corruption is a FrameError naming the frame, never another exception.
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { FRAME, MAX_ACK_RANGES_RECEIVED, MAX_REASON_BYTES, MAX_REQUEST_BYTES, PACKET_HEADER_SIZE } from "../../src/transport/constants.js";
import { decodePacket, PacketReader } from "../../src/transport/decode.js";
import {
  ackFrameSize, clipReason, encodeFrame, frameSize, maxStreamDataIn, PacketWriter, streamFrameHeaderSize,
} from "../../src/transport/encode.js";
import { FrameError } from "../../src/transport/errors.js";
import { describeFrame, type Frame } from "../../src/transport/frames.js";
import { readVarint, varintSize, writeVarint } from "../../src/transport/varint.js";

// ------------------------------------------------------------------ reference encoder (slow, obvious)

function refVarint(v: number): number[] {
  const b = BigInt(v);
  if (b < 64n) return [Number(b)];
  if (b < 16384n) return [0x40 | Number(b >> 8n), Number(b & 0xffn)];
  if (b < 1073741824n) return [0x80 | Number(b >> 24n), ...[16n, 8n, 0n].map((s) => Number((b >> s) & 0xffn))];
  const out = [0xc0 | Number(b >> 56n)];
  for (let s = 48n; s >= 0n; s -= 8n) out.push(Number((b >> s) & 0xffn));
  return out;
}

function refLE(v: number, bytes: number): number[] {
  const out: number[] = [];
  let b = BigInt(v);
  for (let i = 0; i < bytes; i++) {
    out.push(Number(b & 0xffn));
    b >>= 8n;
  }
  return out;
}

function refBytes(u: Uint8Array | string): number[] {
  const b = typeof u === "string" ? [...Buffer.from(u, "utf8")] : [...u];
  return [...refVarint(b.length), ...b];
}

function refFrame(f: Frame): number[] {
  switch (f.type) {
    case FRAME.PING: return [0x01];
    case FRAME.ACK: {
      const r = f.ranges;
      const out = [0x02, ...refVarint(r[0]), ...refVarint(f.delayUs), ...refVarint(r.length / 2 - 1), ...refVarint(r[0] - r[1])];
      for (let i = 2; i < r.length; i += 2) out.push(...refVarint(r[i - 1] - r[i] - 2), ...refVarint(r[i] - r[i + 1]));
      return out;
    }
    case FRAME.STREAM: return [f.fin ? 0x09 : 0x08, ...refVarint(f.id), ...refVarint(f.offset), ...refBytes(f.data)];
    case FRAME.OPEN: return [0x10, ...refVarint(f.id), ...refBytes(f.request)];
    case FRAME.ACCEPT: return [0x11, ...refVarint(f.id)];
    case FRAME.REFUSE: return [0x12, ...refVarint(f.id), ...refVarint(f.code), ...refBytes(f.reason)];
    case FRAME.RESET: return [0x13, ...refVarint(f.id), ...refVarint(f.code), ...refVarint(f.finalSize)];
    case FRAME.MAX_DATA: return [0x14, ...refVarint(f.maximum)];
    case FRAME.MAX_STREAM_DATA: return [0x15, ...refVarint(f.id), ...refVarint(f.maximum)];
    case FRAME.CLOSE: return [0x1c, ...refVarint(f.code), ...refBytes(f.reason)];
    case FRAME.IMMEDIATE_ACK: return [0x1f];
  }
}

function refPacket(src: number, dst: number, pn: number, frames: Frame[]): Buffer {
  return Buffer.from([0x01, ...refLE(src, 4), ...refLE(dst, 4), ...refLE(pn, 6), ...frames.flatMap(refFrame)]);
}

function ourPacket(src: number, dst: number, pn: number, frames: Frame[]): Buffer {
  const w = new PacketWriter();
  w.begin(src, dst, pn, 65_535);
  for (const f of frames) w.write(f);
  return Buffer.from(w.finish());
}

// ------------------------------------------------------------------ frame generators

const EDGES = [0, 1, 63, 64, 16_383, 16_384, 2 ** 30 - 1, 2 ** 30, 2 ** 32, 2 ** 53 - 1];

/** Deterministic PRNG so a failure reproduces. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomFrame(r: () => number): Frame {
  const pick = <T>(a: T[]) => a[Math.floor(r() * a.length)];
  const num = () => (r() < 0.3 ? pick(EDGES) : Math.floor(r() * 2 ** (1 + Math.floor(r() * 40))));
  const small = () => Math.floor(r() * 100_000);
  const bytes = (max: number) => randomBytes(Math.floor(r() * max));
  const text = () => pick(["", "policy denied", "no such service: db", "çà 🚀 ünïcode", "x".repeat(MAX_REASON_BYTES)]);
  switch (Math.floor(r() * 11)) {
    case 0: return { type: FRAME.PING };
    case 10: return { type: FRAME.IMMEDIATE_ACK };
    case 1: {
      const ranges: number[] = [];
      let high = small() + 1_000_000;
      for (let i = 0, n = 1 + Math.floor(r() * 20); i < n && high >= 0; i++) {
        const low = Math.max(0, high - Math.floor(r() * 50));
        ranges.push(high, low);
        high = low - 2 - Math.floor(r() * 30);
      }
      return { type: FRAME.ACK, ranges, delayUs: small() };
    }
    case 2: {
      const data = bytes(1400);
      return { type: FRAME.STREAM, id: num(), offset: Math.min(num(), 2 ** 53 - 1 - data.length), fin: r() < 0.5, data };
    }
    case 3: return { type: FRAME.OPEN, id: num(), request: bytes(MAX_REQUEST_BYTES + 1) };
    case 4: return { type: FRAME.ACCEPT, id: num() };
    case 5: return { type: FRAME.REFUSE, id: num(), code: num(), reason: text() };
    case 6: return { type: FRAME.RESET, id: num(), code: num(), finalSize: num() };
    case 7: return { type: FRAME.MAX_DATA, maximum: num() };
    case 8: return { type: FRAME.MAX_STREAM_DATA, id: num(), maximum: num() };
    default: return { type: FRAME.CLOSE, code: num(), reason: text() };
  }
}

/** Decoded frames as plain comparable values (Uint8Array views compared by content). */
function plain(frames: Frame[]): unknown[] {
  return frames.map((f) => Object.fromEntries(Object.entries(f).map(([k, v]) => [k, v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v])));
}

// ------------------------------------------------------------------ tests

describe("varints", () => {
  it("match the reference at every length boundary and read back", () => {
    const buf = new Uint8Array(8);
    for (const v of EDGES) {
      const end = writeVarint(buf, 0, v);
      expect([...buf.subarray(0, end)]).toEqual(refVarint(v));
      expect(end).toBe(varintSize(v));
      expect(readVarint(buf, 0, end)).toBe(v);
      expect(readVarint(buf, 0, end - 1)).toBe(-1); // truncated
    }
    // 2^53 and above do not fit a JS number exactly: refused, not rounded.
    expect(readVarint(Uint8Array.from([0xc0, 0x20, 0, 0, 0, 0, 0, 0]), 0, 8)).toBe(-2);
    expect(readVarint(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 0, 8)).toBe(-2);
  });
});

describe("stream packet codec", () => {
  const oneOfEach: Frame[] = [
    { type: FRAME.PING },
    { type: FRAME.ACK, ranges: [100, 90, 80, 80, 10, 0], delayUs: 25_000 },
    { type: FRAME.ACK, ranges: [0, 0], delayUs: 0 },
    { type: FRAME.STREAM, id: 0, offset: 0, fin: false, data: Buffer.from("hello") },
    { type: FRAME.STREAM, id: 2 ** 53 - 1, offset: 2 ** 40, fin: true, data: new Uint8Array(0) },
    { type: FRAME.OPEN, id: 7, request: randomBytes(MAX_REQUEST_BYTES) },
    { type: FRAME.ACCEPT, id: 16_384 },
    { type: FRAME.REFUSE, id: 3, code: 0x14, reason: "policy: @eng may not reach db-1:5432 ✗" },
    { type: FRAME.RESET, id: 9, code: 0x10, finalSize: 123_456_789 },
    { type: FRAME.MAX_DATA, maximum: 2 ** 53 - 1 },
    { type: FRAME.MAX_STREAM_DATA, id: 1, maximum: 65_536 },
    { type: FRAME.CLOSE, code: 0, reason: "" },
    { type: FRAME.IMMEDIATE_ACK },
  ];

  it("round-trips one of every frame and matches the reference encoder byte for byte", () => {
    const ours = ourPacket(0xdeadbeef, 0, 2 ** 48 - 1, oneOfEach);
    expect(ours.toString("hex")).toBe(refPacket(0xdeadbeef, 0, 2 ** 48 - 1, oneOfEach).toString("hex"));
    const { header, frames } = decodePacket(ours);
    expect(header).toEqual({ srcEpoch: 0xdeadbeef, dstEpoch: 0, pn: 2 ** 48 - 1 });
    expect(plain(frames)).toEqual(plain(oneOfEach));
    for (const f of oneOfEach) expect(frameSize(f)).toBe(refFrame(f).length);
  });

  it("agrees with the reference on 3,000 random packets", () => {
    const r = rng(42);
    for (let i = 0; i < 3_000; i++) {
      const frames = Array.from({ length: 1 + Math.floor(r() * 6) }, () => randomFrame(r));
      const src = 1 + Math.floor(r() * 0xfffffffe);
      const dst = Math.floor(r() * 0xffffffff);
      const pn = Math.floor(r() * 2 ** 48);
      const ours = ourPacket(src, dst, pn, frames);
      expect(ours.equals(refPacket(src, dst, pn, frames))).toBe(true);
      const back = decodePacket(ours);
      expect(back.header).toEqual({ srcEpoch: src, dstEpoch: dst, pn });
      expect(plain(back.frames)).toEqual(plain(frames));
      expect(ours.length).toBe(PACKET_HEADER_SIZE + frames.reduce((n, f) => n + frameSize(f), 0));
    }
  });

  it("refuses every truncation inside a frame with a FrameError; a cut between frames leaves a prefix", () => {
    const r = rng(7);
    for (let i = 0; i < 300; i++) {
      const frames = Array.from({ length: 1 + Math.floor(r() * 4) }, () => randomFrame(r));
      const whole = ourPacket(1, 2, i, frames);
      const boundaries = new Map<number, number>();
      let end = PACKET_HEADER_SIZE;
      frames.forEach((f, k) => boundaries.set((end += frameSize(f)), k + 1));
      for (let cut = 0; cut < whole.length; cut += 1 + Math.floor(r() * 40)) {
        const part = whole.subarray(0, cut);
        if (boundaries.has(cut)) {
          expect(plain(decodePacket(part).frames)).toEqual(plain(frames.slice(0, boundaries.get(cut))));
          continue;
        }
        let err: unknown;
        try { decodePacket(part); } catch (e) { err = e; }
        expect(err, `cut at ${cut} of ${whole.length}`).toBeInstanceOf(FrameError);
        expect((err as Error).message).toMatch(cut < PACKET_HEADER_SIZE ? /shorter than|no frame/ : /no frame|truncated|malformed/);
      }
    }
  });

  it("never throws anything but FrameError on random bytes and bit flips", () => {
    const r = rng(99);
    const valid = ourPacket(5, 6, 7, oneOfEach);
    for (let i = 0; i < 20_000; i++) {
      let input: Buffer;
      if (i % 2) {
        input = Buffer.from(valid);
        for (let k = 0; k < 1 + Math.floor(r() * 4); k++) input[PACKET_HEADER_SIZE + Math.floor(r() * (input.length - PACKET_HEADER_SIZE))] ^= 1 << Math.floor(r() * 8);
      } else {
        input = Buffer.concat([Buffer.from([0x01, 1, 0, 0, 0]), randomBytes(10 + Math.floor(r() * 200))]);
      }
      try {
        decodePacket(input);
      } catch (e) {
        expect(e).toBeInstanceOf(FrameError);
      }
    }
  });

  it("names what is wrong", () => {
    const hdr = refPacket(1, 0, 0, []);
    const bad: [Buffer, RegExp][] = [
      [Buffer.alloc(3), /shorter than the 15-byte header/],
      [Buffer.concat([Buffer.from([0x02]), hdr.subarray(1), Buffer.from([1])]), /unknown packet version 0x2/],
      [hdr, /no frame/],
      [refPacket(0, 0, 0, [{ type: FRAME.PING }]), /epoch 0/],
      [Buffer.concat([hdr, Buffer.from([0x42])]), /at byte 15: unknown frame type 0x42/],
      [Buffer.concat([hdr, Buffer.from([0x08, 0xc0, 0x20, 0, 0, 0, 0, 0, 0])]), /STREAM frame .*stream id exceeds 2\^53/],
      [Buffer.concat([hdr, Buffer.from([0x08, 0x01, 0x00, 0x05, 0x61])]), /STREAM frame .*truncated in data: 5 bytes announced, 1 left/],
      [Buffer.concat([hdr, Buffer.from([0x08, 0x01])]), /STREAM frame .*truncated in offset/],
      [Buffer.concat([hdr, Buffer.from([0x10, 0x01, ...refVarint(MAX_REQUEST_BYTES + 1)])]), /OPEN frame .*exceeds 512/],
      [Buffer.concat([hdr, Buffer.from([0x12, 0x01, 0x01, 0x02, 0xc3, 0x28])]), /REFUSE frame .*not UTF-8/],
      [Buffer.concat([hdr, Buffer.from([0x1c, 0x00, ...refVarint(MAX_REASON_BYTES + 1)])]), /CLOSE frame .*reason of 257 bytes/],
      [Buffer.concat([hdr, Buffer.from([0x02, 0x05, 0x00, 0x00, 0x06])]), /ACK frame .*below packet 0/],
      [Buffer.concat([hdr, Buffer.from([0x02, 0x05, 0x00, 0x01, 0x01, 0x04, 0x00])]), /ACK frame .*below packet 0/],
      [Buffer.concat([hdr, Buffer.from([0x02, 0x40, 0xff, 0x00, ...refVarint(MAX_ACK_RANGES_RECEIVED)])]), /ranges exceed 256/],
    ];
    for (const [bytes, msg] of bad) {
      let err: unknown;
      try { decodePacket(bytes); } catch (e) { err = e; }
      expect(err, bytes.toString("hex")).toBeInstanceOf(FrameError);
      expect((err as Error).message, bytes.toString("hex")).toMatch(msg);
    }
    // The encoder refuses what the decoder would refuse.
    const buf = Buffer.alloc(2048);
    expect(() => encodeFrame(buf, 0, { type: FRAME.OPEN, id: 1, request: new Uint8Array(MAX_REQUEST_BYTES + 1) })).toThrow(FrameError);
    expect(() => encodeFrame(buf, 0, { type: FRAME.RESET, id: -1, code: 0, finalSize: 0 })).toThrow(FrameError);
    expect(() => encodeFrame(buf, 0, { type: FRAME.ACK, ranges: [5, 6], delayUs: 0 })).toThrow(FrameError);
    expect(() => encodeFrame(buf, 0, { type: FRAME.ACK, ranges: [9, 5, 4, 0], delayUs: 0 })).toThrow(/descending with a gap/);
    expect(() => encodeFrame(buf, 0, { type: FRAME.CLOSE, code: 0, reason: "é".repeat(200) })).toThrow(/reason over 256/);
  });

  it("fills a packet exactly with STREAM data for any room and offset", () => {
    for (const id of [0, 63, 64, 20_000]) {
      for (const offset of [0, 63, 16_384, 2 ** 31]) {
        for (let avail = 0; avail < 70_000; avail += avail < 300 ? 1 : 997) {
          const n = maxStreamDataIn(avail, id, offset);
          if (n === 0) {
            expect(streamFrameHeaderSize(id, offset, 1) + 1).toBeGreaterThan(avail);
            continue;
          }
          expect(streamFrameHeaderSize(id, offset, n) + n, `${avail}/${id}/${offset}`).toBeLessThanOrEqual(avail);
          expect(streamFrameHeaderSize(id, offset, n + 1) + n + 1).toBeGreaterThan(avail);
        }
      }
    }
  });

  it("sizes ACK frames with only the first ranges", () => {
    const ranges = [1000, 990, 900, 900, 500, 400, 10, 0];
    for (let count = 1; count <= 4; count++) {
      const f: Frame = { type: FRAME.ACK, ranges: ranges.slice(0, 2 * count), delayUs: 1234 };
      expect(ackFrameSize(ranges, count, 1234)).toBe(refFrame(f).length);
    }
  });

  it("writes STREAM headers in place for the data the caller copies", () => {
    const w = new PacketWriter();
    w.begin(9, 8, 7, 1400);
    const data = randomBytes(1000);
    const at = w.streamHeader(5, 77_777, data.length, true);
    data.copy(w.buf, at);
    w.advance(data.length);
    const expected = refPacket(9, 8, 7, [{ type: FRAME.STREAM, id: 5, offset: 77_777, fin: true, data }]);
    expect(Buffer.from(w.finish()).equals(expected)).toBe(true);
    expect(w.remaining).toBe(1400 - expected.length);
  });

  it("yields views into the datagram, not copies", () => {
    const pkt = ourPacket(1, 1, 1, [{ type: FRAME.STREAM, id: 0, offset: 0, fin: false, data: Buffer.from("abc") }]);
    const r = new PacketReader();
    r.reset(pkt);
    const f = r.next();
    expect(f?.type).toBe(FRAME.STREAM);
    if (f?.type !== FRAME.STREAM) return;
    expect(f.data.buffer).toBe(pkt.buffer);
    pkt[pkt.length - 1] = 0x7a;
    expect(Buffer.from(f.data).toString()).toBe("abz");
  });

  it("describes frames for logs", () => {
    expect(oneOfEach.map(describeFrame)).toEqual([
      "PING",
      "ACK delay=25000us ranges=[90-100,80,0-10]",
      "ACK delay=0us ranges=[0]",
      "STREAM id=0 off=0 len=5",
      `STREAM id=${2 ** 53 - 1} off=${2 ** 40} len=0 fin`,
      "OPEN id=7 request=512B",
      "ACCEPT id=16384",
      'REFUSE id=3 code=refused reason="policy: @eng may not reach db-1:5432 ✗"',
      "RESET id=9 code=cancelled final=123456789",
      `MAX_DATA ${2 ** 53 - 1}`,
      "MAX_STREAM_DATA id=1 65536",
      'CLOSE code=no_error reason=""',
      "IMMEDIATE_ACK",
    ]);
  });

  it("clips long reasons at a character boundary", () => {
    const long = "ü".repeat(300);
    const clipped = clipReason(long);
    expect(Buffer.byteLength(clipped)).toBeLessThanOrEqual(MAX_REASON_BYTES);
    expect(clipped).toBe("ü".repeat(MAX_REASON_BYTES / 2));
    expect(clipReason("short")).toBe("short");
  });
});
