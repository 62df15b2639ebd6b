// Stream-layer errors. Each class carries the wire code it is sent as (RESET, REFUSE, CLOSE) or was
// received with, so the application and the tests tell them apart by class, and the peer by code.
import { ERROR_CODE, errorCodeName } from "./constants.js";

export class TransportError extends Error {
  /** The wire code (ERROR_CODE, or the application's own for refusals and resets). */
  readonly code: number;
  /** True when the peer sent this error; false when this side raised it. */
  readonly remote: boolean;

  constructor(message: string, code: number, remote = false) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.remote = remote;
  }

  get codeName(): string {
    return errorCodeName(this.code);
  }
}

/** A datagram or frame that does not parse. Never escapes handleDatagram: such a datagram is a counted drop. */
export class FrameError extends TransportError {
  constructor(message: string) {
    super(message, ERROR_CODE.FRAME_ENCODING);
  }
}

/** The peer refused our open (policy, no such service, too many streams): its code and reason. */
export class StreamRefusedError extends TransportError {
  constructor(code: number, readonly reason: string) {
    super(`stream refused by peer (${errorCodeName(code)}): ${reason}`, code, true);
  }
}

/** The peer reset the stream; `code` is what it sent (CANCELLED when its application just destroyed it). */
export class StreamResetError extends TransportError {
  constructor(code: number, remote: boolean, message = `stream reset by ${remote ? "peer" : "us"} (${errorCodeName(code)})`) {
    super(message, code, remote);
  }
}

/** A peer sent past the credit it was given. Raised before any of the offending data is buffered. */
export class FlowControlError extends TransportError {
  constructor(message: string, remote = false) {
    super(message, ERROR_CODE.FLOW_CONTROL, remote);
  }
}

/** Data beyond a stream's final size, or a second, different final size. */
export class FinalSizeError extends TransportError {
  constructor(message: string, remote = false) {
    super(message, ERROR_CODE.FINAL_SIZE, remote);
  }
}

/** Frames that parse but break the protocol (a frame for a stream the peer could not have, ...). */
export class ProtocolViolationError extends TransportError {
  constructor(message: string, remote = false) {
    super(message, ERROR_CODE.PROTOCOL_VIOLATION, remote);
  }
}

/** open() beyond maxStreams: the stream is never created. */
export class StreamLimitError extends TransportError {
  constructor(limit: number) {
    super(`too many open streams (limit ${limit})`, ERROR_CODE.STREAM_LIMIT);
  }
}

/** Nothing heard from the peer for the idle timeout: every stream is reset with this. */
export class IdleTimeoutError extends TransportError {
  constructor(idleMs: number) {
    super(`idle_timeout: nothing received from the peer for ${idleMs} ms`, ERROR_CODE.IDLE_TIMEOUT);
  }
}

/** The peer restarted (new epoch): streams of its old incarnation are gone on its side. */
export class PeerRestartedError extends TransportError {
  constructor() {
    super("peer restarted (new epoch): its streams are gone", ERROR_CODE.PEER_RESTARTED, true);
  }
}

/** The mux was closed, by this side (close/destroy) or the peer (CLOSE frame). */
export class MuxClosedError extends TransportError {
  constructor(code: number, readonly reason: string, remote: boolean) {
    super(`stream mux closed by ${remote ? "peer" : "us"} (${errorCodeName(code)})${reason ? `: ${reason}` : ""}`, code, remote);
  }
}
