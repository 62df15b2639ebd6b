// The mux over time: a peer restart (new epoch) resets the old streams, a silent peer times out, open
// streams are kept alive by keepalives, a mux at rest sends nothing at all, and close() tells the peer,
// resets everything and stops its timers.
import { describe, expect, it } from "vitest";
import { realClock } from "../../src/transport/clock.js";
import { DROP, ERROR_CODE } from "../../src/transport/constants.js";
import { IdleTimeoutError, MuxClosedError, PeerRestartedError } from "../../src/transport/errors.js";
import type { DatagramLink } from "../../src/transport/link.js";
import { StreamMux } from "../../src/transport/mux.js";
import type { Stream } from "../../src/transport/stream.js";
import { errorOf, randomData, readAll, sha256, writeAll } from "./helpers.js";
import { simPair } from "./sim-link.js";

function acceptAndRead(list: { s: Stream; r: ReturnType<typeof readAll> }[]) {
  return (s: Stream) => {
    s.accept();
    list.push({ s, r: readAll(s) });
  };
}

describe("peer restart", () => {
  it("a new peer epoch resets every stream of the old one; new streams work; late old packets are dropped", async () => {
    const atB: { s: Stream; r: ReturnType<typeof readAll> }[] = [];
    const p = simPair({}, {}, { onIncoming: acceptAndRead(atB) });
    const oldFromB: Uint8Array[] = [];
    const deliverToA = p.ba.deliverTo!;
    p.ba.deliverTo = (d) => {
      oldFromB.push(d);
      deliverToA(d);
    };
    const s = p.a.open(Buffer.from("long-lived"));
    const e = errorOf(s);
    s.write(randomData(50_000));
    await p.clock.run(() => atB.length === 1 && atB[0].r.bytes === 50_000);
    const oldEpoch = p.b.epoch;

    // b restarts: a fresh mux (new random epoch) on the same path, knowing nothing.
    const atB2: { s: Stream; r: ReturnType<typeof readAll> }[] = [];
    const b2 = new StreamMux(p.ba, { clock: p.clock, onIncoming: acceptAndRead(atB2) });
    p.ba.owner = b2;
    p.ba.deliverTo = deliverToA;
    p.ab.deliverTo = (d) => b2.handleDatagram(d);
    expect(b2.epoch).not.toBe(oldEpoch);

    // a keeps writing on the old stream: b2 drops those packets (meant for the old epoch) and its answer
    // teaches a the new epoch.
    s.write(randomData(10_000));
    await p.clock.run(() => e.error !== null, 10_000);
    expect(e.error).toBeInstanceOf(PeerRestartedError);
    expect((e.error as PeerRestartedError).code).toBe(ERROR_CODE.PEER_RESTARTED);
    expect(b2.stats().drops[DROP.STALE_EPOCH]).toBeGreaterThan(0);
    expect(p.a.stats().peerRestarts).toBe(1);
    expect(p.a.stats().peerEpoch).toBe(b2.epoch);
    expect(p.a.stats().openStreams).toBe(0);

    // A late datagram from the old incarnation is not taken for yet another restart.
    p.a.handleDatagram(oldFromB[oldFromB.length - 1]);
    expect(p.a.stats().drops[DROP.OLD_PEER_EPOCH]).toBe(1);
    expect(p.a.stats().peerRestarts).toBe(1);

    // Fresh streams both ways work on the new pairing.
    const data = randomData(500_000);
    const s2 = p.a.open(Buffer.from("after restart"));
    void writeAll(s2, data);
    await p.clock.run(() => atB2.length === 1 && atB2[0].r.ended);
    expect(atB2[0].r.hash()).toBe(sha256(data));
    expect(atB2[0].s.id).toBe(1); // stream numbers start over with the new epoch
  });

  it("the restarted peer opening first is enough to reset our old streams", async () => {
    const opened: Stream[] = [];
    const p = simPair({}, { onIncoming: (x) => { opened.push(x); x.accept(); } }, { onIncoming: (s) => { s.accept(); s.resume(); } });
    const s = p.a.open();
    const e = errorOf(s);
    s.write("hello");
    await p.clock.run(() => p.b.stats().streamBytesReceived === 5);
    const b2 = new StreamMux(p.ba, { clock: p.clock });
    p.ba.owner = b2;
    p.ab.deliverTo = (d) => b2.handleDatagram(d);
    b2.open(Buffer.from("hi from the new b"));
    await p.clock.run(() => e.error !== null && opened.length === 1);
    expect(e.error).toBeInstanceOf(PeerRestartedError);
    expect(Buffer.from(opened[0].request).toString()).toBe("hi from the new b");
  });
});

