// The resume log holds shared delta encodings, not frames: what it replays must be, byte for byte, the frames
// encodeFrame makes for each seq; its limits (frames, bytes, age) trim from the oldest as the per-stream copies did.
import { describe, expect, it } from "vitest";
import { ResumeLog, shareDelta } from "../../src/coord/resume-log.js";
import { RESUME_LOG_BYTES, RESUME_LOG_FRAMES, RESUME_LOG_MAX_AGE_MS } from "../../src/coord/limits.js";
import { encodeFrame, MAP_PROTOCOL_VERSION, type DeltaBody } from "../../src/wire/coord/map.js";

const frame = (seq: number, body: DeltaBody) => encodeFrame({ v: MAP_PROTOCOL_VERSION, t: "delta", seq, ...body });

describe("ResumeLog", () => {
  it("two streams logging one shared delta at their own seqs each replay their own frame", () => {
    const body: DeltaBody = { patch: [{ name: "n-1", online: true }] };
    const d = shareDelta(body);
    const a = new ResumeLog(), b = new ResumeLog();
    a.reset(4); b.reset(199);
    a.append(d, 5); b.append(d, 200);
    expect(a.framesAfter(4)[0].equals(frame(5, body))).toBe(true);
    expect(b.framesAfter(199)[0].equals(frame(200, body))).toBe(true);
    expect(a.framesAfter(5)).toEqual([]);
  });

  it("keeps the last RESUME_LOG_FRAMES, within RESUME_LOG_BYTES, and drops what aged out", () => {
    const log = new ResumeLog();
    log.reset(0);
    const small = shareDelta({ remove: ["n-1"] });
    for (let seq = 1; seq <= RESUME_LOG_FRAMES + 10; seq++) log.append(small, seq);
    expect(log.length).toBe(RESUME_LOG_FRAMES);
    expect(log.oldestSeq).toBe(11);
    expect(log.framesAfter(10).map((f) => f.equals(frame(11, { remove: ["n-1"] })))[0]).toBe(true);

    const big = shareDelta({ revocation: "x".repeat(RESUME_LOG_BYTES / 2) });
    const seq = RESUME_LOG_FRAMES + 11;
    log.append(big, seq);
    log.append(big, seq + 1);
    expect(log.length).toBe(1); // two big frames exceed the byte budget: only the newest stays
    expect(log.oldestSeq).toBe(seq + 1);

    log.age(big.at + RESUME_LOG_MAX_AGE_MS + 1);
    expect(log.length).toBe(0);
    expect(log.oldestSeq).toBe(seq + 2); // nothing to resume from but the last seq sent
  });
});
