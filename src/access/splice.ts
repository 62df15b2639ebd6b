// Joins two byte streams both ways with back-pressure (pipe: a slow reader pauses the writer). Half-close
// travels through: when one side ends, the other side's writable end is closed and the reverse direction
// keeps flowing. Any error, or a side that closes before both directions finished, destroys both, so
// neither is left half-alive. (pipe() rather than stream.pipeline(): a pipeline allocates an abort
// controller and error objects per direction, a measurable cost at a thousand flows a second.)
import type { Duplex } from "node:stream";

export interface SpliceResult {
  /** Bytes that went from `a` to `b`, and back. */
  aToB: number;
  bToA: number;
  /** The first error, if any direction failed (a reset, a premature close, a write after destroy). */
  error?: Error;
}

export function splice(a: Duplex, b: Duplex, onDone?: (result: SpliceResult) => void): void {
  const result: SpliceResult = { aToB: 0, bToA: 0 };
  let directionsDone = 0;
  let closed = 0;
  const fail = (err: Error) => {
    if (!result.error) result.error = err;
    a.destroy();
    b.destroy();
  };
  // A direction is done when its source ended and the destination took every byte (its "finish").
  const directionDone = () => {
    // Both directions ended cleanly: release the sockets rather than wait for each side's own close.
    if (++directionsDone === 2) { a.destroy(); b.destroy(); }
  };
  const onClose = (side: Duplex) => () => {
    if (directionsDone < 2 && !result.error) fail(new Error(`${side === a ? "one side" : "the other side"} closed before both directions finished`));
    if (++closed === 2) onDone?.(result);
  };
  a.on("error", fail);
  b.on("error", fail);
  b.on("finish", directionDone);
  a.on("finish", directionDone);
  a.on("close", onClose(a));
  b.on("close", onClose(b));
  a.pipe(b);
  b.pipe(a);
  // Counting listeners are added after pipe's own, and never resume a paused stream by themselves.
  a.on("data", (chunk: Buffer) => { result.aToB += chunk.length; });
  b.on("data", (chunk: Buffer) => { result.bToA += chunk.length; });
}
