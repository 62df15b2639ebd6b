// Bounded memory and hostile input: a stalled reader holds at most its windows on both sides; a peer that
// breaks flow control, names streams that do not exist, floods opens or sends garbage gets counted drops,
// refusals or resets, never unbounded buffering and never an exception out of handleDatagram.
import { describe, expect, it } from "vitest";
import { DROP, ERROR_CODE, FRAME, MAX_ACK_RANGES_SENT } from "../../src/transport/constants.js";
import { FlowControlError, MuxClosedError, type TransportError } from "../../src/transport/errors.js";
import type { Frame } from "../../src/transport/frames.js";
import type { Stream } from "../../src/transport/stream.js";
import { randomData, readAll, sha256, writeAll } from "./helpers.js";
import { rawSetup, settle, type CaptureLink } from "./raw-peer.js";
import { prng, simPair } from "./sim-link.js";

/** What the raw peer sends to acknowledge everything the mux sent so far (its packet numbers are 0, 1, ...). */
function ackAll(link: CaptureLink): Frame {
  return { type: FRAME.ACK, ranges: [link.sent.length - 1, 0], delayUs: 0 };
}

describe("a stalled reader", () => {
  it("holds both sides to their windows, and the transfer completes once reading resumes", async () => {
    let server!: Stream;
    const p = simPair({ loss: 0.01 }, {}, { onIncoming: (s) => { server = s; s.accept(); } }, 2);
    const data = randomData(20 * 1024 * 1024);
    const s = p.a.open();
    void writeAll(s, data);
    // Nobody reads on b: run 30 s of virtual time.
    await p.clock.run(() => false, 30_000);
    const a = p.a.stats();
    const b = p.b.stats();
    const cfg = p.a.config;
    // Receiver: the stream window's worth in our buffers plus node's readable buffer, no more.
    expect(b.receiveBuffered).toBeLessThanOrEqual(cfg.streamReceiveWindow);
    expect(server.readableLength).toBeLessThanOrEqual(cfg.readableHighWaterMark + 1400);
    expect(b.streamBytesReceived).toBeLessThanOrEqual(cfg.streamReceiveWindow + cfg.readableHighWaterMark + 1400);
    // Sender: its send buffer plus the one chunk write() took, and the application is told to wait.
    expect(a.sendBuffered).toBeLessThanOrEqual(cfg.streamSendBuffer + 64 * 1024);
    expect(s.writableNeedDrain).toBe(true);
    expect(a.streamBytesSent).toBe(b.streamBytesReceived);
    // The stall costs almost nothing on the wire: keepalives only.
    const sentBefore = p.ab.sent + p.ba.sent;
    await p.clock.run(() => false, 60_000);
    expect(p.ab.sent + p.ba.sent - sentBefore).toBeLessThan(20);
    expect(p.a.stats().idleTimeouts + p.b.stats().idleTimeouts).toBe(0);
    // Reading resumes: everything arrives.
    const r = readAll(server);
    expect(await p.clock.run(() => r.ended, 600_000)).toBe(true);
    expect(r.hash()).toBe(sha256(data));
  }, 30_000);
});

