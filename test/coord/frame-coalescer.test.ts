// Map-stream write coalescing on a real stream (a PassThrough counting its writes): a quiet stream's frame
// leaves at once, the frames that follow within the window leave in one write that reads as the same frames
// in order, the backlog counts the waiting ones, and a destroyed stream writes nothing more.
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { FrameCoalescer } from "../../src/coord/frame-coalescer.js";
import { encodeFrame, FrameReader, MAP_PROTOCOL_VERSION, type DecodedFrame as MapFrame } from "../../src/wire/coord/map.js";

const WINDOW_MS = 40;

class CountingStream extends PassThrough {
  writes = 0;
  override write(chunk: Buffer): boolean {
    this.writes++;
    return super.write(chunk);
  }
}

const delta = (seq: number) => encodeFrame({ v: MAP_PROTOCOL_VERSION, t: "delta", seq, patch: [{ name: `n-${seq}`, online: true }] });
const seqs = (frames: MapFrame[]) => frames.map((f) => (f.t === "delta" ? f.seq : -1));

function received(out: PassThrough): MapFrame[] {
  const reader = new FrameReader();
  const frames: MapFrame[] = [];
  for (let c = out.read(); c !== null; c = out.read()) frames.push(...reader.push(c));
  return frames;
}

const until = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("FrameCoalescer", () => {
  const coalescer = new FrameCoalescer(WINDOW_MS);
  afterEach(() => coalescer.stop());

  it("writes a quiet stream's frame at once and the frames after it in one write when the window closes", async () => {
    const out = new CountingStream();
    const sink = coalescer.sink(out);
    sink.write(delta(1));
    expect(out.writes).toBe(1);
    for (let s = 2; s <= 49; s++) sink.write(delta(s));
    expect(out.writes).toBe(1);
    expect(sink.writableLength).toBeGreaterThanOrEqual(48 * delta(2).length);
    await until(WINDOW_MS * 3);
    expect(out.writes).toBe(2);
    expect(seqs(received(out))).toEqual(Array.from({ length: 49 }, (_, i) => i + 1));
    // The window passed with nothing waiting: the stream is quiet again and its next frame leaves at once.
    await until(WINDOW_MS * 3);
    sink.write(delta(50));
    expect(out.writes).toBe(3);
    expect(seqs(received(out))).toEqual([50]);
  });

  it("coalesces each stream on its own, with one timer for all", async () => {
    const a = new CountingStream(), b = new CountingStream();
    const sa = coalescer.sink(a), sb = coalescer.sink(b);
    for (let s = 1; s <= 3; s++) { sa.write(delta(s)); sb.write(delta(100 + s)); }
    await until(WINDOW_MS * 3);
    expect([a.writes, b.writes]).toEqual([2, 2]);
    expect(seqs(received(a))).toEqual([1, 2, 3]);
    expect(seqs(received(b))).toEqual([101, 102, 103]);
  });

  it("drops waiting frames when the stream is destroyed, and writes nothing after", async () => {
    const out = new CountingStream();
    out.on("error", () => {});
    const sink = coalescer.sink(out);
    sink.write(delta(1));
    sink.write(delta(2));
    sink.destroy(new Error("gone"));
    expect(sink.writableLength).toBe(out.writableLength);
    expect(sink.write(delta(3))).toBe(false);
    await until(WINDOW_MS * 3);
    expect(out.writes).toBe(1);
    expect(out.destroyed).toBe(true);
  });
});
