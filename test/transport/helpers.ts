// Shared helpers for the stream-layer tests: data, hashing, writing with back-pressure, reading to the end.
import { createHash, randomBytes } from "node:crypto";
import type { Stream } from "../../src/transport/stream.js";

export function sha256(data: Uint8Array | Uint8Array[]): string {
  const h = createHash("sha256");
  for (const d of Array.isArray(data) ? data : [data]) h.update(d);
  return h.digest("hex");
}

export function randomData(n: number): Buffer {
  return randomBytes(n);
}

/** Writes data in chunks, waiting for 'drain' whenever write() says so, then ends. */
export async function writeAll(s: Stream, data: Uint8Array, chunk = 64 * 1024, end = true): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) {
    if (s.destroyed) return;
    if (!s.write(data.subarray(off, off + chunk))) await drained(s);
  }
  if (end) s.end();
}

/** Resolves on 'drain' or 'close', whichever comes first, leaving no listener behind. */
export function drained(s: Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      s.off("drain", done);
      s.off("close", done);
      resolve();
    };
    s.on("drain", done);
    s.on("close", done);
  });
}

export interface Reader {
  chunks: Buffer[];
  bytes: number;
  ended: boolean;
  error: Error | null;
  hash(): string;
}

/** Reads a stream to its end (or error), keeping everything. */
export function readAll(s: Stream): Reader {
  const r: Reader = {
    chunks: [], bytes: 0, ended: false, error: null,
    hash: () => sha256(r.chunks),
  };
  s.on("data", (c: Buffer) => {
    r.chunks.push(c);
    r.bytes += c.length;
  });
  s.on("end", () => (r.ended = true));
  s.on("error", (e) => (r.error = e));
  return r;
}

/** Collects a stream's error without letting it go unhandled. */
export function errorOf(s: Stream): { error: Error | null } {
  const box = { error: null as Error | null };
  s.on("error", (e) => (box.error = e));
  return box;
}