describe("flow-control violations", () => {
  function opened() {
    const incoming: Stream[] = [];
    const errors: (Error | null)[] = [];
    const t = rawSetup({
      onIncoming: (s) => {
        s.accept();
        incoming.push(s);
        errors.push(null);
        const i = errors.length - 1;
        s.on("error", (e) => (errors[i] = e));
      },
    });
    return { ...t, incoming, errors };
  }

  it("a stream sent past its credit is reset with FLOW_CONTROL before any of that data is kept", async () => {
    const t = opened();
    t.feed([{ type: FRAME.OPEN, id: 0, request: Buffer.from("x") }, { type: FRAME.STREAM, id: 0, offset: 0, fin: false, data: Buffer.alloc(1000, 1) }]);
    await settle();
    expect(t.mux.stats().streamBytesReceived).toBe(1000);
    const credit = t.mux.config.streamReceiveWindow;
    t.feed([{ type: FRAME.STREAM, id: 0, offset: credit - 50, fin: false, data: Buffer.alloc(100, 2) }]);
    await settle();
    expect(t.errors[0]).toBeInstanceOf(FlowControlError);
    expect((t.errors[0] as TransportError).code).toBe(ERROR_CODE.FLOW_CONTROL);
    expect(t.mux.stats().drops[DROP.FLOW_CONTROL]).toBe(1);
    // Not a byte of the offending frame was counted or kept.
    expect(t.mux.stats().streamBytesReceived).toBe(1000);
    expect(t.mux.stats().receiveBuffered).toBe(0);
    const resets = t.link.frames().filter((f) => f.type === FRAME.RESET);
    expect(resets).toEqual([{ type: FRAME.RESET, id: 1, code: ERROR_CODE.FLOW_CONTROL, finalSize: 0 }]);
  });

  it("offsets far outside the window are violations, not buffering", async () => {
    const t = opened();
    for (const offset of [2 ** 30, 2 ** 50, Number.MAX_SAFE_INTEGER - 10]) {
      const id = 2 * t.incoming.length;
      t.feed([{ type: FRAME.OPEN, id, request: new Uint8Array(0) }, { type: FRAME.STREAM, id, offset, fin: true, data: Buffer.alloc(10) }]);
    }
    await settle();
    expect(t.errors.map((e) => e?.constructor.name)).toEqual(["FlowControlError", "FlowControlError", "FlowControlError"]);
    expect(t.mux.stats().receiveBuffered).toBe(0);
    expect(t.mux.stats().streamBytesReceived).toBe(0);
  });

  it("the mux-wide window broken across streams closes the mux with FLOW_CONTROL", async () => {
    let closed: MuxClosedError | null = null;
    const t = rawSetup({
      onIncoming: (s) => {
        s.accept();
        s.on("error", () => {}); // the streams fail with the mux; the test looks at onClose
      },
      onClose: (e) => (closed = e),
    });
    const window = t.mux.config.muxReceiveWindow;
    const perStream = 200_000;
    let id = 0;
    for (let sent = 0; sent <= window && !closed; sent += perStream, id += 2) {
      t.feed([{ type: FRAME.OPEN, id, request: new Uint8Array(0) }]);
      for (let off = 0; off < perStream && !closed; off += 20_000) {
        t.feed([{ type: FRAME.STREAM, id, offset: off, fin: false, data: Buffer.alloc(20_000) }]);
      }
    }
    await settle();
    expect(closed).toBeInstanceOf(MuxClosedError);
    expect(closed!.code).toBe(ERROR_CODE.FLOW_CONTROL);
    expect(closed!.remote).toBe(false);
    expect(t.mux.stats().streamBytesReceived).toBeLessThanOrEqual(window);
    expect(t.link.frames().some((f) => f.type === FRAME.CLOSE && f.code === ERROR_CODE.FLOW_CONTROL)).toBe(true);
    // Closed for good: later datagrams are counted drops.
    t.feed([{ type: FRAME.PING }]);
    expect(t.mux.stats().drops[DROP.CLOSED]).toBe(1);
  });
});

