// src/transport: reliable, ordered, flow-controlled byte streams multiplexed over one peer's encrypted
// datagram session (docs/transport.md).
export type { DatagramLink } from "./link.js";
export { StreamMux } from "./mux.js";
export type { MuxStats } from "./stats.js";
export { Stream, OpenState, SendState, RecvState } from "./stream.js";
export type { LifecycleStatus } from "./stream-base.js";
export { DEFAULT_TRANSPORT_CONFIG, resolveConfig, type MuxOptions, type TransportConfig, type Logger } from "./options.js";
export { realClock, type Clock, type TimerHandle } from "./clock.js";
export {
  TransportError, FrameError, StreamRefusedError, StreamResetError, FlowControlError, FinalSizeError, ProtocolViolationError,
  StreamLimitError, IdleTimeoutError, PeerRestartedError, MuxClosedError,
} from "./errors.js";
export { ERROR_CODE, DROP, FRAME, MAX_REQUEST_BYTES, MAX_REASON_BYTES, MIN_PAYLOAD, errorCodeName } from "./constants.js";
export { describeFrame, type Frame } from "./frames.js";
export { decodePacket, PacketReader } from "./decode.js";
export { encodeFrame, PacketWriter } from "./encode.js";
