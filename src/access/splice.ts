// Joins two byte streams both ways with back-pressure (stream.pipeline: a slow reader pauses the
// writer). Half-close travels through: when one side ends, the other side's writable end is closed and
// the reverse direction keeps flowing. Any error destroys both sides, so neither is left half-alive.
import { pipeline, type Duplex } from "node:stream";

export interface SpliceResult {
  /** Bytes that went from `a` to `b`, and back. */
  aToB: number;
  bToA: number;
  /** The first error, if any direction failed (a reset, a premature close, a write after destroy). */
  error?: Error;
}

export function splice(a: Duplex, b: Duplex, onDone?: (result: SpliceResult) => void): void {
  const result: SpliceResult = { aToB: 0, bToA: 0 };
  let pending = 2;
  let finished = false;
  const settle = (err: Error | null | undefined) => {
    if (err && !result.error) {
      result.error = err;
      a.destroy();
      b.destroy();
    }
    if (--pending > 0 || finished) return;
    finished = true;
    // Both directions ended cleanly: release the sockets rather than wait for each side's own close.
    a.destroy();
    b.destroy();
    onDone?.(result);
  };
  pipeline(a, b, settle);
  pipeline(b, a, settle);
  // Counting listeners are added after pipeline's own, and never resume a paused stream by themselves.
  a.on("data", (chunk: Buffer) => { result.aToB += chunk.length; });
  b.on("data", (chunk: Buffer) => { result.bToA += chunk.length; });
}