describe("frames for streams that do not exist", () => {
  it("are counted drops, or answered with RESET where the peer is waiting for one", async () => {
    const t = rawSetup({ onIncoming: (s) => s.refuse(7, "no") });
    // STREAM / MAX_STREAM_DATA / ACCEPT for a peer stream never opened, and for one of ours never opened.
    t.feed([{ type: FRAME.STREAM, id: 10, offset: 0, fin: false, data: Buffer.from("who?") }]);
    t.feed([{ type: FRAME.MAX_STREAM_DATA, id: 11, maximum: 1 << 20 }]);
    t.feed([{ type: FRAME.ACCEPT, id: 13 }]);
    expect(t.mux.stats().drops[DROP.UNKNOWN_STREAM]).toBe(3);
    // A refused stream is closed: its frames are dropped as such.
    t.feed([{ type: FRAME.OPEN, id: 0, request: new Uint8Array(0) }]);
    t.feed([{ type: FRAME.STREAM, id: 0, offset: 0, fin: false, data: Buffer.from("late") }]);
    expect(t.mux.stats().drops[DROP.CLOSED_STREAM]).toBe(1);
    // A RESET for a peer stream whose OPEN never arrived: answered (final size 0); its late OPEN is ignored.
    t.feed([{ type: FRAME.RESET, id: 2, code: 5, finalSize: 0 }]);
    t.feed([{ type: FRAME.OPEN, id: 2, request: new Uint8Array(0) }]);
    expect(t.mux.stats().drops[DROP.DUPLICATE_OPEN]).toBe(1);
    // An OPEN naming one of our own streams, and an ACK for a packet never sent.
    t.feed([{ type: FRAME.OPEN, id: 5, request: new Uint8Array(0) }]);
    t.feed([{ type: FRAME.ACK, ranges: [1000, 0], delayUs: 0 }]);
    await settle();
    const s = t.mux.stats();
    expect(s.drops[DROP.PROTOCOL]).toBe(1);
    expect(s.drops[DROP.BAD_ACK]).toBe(1);
    expect(s.openStreams).toBe(0);
    expect(s.receiveBuffered).toBe(0);
    const sent = t.link.frames();
    expect(sent.filter((f) => f.type === FRAME.REFUSE)).toEqual([{ type: FRAME.REFUSE, id: 1, code: 7, reason: "no" }]);
    expect(sent.filter((f) => f.type === FRAME.RESET)).toEqual([{ type: FRAME.RESET, id: 3, code: ERROR_CODE.NO_ERROR, finalSize: 0 }]);
  });

  it("stream numbers far past the peer's last open are dropped, not remembered", async () => {
    const t = rawSetup({ onIncoming: (s) => s.accept() });
    t.feed([{ type: FRAME.OPEN, id: 2 * 1_000_000, request: new Uint8Array(0) }]);
    t.feed([{ type: FRAME.RESET, id: 2 * 5_000_000, code: 0, finalSize: 0 }]);
    expect(t.mux.stats().drops[DROP.STREAM_ID_TOO_FAR]).toBe(2);
    expect(t.mux.stats().openStreams).toBe(0);
  });
});

describe("a flood of opens", () => {
  it("10,000 opens: 1,024 become streams, every other one is refused with STREAM_LIMIT", async () => {
    let accepted = 0;
    const t = rawSetup({ onIncoming: (s) => { accepted++; s.accept(); } });
    const N = 10_000;
    for (let n = 0; n < N; n += 100) {
      const frames: Frame[] = [];
      if (t.link.sent.length) frames.push(ackAll(t.link));
      for (let k = n; k < n + 100; k++) frames.push({ type: FRAME.OPEN, id: 2 * k, request: Buffer.from(`svc-${k}`) });
      t.feed(frames);
      await t.clock.advance(5); // pacing spreads the refusals over (virtual) time
    }
    t.feed([ackAll(t.link)]);
    await t.clock.advance(5);
    const s = t.mux.stats();
    const limit = t.mux.config.maxStreams;
    expect(accepted).toBe(limit);
    expect(s.openStreams).toBe(limit);
    expect(s.opensRefused).toBe(N - limit);
    expect(s.drops[DROP.STREAM_LIMIT]).toBe(N - limit);
    const refusals = t.link.frames().filter((f) => f.type === FRAME.REFUSE);
    expect(refusals.length).toBe(N - limit);
    expect(refusals.every((f) => f.type === FRAME.REFUSE && f.code === ERROR_CODE.STREAM_LIMIT)).toBe(true);
    expect(s.pendingControlFrames).toBe(0);
  });

  it("10,000 opens in one burst: refusals beyond the backlog are counted drops, the queue stays bounded", () => {
    const t = rawSetup({ onIncoming: () => {} });
    for (let n = 0; n < 10_000; n += 200) {
      t.feed(Array.from({ length: 200 }, (_, k) => ({ type: FRAME.OPEN, id: 2 * (n + k), request: new Uint8Array(0) })));
    }
    const s = t.mux.stats();
    expect(s.openStreams).toBe(t.mux.config.maxStreams);
    expect(s.pendingControlFrames).toBeLessThanOrEqual(t.mux.config.maxRefusalBacklog);
    expect(s.drops[DROP.REFUSAL_BACKLOG]).toBe(10_000 - t.mux.config.maxStreams - t.mux.config.maxRefusalBacklog);
  });

  it("our own opens stop at maxStreams with StreamLimitError", () => {
    const t = rawSetup();
    let thrown = 0;
    for (let i = 0; i < 10_000; i++) {
      try {
        t.mux.open();
      } catch (e) {
        expect((e as Error).name).toBe("StreamLimitError");
        thrown++;
      }
    }
    expect(thrown).toBe(10_000 - t.mux.config.maxStreams);
    expect(t.mux.stats().openStreams).toBe(t.mux.config.maxStreams);
  });
});

