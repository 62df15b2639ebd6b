// Pings over an encrypted session: each ping carries an 8-byte id (our PID and a sequence number, so two
// processes sharing a peer never take each other's pongs) and the pong echoes it. The pinger owns the waiters;
// the device sends and hands it every pong.
import type { SendResult } from "./device-types.js";
import type { Peer } from "./peer.js";

interface PingWaiter { sentAt: number; resolve: (rttMs: number) => void; timer: NodeJS.Timeout }

export interface PingerDeps {
  /** Sends the ping's payload to the peer; "full" when its send queue cannot take it. */
  send(peer: Peer, payload: Buffer): SendResult;
  /** Counts a dropped datagram by reason (the device's drop counters). */
  count(reason: string): void;
}

export class Pinger {
  private readonly waiters = new Map<string, PingWaiter>();
  private seq = 0;

  constructor(private readonly deps: PingerDeps) {}

  /** Round trip to the peer in milliseconds; rejects on timeout or a full send queue, naming the peer's state. */
  ping(peer: Peer, timeoutMs: number): Promise<number> {
    const id = Buffer.allocUnsafe(8);
    id.writeUInt32BE(process.pid & 0xffffffff, 0);
    id.writeUInt32BE(++this.seq >>> 0, 4);
    const key = `${peer.name}/${id.toString("hex")}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        reject(new Error(`no pong from ${peer.name} within ${timeoutMs} ms (state: ${peer.describeState()})`));
      }, timeoutMs);
      this.waiters.set(key, { sentAt: performance.now(), resolve, timer });
      if (this.deps.send(peer, id) === "full") {
        clearTimeout(timer);
        this.waiters.delete(key);
        reject(new Error(`cannot ping ${peer.name}: its send queue is full (state: ${peer.describeState()})`));
      }
    });
  }

  /** A pong from the peer: resolves its ping and records the round trip on the peer. */
  onPong(peer: Peer, payload: Uint8Array): void {
    const key = `${peer.name}/${Buffer.from(payload).toString("hex")}`;
    const w = this.waiters.get(key);
    if (!w) return this.deps.count("unexpected_pong");
    this.waiters.delete(key);
    clearTimeout(w.timer);
    const rtt = performance.now() - w.sentAt;
    peer.stats.lastRttMs = rtt;
    w.resolve(rtt);
  }

  /** Drops every waiting ping (the device stops); their promises stay pending, as before. */
  clear(): void {
    for (const w of this.waiters.values()) clearTimeout(w.timer);
    this.waiters.clear();
  }
}
