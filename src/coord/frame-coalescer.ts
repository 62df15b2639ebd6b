// Map-stream writes, coalesced. A frame to a stream that has been quiet leaves at once; frames that follow
// within the window wait for it to close and leave together in one write. Every TLS write costs the server
// ~20 us of CPU and leaves buffers behind in the connection: when 10,000 nodes connect, each one's 49 team
// mates are told it is online, and a stream that took those 49 patches in 49 writes held ~14 KiB more at rest
// than one that took a single write (docs/performance.md). Frames are length-prefixed, so a write of several
// is read as they were. The map hub stays synchronous (it decides what to send); this is how it is written.
import type { FrameSink } from "./map-hub.js";
import { frameBuffer } from "../wire/coord/map.js";

/** Where a coalescing sink writes: the map stream's HTTP response. */
export interface FrameOutput {
  write(chunk: Buffer): boolean;
  readonly writableLength: number;
  destroy(err?: Error): void;
}

/** One timer for every stream: the streams with frames waiting are flushed together when the window closes. */
export class FrameCoalescer {
  private readonly waiting = new Set<CoalescingSink>();
  private timer?: NodeJS.Timeout;

  constructor(readonly windowMs: number) {}

  sink(out: FrameOutput): CoalescingSink {
    return new CoalescingSink(out, this);
  }

  /** A sink wrote or holds frames: it is in a window until the next flush. */
  enter(s: CoalescingSink): void {
    this.waiting.add(s);
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.windowMs);
      this.timer.unref();
    }
  }

  leave(s: CoalescingSink): void {
    this.waiting.delete(s);
  }

  /** Closes the window: sinks with frames write them and stay in a new window; the others leave it. */
  flush(): void {
    this.timer = undefined;
    const sinks = [...this.waiting];
    this.waiting.clear();
    for (const s of sinks) if (s.writePending()) this.enter(s);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.waiting.clear();
  }
}

export class CoalescingSink implements FrameSink {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private inWindow = false;
  private closed = false;

  constructor(private readonly out: FrameOutput, private readonly coalescer: FrameCoalescer) {}

  write(frame: Buffer): boolean {
    if (this.closed) return false;
    if (this.inWindow) {
      this.pending.push(frame);
      this.pendingBytes += frame.length;
      return true;
    }
    this.inWindow = true;
    this.coalescer.enter(this);
    return this.out.write(frame);
  }

  /** Bytes not yet sent: the hub's backlog limit counts the waiting frames too. */
  get writableLength(): number {
    return this.out.writableLength + this.pendingBytes;
  }

  destroy(err?: Error): void {
    this.discard();
    this.out.destroy(err);
  }

  /** The stream closed: waiting frames are dropped (the node resumes from its last seq or gets a full map). */
  discard(): void {
    this.closed = true;
    this.pending = [];
    this.pendingBytes = 0;
    this.coalescer.leave(this);
  }

  /** Called by the coalescer when the window closes. Whether it wrote anything (and so opens another window). */
  writePending(): boolean {
    if (this.closed || this.pending.length === 0) {
      this.inWindow = false;
      return false;
    }
    const chunk = this.pending.length === 1 ? this.pending[0] : concatFrames(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    this.out.write(chunk);
    return true;
  }
}

/** Buffer.concat, but off the Buffer pool as every frame is (frameBuffer in src/wire/coord/map.ts says why). */
function concatFrames(frames: Buffer[], bytes: number): Buffer {
  const out = frameBuffer(bytes);
  let at = 0;
  for (const f of frames) at += f.copy(out, at);
  return out;
}