describe("garbage and odd packet numbers", () => {
  it("never throws out of handleDatagram; every bad datagram is a counted drop", async () => {
    const t = rawSetup({ onIncoming: (s) => s.accept() });
    const r = prng(5);
    const valid = t.peer.packet([{ type: FRAME.OPEN, id: 0, request: Buffer.from("x") }, { type: FRAME.STREAM, id: 0, offset: 0, fin: false, data: Buffer.alloc(300, 7) }]);
    let bad = 0;
    for (let i = 0; i < 5_000; i++) {
      const kind = i % 4;
      let d: Uint8Array;
      if (kind === 0) d = randomData(Math.floor(r() * 200));
      else if (kind === 1) d = valid.subarray(0, 16 + Math.floor(r() * (valid.length - 16))); // truncated (may end on a frame boundary)
      else if (kind === 2) d = Buffer.concat([Buffer.from([0x01, 9, 9, 9, 9, 0, 0, 0, 0]), randomData(6), Buffer.from([0x42])]);
      else d = Buffer.concat([valid.subarray(0, 15), randomData(1 + Math.floor(r() * 60))]);
      const before = t.mux.stats().drops[DROP.MALFORMED] ?? 0;
      expect(() => t.mux.handleDatagram(d)).not.toThrow();
      if ((t.mux.stats().drops[DROP.MALFORMED] ?? 0) > before) bad++;
    }
    await settle();
    expect(bad).toBeGreaterThan(3_000);
    expect(t.mux.stats().drops[DROP.INTERNAL]).toBeUndefined();
    expect(t.mux.closed).toBe(false);
  });

  it("sparse and repeated packet numbers: duplicates dropped, ACKs stay small", async () => {
    const t = rawSetup();
    const r = prng(9);
    const pns = new Set<number>();
    for (let i = 0; i < 3_000; i++) {
      const pn = Math.floor(r() * 2 ** 40);
      pns.add(pn);
      t.mux.handleDatagram(t.peer.packet([{ type: FRAME.PING }], 0, pn));
      if (i % 3 === 0) t.mux.handleDatagram(t.peer.packet([{ type: FRAME.PING }], 0, pn)); // network duplicate
    }
    await settle();
    expect(t.mux.stats().drops[DROP.DUPLICATE_PACKET]).toBeGreaterThanOrEqual(1_000);
    for (const f of t.link.frames()) {
      if (f.type === FRAME.ACK) expect(f.ranges.length / 2).toBeLessThanOrEqual(MAX_ACK_RANGES_SENT);
    }
    expect(t.mux.stats().packetsReceived).toBeLessThanOrEqual(pns.size);
  });
});
