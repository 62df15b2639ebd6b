// One UDP conversation carried on one mesh flow: datagrams from the local side are framed onto the
// stream, datagrams decoded from the stream are handed to `deliver` (a UDP send). UDP may lose
// datagrams, so where a TCP splice would wait this drops and says why: while the flow is still being
// dialled (beyond a small backlog) and when the stream already holds UDP_MAX_UNSENT unsent bytes.
// Towards the UDP socket it applies back-pressure instead: too many sends awaiting the kernel pause the
// stream. The flow closes itself after `idleMs` without a datagram either way.
import type { Duplex } from "node:stream";
import { DatagramDecoder, encodeDatagram, FramingError } from "./datagram-framing.js";
import { MAX_DATAGRAM, UDP_IDLE_MS, UDP_MAX_INFLIGHT_SENDS, UDP_MAX_UNSENT, UDP_PENDING_DATAGRAMS } from "./limits.js";
import { dialFailure, type DialErrorCode } from "./types.js";

export type DatagramDrop = "dialling_backlog" | "stream_backlog" | "unframeable" | "closed";

export interface FlowClose {
  /** Why the flow ended: idle, the peer closed, a framing error, a dial failure, the owner closed it. */
  reason: string;
  /** Set when the dial failed. */
  dialCode?: DialErrorCode | "failed";
  framingError?: boolean;
  idle?: boolean;
}

export interface DatagramFlowOptions {
  /** The mesh flow, or a dial still in progress. */
  stream: Duplex | Promise<Duplex>;
  /** A datagram from the mesh: send it, calling `done` once the socket has taken it. */
  deliver: (payload: Buffer, done: () => void) => void;
  onClose?: (why: FlowClose) => void;
  onDrop?: (why: DatagramDrop) => void;
  idleMs?: number;
  now?: () => number;
}

export class DatagramFlow {
  private stream: Duplex | null = null;
  private state: "dialling" | "open" | "closed" = "dialling";
  private readonly backlog: Buffer[] = [];
  private readonly decoder = new DatagramDecoder();
  private inflight = 0;
  private paused = false;
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly idleMs: number;
  private readonly now: () => number;
  private lastActive: number;

  constructor(private readonly opts: DatagramFlowOptions) {
    this.idleMs = opts.idleMs ?? UDP_IDLE_MS;
    this.now = opts.now ?? Date.now;
    this.lastActive = this.now();
    this.armIdle(this.idleMs);
    if (isPromise(opts.stream)) {
      opts.stream.then((s) => this.attach(s), (err) => {
        const f = dialFailure(err);
        this.close({ reason: f.reason, dialCode: f.code });
      });
    } else {
      this.attach(opts.stream);
    }
  }

  get isOpen(): boolean { return this.state === "open"; }
  get isClosed(): boolean { return this.state === "closed"; }

  /** Frames one datagram onto the flow; false when it was dropped (onDrop says why). */
  send(payload: Buffer): boolean {
    if (this.state === "closed") return this.drop("closed");
    if (payload.length === 0 || payload.length > MAX_DATAGRAM) return this.drop("unframeable");
    this.lastActive = this.now();
    if (this.state === "dialling") {
      if (this.backlog.length >= UDP_PENDING_DATAGRAMS) return this.drop("dialling_backlog");
      this.backlog.push(Buffer.from(payload));
      return true;
    }
    const stream = this.stream!;
    if (stream.writableLength + payload.length > UDP_MAX_UNSENT) return this.drop("stream_backlog");
    stream.write(encodeDatagram(payload));
    return true;
  }

  close(why: FlowClose = { reason: "closed locally" }): void {
    if (this.state === "closed") return;
    this.state = "closed";
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.backlog.length = 0;
    this.stream?.destroy();
    this.opts.onClose?.(why);
  }

  private attach(stream: Duplex): void {
    if (this.state === "closed") {
      stream.destroy();
      return;
    }
    this.stream = stream;
    this.state = "open";
    stream.on("data", (chunk: Buffer) => this.handleData(chunk));
    stream.on("error", (err) => this.close({ reason: `flow error: ${err.message}` }));
    stream.on("end", () => this.close({ reason: "the peer closed the flow" }));
    stream.on("close", () => this.close({ reason: "the flow closed" }));
    for (const p of this.backlog.splice(0)) this.send(p);
  }

  private handleData(chunk: Buffer): void {
    let datagrams: Buffer[];
    try {
      datagrams = this.decoder.push(chunk);
    } catch (err) {
      if (!(err instanceof FramingError)) throw err;
      this.close({ reason: `bad datagram framing from the peer: ${err.message}`, framingError: true });
      return;
    }
    if (datagrams.length) this.lastActive = this.now();
    for (const d of datagrams) {
      if (this.state === "closed") return;
      this.inflight++;
      if (this.inflight >= UDP_MAX_INFLIGHT_SENDS && !this.paused) {
        this.paused = true;
        this.stream!.pause();
      }
      this.opts.deliver(d, () => this.sent());
    }
  }

  private sent(): void {
    this.inflight--;
    if (this.paused && this.inflight <= UDP_MAX_INFLIGHT_SENDS / 2 && this.state === "open") {
      this.paused = false;
      this.stream!.resume();
    }
  }

  private drop(why: DatagramDrop): false {
    this.opts.onDrop?.(why);
    return false;
  }

  // One timer per flow, re-armed only when it fires: no timer work per datagram.
  private armIdle(ms: number): void {
    this.idleTimer = setTimeout(() => {
      const idle = this.now() - this.lastActive;
      if (idle >= this.idleMs) this.close({ reason: `idle for ${(idle / 1000).toFixed(1)} s`, idle: true });
      else this.armIdle(this.idleMs - idle);
    }, ms);
    this.idleTimer.unref();
  }
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as Promise<T>)?.then === "function";
}