describe("idle timeout and keepalive", () => {
  it("a peer that goes silent is declared gone after the idle timeout: streams fail with IdleTimeoutError", async () => {
    const p = simPair({}, { keepaliveMs: 15_000, idleTimeoutMs: 60_000 }, { onIncoming: (s) => { s.accept(); s.resume(); s.on("error", () => {}); } });
    const s = p.a.open();
    const e = errorOf(s);
    s.write("ping");
    await p.clock.run(() => p.b.stats().streamBytesReceived === 4);
    p.ab.cond.loss = 1;
    p.ba.cond.loss = 1;
    const cutAt = p.clock.t;
    await p.clock.run(() => e.error !== null, 120_000);
    expect(e.error).toBeInstanceOf(IdleTimeoutError);
    expect((e.error as IdleTimeoutError).name).toBe("IdleTimeoutError");
    expect((e.error as IdleTimeoutError).code).toBe(ERROR_CODE.IDLE_TIMEOUT);
    expect(e.error!.message).toMatch(/idle_timeout/);
    const waited = p.clock.t - cutAt;
    expect(waited).toBeGreaterThanOrEqual(59_000);
    expect(waited).toBeLessThanOrEqual(61_000);
    expect(p.a.stats().idleTimeouts).toBe(1);
    expect(p.a.stats().openStreams).toBe(0);
    // Gone means quiet: nothing more is sent once the streams are reset and nothing is in flight.
    const sent = p.ab.sent;
    await p.clock.advance(300_000);
    expect(p.ab.sent).toBe(sent);
    expect(p.a.stats().timerArmed).toBe(false);
  });

  it("open but quiet streams are kept alive by keepalives only", async () => {
    const p = simPair({}, { keepaliveMs: 15_000, idleTimeoutMs: 60_000 }, { keepaliveMs: 15_000, idleTimeoutMs: 60_000, onIncoming: (s) => { s.accept(); s.resume(); } });
    const s = p.a.open();
    const e = errorOf(s);
    s.write("x");
    await p.clock.run(() => p.b.stats().streamBytesReceived === 1);
    await p.clock.run(() => p.clock.t > 1_000);
    const before = p.ab.sent + p.ba.sent;
    await p.clock.advance(300_000); // five quiet minutes
    const packets = p.ab.sent + p.ba.sent - before;
    expect(e.error).toBeNull();
    expect(p.a.stats().idleTimeouts + p.b.stats().idleTimeouts).toBe(0);
    // One side pings every 15 s and the other acknowledges: 20 of each (not both sides pinging).
    expect(packets).toBeGreaterThanOrEqual(36);
    expect(packets).toBeLessThanOrEqual(44);
  });
});

describe("first use after rest", () => {
  it("a stream opened after 75 s of quiet is not cut by the idle timeout of the rest before it", async () => {
    const cfg = { keepaliveMs: 15_000, idleTimeoutMs: 60_000 };
    const atB: { s: Stream; r: ReturnType<typeof readAll> }[] = [];
    const p = simPair({ delayMs: 20 }, cfg, { ...cfg, onIncoming: acceptAndRead(atB) });
    const first = p.a.open(Buffer.from("before rest"));
    void writeAll(first, randomData(10_000));
    await p.clock.run(() => atB.length === 1 && atB[0].r.ended);
    atB[0].s.end();
    await p.clock.run(() => p.a.stats().openStreams === 0 && p.b.stats().openStreams === 0);
    await p.clock.advance(75_000); // a laptop that reaches the dashboard now and then

    const data = randomData(20_000);
    const second = p.a.open(Buffer.from("after rest"));
    const e = errorOf(second);
    void writeAll(second, data);
    await p.clock.run(() => (atB.length === 2 && atB[1].r.ended) || e.error !== null, 10_000);
    expect(e.error).toBeNull();
    expect(atB[1].r.hash()).toBe(sha256(data));
    expect(p.a.stats().idleTimeouts + p.b.stats().idleTimeouts).toBe(0);
  });
});

describe("after an outage", () => {
  it("a transfer cut for 40 s (both ways, under the idle timeout) moves again within 3 s of the link coming back", async () => {
    const cfg = { keepaliveMs: 15_000, idleTimeoutMs: 60_000 };
    const atB: { s: Stream; r: ReturnType<typeof readAll> }[] = [];
    const p = simPair({ delayMs: 10 }, cfg, { ...cfg, onIncoming: acceptAndRead(atB) });
    const s = p.a.open(Buffer.from("bulk"));
    const e = errorOf(s);
    void writeAll(s, randomData(200 * 1024 * 1024));
    await p.clock.run(() => atB.length === 1 && atB[0].r.bytes > 1_000_000);
    p.ab.cond.loss = 1;
    p.ba.cond.loss = 1;
    await p.clock.advance(40_000); // a tunnel, a lift, a laptop lid
    p.ab.cond.loss = 0;
    p.ba.cond.loss = 0;
    const back = p.clock.t;
    const before = atB[0].r.bytes;
    await p.clock.run(() => atB[0].r.bytes > before + 100_000 || e.error !== null, 60_000);
    expect(e.error).toBeNull();
    expect(atB[0].r.bytes).toBeGreaterThan(before + 100_000);
    expect(p.clock.t - back).toBeLessThanOrEqual(3_000);
    expect(p.a.stats().idleTimeouts + p.b.stats().idleTimeouts).toBe(0);
  });
});

