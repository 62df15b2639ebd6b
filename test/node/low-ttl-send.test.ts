// The hole punch's low TTL must hold for the datagram itself, even behind a bulk transfer's queued datagrams
// (issue 26: a punch queued in libuv left at full TTL after the TTL was restored, and clashed the peer's NAT).
// The socket here models libuv's send queue: a datagram sent while others wait is taken by the kernel, with
// the TTL set at that moment, only when the queue drains.
import { describe, expect, it } from "vitest";
import { LOW_TTL_WAIT_MS, sendLowTtl, type TtlSocket } from "../../src/node/low-ttl-send.js";

class QueueingSocket implements TtlSocket {
  ttl = 64;
  waiting: Uint8Array[] = [];
  /** What the kernel took, with the TTL it went out with. */
  wire: { data: Uint8Array; ttl: number }[] = [];
  getSendQueueCount(): number { return this.waiting.length; }
  setTTL(ttl: number): number { this.ttl = ttl; return ttl; }
  send(msg: Uint8Array): void {
    if (this.waiting.length) this.waiting.push(msg);
    else this.wire.push({ data: msg, ttl: this.ttl });
  }
  drain(): void { for (const data of this.waiting.splice(0)) this.wire.push({ data, ttl: this.ttl }); }
}

const PUNCH = Uint8Array.of(0x1f);

function punch(socket: QueueingSocket, open = () => true): Promise<{ sent: boolean; why?: string }> {
  return new Promise((done) => sendLowTtl({ socket, data: PUNCH, port: 1, host: "198.18.0.2", ttl: 3, restoreTtl: 64,
    open, done: (sent, why) => done({ sent, why }) }));
}

describe("the low-TTL punch", () => {
  it("with an empty queue it leaves at once at the low TTL, and the TTL is restored", async () => {
    const s = new QueueingSocket();
    expect(await punch(s)).toEqual({ sent: true });
    expect(s.wire).toEqual([{ data: PUNCH, ttl: 3 }]);
    expect(s.ttl).toBe(64);
  });

  it("behind queued datagrams it waits for the queue to drain, then leaves at the low TTL (not at full TTL)", async () => {
    const s = new QueueingSocket();
    s.waiting.push(Uint8Array.of(1), Uint8Array.of(2));
    const p = punch(s);
    await new Promise((r) => setTimeout(r, 10));
    expect(s.wire).toEqual([]); // nothing left yet: sending now would have queued the punch behind them
    s.drain();
    expect(await p).toEqual({ sent: true });
    expect(s.wire.map((w) => w.ttl)).toEqual([64, 64, 3]);
    expect(s.ttl).toBe(64);
  });

  it("a queue that stays busy past the wait: no punch at all rather than one at full TTL", async () => {
    const s = new QueueingSocket();
    s.waiting.push(Uint8Array.of(1));
    const t0 = Date.now();
    const r = await punch(s);
    expect(r.sent).toBe(false);
    expect(r.why).toMatch(/send queue busy/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(LOW_TTL_WAIT_MS - 5);
    s.drain();
    expect(s.wire.filter((w) => w.data === PUNCH)).toEqual([]);
  });

  it("a socket closed during the wait sends nothing", async () => {
    const s = new QueueingSocket();
    s.waiting.push(Uint8Array.of(1));
    let open = true;
    const p = punch(s, () => open);
    open = false;
    expect(await p).toEqual({ sent: false, why: "socket closed" });
  });
});
