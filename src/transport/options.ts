// Every tunable of the stream layer with its default, in one object validated when a mux is created.
import type { Clock } from "./clock.js";
import type { CongestionName } from "./congestion.js";
import { INITIAL_MUX_CREDIT, INITIAL_STREAM_CREDIT } from "./constants.js";
import type { MuxClosedError } from "./errors.js";
import type { Stream } from "./stream.js";

export interface TransportConfig {
  /** Concurrent streams per direction: our opens past it throw StreamLimitError, the peer's are refused. */
  maxStreams: number;
  /** Per-stream receive window to start from (auto-tuned up to maxStreamReceiveWindow). */
  streamReceiveWindow: number;
  maxStreamReceiveWindow: number;
  /** Mux-wide receive window (all streams together), and its maximum. */
  muxReceiveWindow: number;
  maxMuxReceiveWindow: number;
  /**
   * A stream's write() returns false while it holds more unacknowledged bytes than this. It must cover the
   * window plus what waits behind a loss (about twice the path's bandwidth-delay product) or it, not the
   * path, limits a transfer: 4 MiB fills 100 Mbit/s at 150 ms or 1 Gbit/s at 15 ms.
   */
  streamSendBuffer: number;
  /** node:stream buffers on top (the reader's and writer's own queues). */
  readableHighWaterMark: number;
  writableHighWaterMark: number;
  /** Acknowledge every this many ack-eliciting packets (otherwise after MAX_ACK_DELAY_MS). */
  ackEveryPackets: number;
  /** RTT assumed before the first sample (RFC 9002: 333 ms). */
  initialRttMs: number;
  /** With streams open, send a PING when nothing was sent for this long. */
  keepaliveMs: number;
  /** With streams open or packets in flight, nothing received for this long: the peer is gone. */
  idleTimeoutMs: number;
  /** Congestion controller: "cubic" (default; measured better under random loss, docs/transport.md) or "newreno". */
  congestion: CongestionName;
  /** Pace packets over the RTT instead of sending a window at once. */
  pacing: boolean;
  /** Refusals waiting to be sent; further refusals are dropped (counted) until these drain. */
  maxRefusalBacklog: number;
  /** How far past the lowest unseen peer stream number an OPEN may be (a peer opens in order). */
  streamIdWindow: number;
}

export const DEFAULT_TRANSPORT_CONFIG: Readonly<TransportConfig> = Object.freeze({
  maxStreams: 1024,
  streamReceiveWindow: 256 * 1024,
  maxStreamReceiveWindow: 16 * 1024 * 1024,
  muxReceiveWindow: 1024 * 1024,
  maxMuxReceiveWindow: 24 * 1024 * 1024,
  streamSendBuffer: 4 * 1024 * 1024,
  readableHighWaterMark: 64 * 1024,
  writableHighWaterMark: 64 * 1024,
  ackEveryPackets: 2,
  initialRttMs: 333,
  keepaliveMs: 15_000,
  idleTimeoutMs: 60_000,
  congestion: "cubic",
  pacing: true,
  maxRefusalBacklog: 1024,
  streamIdWindow: 4096,
});

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface MuxOptions extends Partial<TransportConfig> {
  /** The peer opened a stream: call stream.accept() or stream.refuse(code, reason). Without it every open is refused. */
  onIncoming?: (stream: Stream, request: Uint8Array) => void;
  /** The mux closed for good (close/destroy by this side, or a mux-wide violation by the peer). */
  onClose?: (err: MuxClosedError) => void;
  clock?: Clock;
  log?: Logger;
  /** Our epoch (tests); random otherwise. */
  epoch?: number;
}

/** Defaults filled in and every value checked; throws RangeError naming the bad option. */
export function resolveConfig(opts: Partial<TransportConfig> = {}): TransportConfig {
  const c: TransportConfig = { ...DEFAULT_TRANSPORT_CONFIG };
  for (const key of Object.keys(DEFAULT_TRANSPORT_CONFIG) as (keyof TransportConfig)[]) {
    if (opts[key] !== undefined) (c as unknown as Record<string, unknown>)[key] = opts[key];
  }
  const int = (k: keyof TransportConfig, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const v = c[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      throw new RangeError(`transport option ${k} must be an integer in [${min}, ${max}], got ${String(v)}`);
    }
  };
  int("maxStreams", 1, 1 << 20);
  int("streamReceiveWindow", INITIAL_STREAM_CREDIT);
  int("maxStreamReceiveWindow", c.streamReceiveWindow);
  int("muxReceiveWindow", INITIAL_MUX_CREDIT);
  int("maxMuxReceiveWindow", c.muxReceiveWindow);
  int("streamSendBuffer", 1);
  int("readableHighWaterMark", 1);
  int("writableHighWaterMark", 1);
  int("ackEveryPackets", 1, 1000);
  int("initialRttMs", 1, 60_000);
  int("keepaliveMs", 1);
  int("idleTimeoutMs", c.keepaliveMs + 1);
  int("maxRefusalBacklog", 1);
  int("streamIdWindow", c.maxStreams);
  if (c.congestion !== "newreno" && c.congestion !== "cubic") {
    throw new RangeError(`transport option congestion must be "newreno" or "cubic", got ${String(c.congestion)}`);
  }
  if (typeof c.pacing !== "boolean") throw new RangeError("transport option pacing must be a boolean");
  return c;
}