describe("at rest", () => {
  it("a mux that never had a stream sends nothing and arms no timer", async () => {
    const p = simPair();
    await p.clock.advance(600_000);
    expect(p.ab.sent + p.ba.sent).toBe(0);
    expect(p.a.stats().timerArmed).toBe(false);
    expect(p.b.stats().timerArmed).toBe(false);
  });

  it("after the last stream closes and the last ACK, no packet at all is sent", async () => {
    const got: ReturnType<typeof readAll>[] = [];
    const p = simPair({ loss: 0.05 }, {}, {
      onIncoming: (s) => {
        s.accept();
        const r = readAll(s);
        got.push(r);
        s.on("end", () => s.end("bye"));
      },
    }, 6);
    for (let i = 0; i < 5; i++) {
      const s = p.a.open();
      readAll(s);
      void writeAll(s, randomData(100_000));
    }
    await p.clock.run(() => got.length === 5 && got.every((r) => r.ended));
    await p.clock.run(() => p.a.stats().openStreams === 0 && p.b.stats().openStreams === 0 && !p.a.stats().timerArmed && !p.b.stats().timerArmed, 60_000);
    expect(p.a.stats().openStreams + p.b.stats().openStreams).toBe(0);
    const lastSend = Math.max(p.ab.sendTimes.at(-1)!, p.ba.sendTimes.at(-1)!);
    const sent = p.ab.sent + p.ba.sent;
    await p.clock.advance(600_000); // ten minutes of simulated time
    expect(p.ab.sent + p.ba.sent).toBe(sent);
    expect(p.clock.t - lastSend).toBeGreaterThanOrEqual(600_000);
    expect(p.a.stats().timerArmed).toBe(false);
    expect(p.b.stats().timerArmed).toBe(false);
    expect(p.a.stats().bytesInFlight).toBe(0);
  });
});

describe("close and destroy", () => {
  it("close(reason) resets every stream on both sides and tells the peer; the closed mux stays closed", async () => {
    const atB: Stream[] = [];
    const bErrors: (Error | null)[] = [];
    let closedWith: MuxClosedError | null = null;
    const p = simPair({}, { onClose: (err) => (closedWith = err) }, {
      onIncoming: (s) => {
        s.accept();
        s.resume();
        const i = atB.push(s) - 1;
        bErrors[i] = null;
        s.on("error", (e) => (bErrors[i] = e));
      },
    });
    const mine = [p.a.open(), p.a.open(), p.a.open()];
    const myErrors = mine.map(errorOf);
    for (const s of mine) s.write("data");
    await p.clock.run(() => atB.length === 3 && p.b.stats().streamBytesReceived === 12);
    const a = p.a;
    a.close("node revoked");
    expect(closedWith).toBeInstanceOf(MuxClosedError);
    expect(closedWith!.code).toBe(ERROR_CODE.NO_ERROR);
    await new Promise((r) => setImmediate(r)); // stream errors are emitted on the next tick
    expect(myErrors.every((e) => e.error instanceof MuxClosedError && !(e.error as MuxClosedError).remote)).toBe(true);
    expect(a.stats().timerArmed).toBe(false);
    expect(() => a.open()).toThrow(MuxClosedError);
    await p.clock.run(() => bErrors.every((e) => e !== null), 5_000);
    for (const err of bErrors) {
      expect(err).toBeInstanceOf(MuxClosedError);
      expect((err as MuxClosedError).remote).toBe(true);
      expect((err as MuxClosedError).reason).toBe("node revoked");
    }
    // b knows a is gone: its own opens fail at once instead of hanging.
    expect(() => p.b.open()).toThrow(/closed by peer/);
    const droppedBefore = a.stats().drops[DROP.CLOSED] ?? 0;
    p.a.handleDatagram(new Uint8Array(40));
    expect(a.stats().drops[DROP.CLOSED]).toBe(droppedBefore + 1);
  });

  it("timers are unref'd and cleared on close (real clock)", async () => {
    const sent: Uint8Array[] = [];
    const link: DatagramLink = { send: (p) => (sent.push(Uint8Array.from(p)), true), maxPayload: () => 1400 };
    const mux = new StreamMux(link, { clock: realClock });
    const before = process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const s = mux.open(Buffer.from("x"));
    s.on("error", () => {});
    await new Promise((r) => setImmediate(r));
    expect(sent.length).toBe(1); // the OPEN
    expect(mux.stats().timerArmed).toBe(true); // its probe timeout
    // Unref'd: the armed timer does not keep the process alive.
    expect(process.getActiveResourcesInfo().filter((r) => r === "Timeout").length).toBe(before);
    mux.destroy(ERROR_CODE.INTERNAL, "shutting down");
    expect(mux.stats().timerArmed).toBe(false);
    expect(s.destroyed).toBe(true);
  });
});
