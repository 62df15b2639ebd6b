// The generic stream lifecycle, as the application sees it through node:stream: open, half-closed
// (either way), closed, reset. Each transition method is idempotent, so the protocol code (stream.ts)
// calls them whenever something happens without guarding; the Duplex plumbing (_write, _final, _read,
// _destroy) lives here and turns into four protocol hooks. Back-pressure: a write's callback waits while
// the protocol says its send buffer is full (write() then returns false), and runs on onWriteDrained().
import { Duplex } from "node:stream";

export type LifecycleStatus = "open" | "half-closed-local" | "half-closed-remote" | "closed" | "reset";

export interface BaseStreamOptions {
  readableHighWaterMark: number;
  writableHighWaterMark: number;
}

export abstract class BaseStream extends Duplex {
  /** We ended our sending side (FIN queued). */
  private localEnded = false;
  /** The peer's FIN was delivered (end of the readable side). */
  private remoteEnded = false;
  /** Reset, by either side: the error it carried. */
  private resetError: Error | null = null;
  /** The protocol settled the stream (reset, refused or finished): _destroy must not send a RESET of its own. */
  private settled = false;
  private pendingWrite: ((err?: Error | null) => void) | null = null;

  constructor(opts: BaseStreamOptions) {
    super({
      allowHalfOpen: true,
      readableHighWaterMark: opts.readableHighWaterMark,
      writableHighWaterMark: opts.writableHighWaterMark,
      decodeStrings: true,
    });
  }

  get status(): LifecycleStatus {
    if (this.resetError) return "reset";
    if (this.localEnded && this.remoteEnded) return "closed";
    if (this.localEnded) return "half-closed-local";
    if (this.remoteEnded) return "half-closed-remote";
    return "open";
  }

  // ------------------------------------------------------------ protocol hooks (stream.ts)

  /** Queues application data; returns false when the send buffer is over its high-water mark. */
  protected abstract sendData(chunk: Buffer): boolean;
  /** The application ended its side: queue FIN. */
  protected abstract sendFin(): void;
  /** The application destroyed the stream (err null: without an error); `graceful` when both sides were done. */
  protected abstract sendReset(err: Error | null, graceful: boolean): void;
  /** The readable side has room: deliver what is buffered. */
  protected abstract readRequested(): void;

  // ------------------------------------------------------------ transitions (idempotent)

  /** The peer's FIN and every byte before it were delivered. */
  protected onRemoteEnd(): void {
    if (this.remoteEnded || this.resetError) return;
    this.remoteEnded = true;
    this.push(null);
  }

  /** The send buffer fell below its high-water mark: let the next write through. */
  protected onWriteDrained(): void {
    const cb = this.pendingWrite;
    if (!cb) return;
    this.pendingWrite = null;
    cb();
  }

  /** The stream was reset by the peer or the mux (idle timeout, restart, close): surface err once. */
  protected onReset(err: Error): void {
    if (this.resetError) return;
    this.resetError = err;
    this.settled = true;
    const cb = this.pendingWrite;
    this.pendingWrite = null;
    if (cb) cb(err);
    this.destroy(err);
  }

  /** The protocol finished the stream cleanly on both sides: a later destroy() has nothing to send. */
  protected onClosed(): void {
    this.settled = true;
  }

  /** Delivers a chunk to the reader; false when the reader's buffer is full (stop until _read). */
  protected deliver(chunk: Buffer): boolean {
    if (this.destroyed) return false;
    return this.push(chunk);
  }

  // ------------------------------------------------------------ node:stream plumbing

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.sendData(chunk)) cb();
    else this.pendingWrite = cb;
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.localEnded = true;
    this.sendFin();
    cb();
  }

  override _read(): void {
    this.readRequested();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (!this.settled) {
      const graceful = err === null && this.localEnded && this.remoteEnded;
      if (!graceful && !this.resetError) this.resetError = err ?? new Error("stream destroyed");
      this.sendReset(err, graceful);
    }
    const pending = this.pendingWrite;
    this.pendingWrite = null;
    if (pending) pending(err ?? new Error("stream destroyed"));
    cb(err);
  }
}
