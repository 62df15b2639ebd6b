// One datagram with a low TTL (the hole punch, docs/nat.md). The TTL is a socket option the kernel reads when it
// takes the datagram: sent while libuv still queues earlier datagrams (a bulk transfer on the same socket), it
// would be taken after the TTL is restored and leave at full TTL, reaching the peer's NAT and clashing with the
// peer's own mapping, the very thing the low TTL avoids. So it waits for an empty queue, and gives up rather
// than send at full TTL.

/** What a low-TTL send needs of a socket (node:dgram's Socket has it all). */
export interface TtlSocket {
  getSendQueueCount(): number;
  setTTL(ttl: number): number;
  send(msg: Uint8Array, port: number, host: string): void;
}

/** How long a punch waits for the send queue to empty, and how often it looks. */
export const LOW_TTL_WAIT_MS = 50;
const LOOK_EVERY_MS = 1;

export interface LowTtlSend {
  socket: TtlSocket;
  data: Uint8Array;
  port: number;
  host: string;
  ttl: number;
  /** The socket's TTL to put back. */
  restoreTtl: number;
  /** Called once: sent at the low TTL, or not sent (the queue never emptied, or the socket failed). */
  done(sent: boolean, why?: string): void;
  /** Whether the socket is still open (a wait may outlive it). */
  open(): boolean;
}

export function sendLowTtl(s: LowTtlSend, waitedMs = 0): void {
  if (!s.open()) return s.done(false, "socket closed");
  if (s.socket.getSendQueueCount() > 0) {
    if (waitedMs >= LOW_TTL_WAIT_MS) return s.done(false, `send queue busy for ${LOW_TTL_WAIT_MS} ms`);
    setTimeout(() => sendLowTtl(s, waitedMs + LOOK_EVERY_MS), LOOK_EVERY_MS);
    return;
  }
  try {
    s.socket.setTTL(s.ttl);
    // With an empty queue libuv hands the datagram to the kernel within this call (the host is a literal).
    s.socket.send(s.data, s.port, s.host);
    s.done(true);
  } catch (err) {
    s.done(false, (err as Error).message);
  } finally {
    try { s.socket.setTTL(s.restoreTtl); } catch { /* closed */ }
  }
}
