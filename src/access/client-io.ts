// Reading a client's handshake and closing it politely, shared by the SOCKS5 and HTTP front ends.
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { splice, type SpliceResult } from "./splice.js";

/**
 * Handshake bytes, up to `max`: they are copied into one buffer that grows by doubling (so a client
 * sending one byte at a time costs linear work), and whatever of the last chunk does not fit is kept
 * aside as `tail`: it is either the start of the payload (a body, early TLS) or proof of an oversized
 * handshake, which only the parser can tell.
 */
export class HandshakeBuffer {
  private buf: Buffer;
  private len = 0;
  tail: Buffer | null = null;

  constructor(private readonly max: number) {
    this.buf = Buffer.allocUnsafe(Math.min(512, max));
  }

  get length(): number { return this.len; }
  /** True when more bytes arrived than fit. */
  get overflowed(): boolean { return this.tail !== null; }

  append(chunk: Buffer): void {
    if (this.tail) {
      this.tail = Buffer.concat([this.tail, chunk]);
      return;
    }
    const room = this.max - this.len;
    const take = Math.min(room, chunk.length);
    if (this.len + take > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.max, Math.max(this.buf.length * 2, this.len + take)));
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    chunk.copy(this.buf, this.len, 0, take);
    this.len += take;
    if (take < chunk.length) this.tail = chunk.subarray(take);
  }

  view(): Buffer {
    return this.buf.subarray(0, this.len);
  }

  /** Drops the first n bytes (a handshake step that has been handled). */
  consume(n: number): void {
    this.buf.copy(this.buf, 0, n, this.len);
    this.len -= n;
  }

  /** Everything after the first n bytes: what the client sent beyond its handshake. */
  rest(n: number): Buffer {
    const rest = Buffer.from(this.buf.subarray(n, this.len));
    return this.tail ? Buffer.concat([rest, this.tail]) : rest;
  }
}

/** How long a refused client may keep its side open after our last word before it is cut off. */
const LINGER_MS = 2_000;

/**
 * Sends a last message and closes. The socket keeps reading (and discarding) until the client closes
 * or LINGER_MS passes: closing with unread bytes would make the kernel send a reset, which can
 * destroy the reply before the client reads it.
 */
export function closeWith(socket: Socket, last?: Buffer | string): void {
  if (socket.destroyed) return;
  socket.removeAllListeners("data");
  socket.on("data", () => undefined);
  socket.once("end", () => socket.destroy());
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once("close", () => clearTimeout(timer));
  socket.resume();
  if (last === undefined) socket.end();
  else socket.end(last);
}

/** After a successful handshake: what the client already sent goes first, then both ways are joined. */
export function startTunnel(client: Socket, stream: Duplex, early: Buffer, onDone?: (r: SpliceResult) => void): void {
  client.removeAllListeners("data");
  client.pause();
  if (early.length) client.unshift(early);
  splice(client, stream, onDone);
}
