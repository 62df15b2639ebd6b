// A UDP conversation on a mesh flow: it drops (and says why) where UDP may, and applies back-pressure
// towards the UDP socket where it can.
import { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
import { DatagramDecoder, encodeDatagram } from "../../src/access/datagram-framing.js";
import { MAX_DATAGRAM, UDP_MAX_INFLIGHT_SENDS, UDP_PENDING_DATAGRAMS } from "../../src/access/limits.js";
import { DialError } from "../../src/access/types.js";
import { DatagramFlow, type DatagramDrop, type FlowClose } from "../../src/access/udp-flow.js";
import { streamPair } from "./fake-mesh.js";

/** A mesh stream whose far side never reads: every write stays unsent. */
function stuckStream(): Duplex {
  return new Duplex({ read() { /* nothing arrives */ }, write(_c, _e, _cb) { /* never done */ } });
}

describe("DatagramFlow", () => {
  it("holds a small backlog while dialling, drops beyond it, and sends the backlog in order once open", async () => {
    const drops: DatagramDrop[] = [];
    const [near, far] = streamPair();
    let open!: (d: Duplex) => void;
    const flow = new DatagramFlow({ stream: new Promise<Duplex>((r) => { open = r; }), deliver: (_p, done) => done(), onDrop: (d) => drops.push(d) });
    for (let i = 0; i < UDP_PENDING_DATAGRAMS + 3; i++) flow.send(Buffer.from(`d${i}`));
    expect(drops).toEqual(["dialling_backlog", "dialling_backlog", "dialling_backlog"]);
    const got: string[] = [];
    const dec = new DatagramDecoder();
    far.on("data", (c: Buffer) => got.push(...dec.push(c).map((b) => b.toString())));
    open(near);
    await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual(Array.from({ length: UDP_PENDING_DATAGRAMS }, (_, i) => `d${i}`));
    flow.close();
  });

  it("drops instead of buffering once the stream holds 256 KiB unsent, and refuses unframeable datagrams", () => {
    const drops: DatagramDrop[] = [];
    const flow = new DatagramFlow({ stream: stuckStream(), deliver: (_p, done) => done(), onDrop: (d) => drops.push(d) });
    const big = Buffer.alloc(MAX_DATAGRAM, 1);
    const accepted = Array.from({ length: 10 }, () => flow.send(big)).filter(Boolean).length;
    expect(accepted).toBe(4); // 4 x 65,509 bytes fit in 256 KiB, a fifth does not
    expect(drops.filter((d) => d === "stream_backlog")).toHaveLength(6);
    expect(flow.send(Buffer.alloc(0))).toBe(false);
    expect(flow.send(Buffer.alloc(MAX_DATAGRAM + 1))).toBe(false);
    expect(drops.slice(-2)).toEqual(["unframeable", "unframeable"]);
    flow.close();
    expect(flow.send(Buffer.from("x"))).toBe(false);
    expect(drops.at(-1)).toBe("closed");
  });

  it("pauses the stream while too many UDP sends await the kernel, and resumes as they complete", async () => {
    const [near, far] = streamPair();
    const pending: (() => void)[] = [];
    const flow = new DatagramFlow({ stream: near, deliver: (_p, done) => pending.push(done) });
    for (let i = 0; i < 200; i++) far.write(encodeDatagram(Buffer.from(`m${i}`)));
    await new Promise((r) => setTimeout(r, 20));
    // Paused at the limit: only what the chunk that crossed it carried got delivered, not all 200.
    expect(pending.length).toBeGreaterThanOrEqual(UDP_MAX_INFLIGHT_SENDS);
    expect(pending.length).toBeLessThan(200);
    expect(near.isPaused()).toBe(true);
    for (const done of pending.splice(0)) done();
    await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 10 && pending.length; i++) {
      for (const done of pending.splice(0)) done();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(near.isPaused()).toBe(false);
    flow.close();
  });

  it("reports a refused dial with its code, and closes after idleMs", async () => {
    const closes: FlowClose[] = [];
    new DatagramFlow({ stream: Promise.reject(new DialError("denied", "rule 3 says no")), deliver: (_p, d) => d(), onClose: (c) => closes.push(c) });
    await new Promise((r) => setTimeout(r, 10));
    expect(closes).toEqual([{ reason: "rule 3 says no", dialCode: "denied" }]);
    const [near] = streamPair();
    new DatagramFlow({ stream: near, idleMs: 150, deliver: (_p, d) => d(), onClose: (c) => closes.push(c) });
    await new Promise((r) => setTimeout(r, 400));
    expect(closes[1]).toMatchObject({ idle: true });
    expect(near.destroyed).toBe(true);
  });
});
