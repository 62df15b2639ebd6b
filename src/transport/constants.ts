// Every stream-layer wire constant, error code and protocol limit in one place (defaults a node may
// change live in options.ts). The layout of the packet header is in packet.ts, of each frame in frames.ts.
//
// A stream packet is the plaintext of one session DATA packet (inner type INNER.STREAM in src/wire):
//   header (15 bytes, fixed, little-endian like src/wire) | frame | frame | ...
// Frame fields are QUIC variable-length integers (RFC 9000 section 16: big-endian, 2-bit length prefix),
// so small ids and offsets cost one or two bytes.

/** First header byte: the stream packet format version. Anything else is dropped (`bad_version`). */
export const PACKET_VERSION = 0x01;
export const PACKET_HEADER_SIZE = 15;
/** Packet numbers are 48-bit on the wire: at 10 Mpps that lasts 325 days per mux, and a mux never reuses one. */
export const MAX_PACKET_NUMBER = 2 ** 48 - 1;

/** Frame type byte (one byte, not a varint). STREAM uses two: bit 0 is FIN. */
export const FRAME = {
  PING: 0x01,
  ACK: 0x02,
  STREAM: 0x08,
  STREAM_FIN: 0x09,
  OPEN: 0x10,
  ACCEPT: 0x11,
  REFUSE: 0x12,
  RESET: 0x13,
  MAX_DATA: 0x14,
  MAX_STREAM_DATA: 0x15,
  CLOSE: 0x1c,
  IMMEDIATE_ACK: 0x1f,
} as const;
export type FrameType = (typeof FRAME)[keyof typeof FRAME];

/** Largest value a varint may carry here: JS numbers are exact only below 2^53. */
export const MAX_VARINT = Number.MAX_SAFE_INTEGER;
/** The application request carried by OPEN (e.g. msgpack {service, port, protocol}). */
export const MAX_REQUEST_BYTES = 512;
/** REFUSE and CLOSE reasons are for logs and operators; longer ones are cut at a character boundary. */
export const MAX_REASON_BYTES = 256;
/** ACK ranges we put in one frame (the oldest are left out) and accept in one (more is hostile). */
export const MAX_ACK_RANGES_SENT = 32;
export const MAX_ACK_RANGES_RECEIVED = 256;
/** Received packet-number ranges remembered for ACKs and duplicate detection; older ones count as seen. */
export const MAX_TRACKED_PN_RANGES = 128;
/**
 * The smallest link payload we can work with: an OPEN with a full request plus header and an ACK must fit.
 * Below it the mux sends nothing and counts `payload_too_small` (IPv6's 1280-byte MTU leaves ~1190).
 */
export const MIN_PAYLOAD = PACKET_HEADER_SIZE + 1 + 8 + 2 + MAX_REQUEST_BYTES + 64;

/**
 * Flow-control credit each side may use before the peer says otherwise (no handshake carries transport
 * parameters, so these are protocol constants; a receiver raises them with MAX_DATA / MAX_STREAM_DATA at once).
 * A receiver's configured windows are therefore never below them (options.ts checks).
 */
export const INITIAL_STREAM_CREDIT = 64 * 1024;
export const INITIAL_MUX_CREDIT = 256 * 1024;

/**
 * Stream ids are relative to the packet's sender: id = 2 * n + d, where n counts the opener's streams
 * from 0 and d = 0 when the sender of the frame opened the stream, 1 when its receiver did. The receiver
 * flips d (id ^ 1) to get its own name for the stream. Both sides therefore open at once with no role, no
 * epoch comparison and no collision: each side numbers only its own streams.
 */
export const STREAM_ID_PEER_BIT = 1;

/**
 * Wire error codes: sent in RESET and CLOSE, carried by the error classes (errors.ts). REFUSE codes
 * are the application's own (the access layer's policy reasons), except the two the mux itself uses.
 */
export const ERROR_CODE = {
  NO_ERROR: 0x00,
  INTERNAL: 0x01,
  /** The peer sent more than the credit we gave (stream or mux). */
  FLOW_CONTROL: 0x03,
  /** Too many concurrent streams: the open is refused. */
  STREAM_LIMIT: 0x04,
  /** Data past a stream's final size, or two different final sizes. */
  FINAL_SIZE: 0x06,
  FRAME_ENCODING: 0x07,
  PROTOCOL_VIOLATION: 0x0a,
  /** The application destroyed its stream without an error of its own. */
  CANCELLED: 0x10,
  /** The peer's opens are refused because nothing listens for them. */
  NO_LISTENER: 0x11,
  /** Nothing heard from the peer for the idle timeout. */
  IDLE_TIMEOUT: 0x12,
  /** The peer's epoch changed: it restarted and forgot every stream. */
  PEER_RESTARTED: 0x13,
  /** The application refused an open without a code of its own. */
  REFUSED: 0x14,
} as const;
export type ErrorCodeName = keyof typeof ERROR_CODE;

export function errorCodeName(code: number): string {
  for (const [name, value] of Object.entries(ERROR_CODE)) if (value === code) return name.toLowerCase();
  return `0x${code.toString(16)}`;
}

/** Drop counters: every discarded datagram or frame increments exactly one of these. */
export const DROP = {
  MALFORMED: "malformed",
  BAD_VERSION: "bad_version",
  STALE_EPOCH: "stale_epoch",
  OLD_PEER_EPOCH: "old_peer_epoch",
  DUPLICATE_PACKET: "duplicate_packet",
  CLOSED: "closed",
  PEER_CLOSED: "peer_closed",
  UNKNOWN_STREAM: "unknown_stream",
  CLOSED_STREAM: "closed_stream",
  STREAM_ID_TOO_FAR: "stream_id_too_far",
  DUPLICATE_OPEN: "duplicate_open",
  STREAM_LIMIT: "stream_limit",
  REFUSAL_BACKLOG: "refusal_backlog",
  FLOW_CONTROL: "flow_control",
  FINAL_SIZE: "final_size",
  PROTOCOL: "protocol",
  BAD_ACK: "bad_ack",
  PAYLOAD_TOO_SMALL: "payload_too_small",
  INTERNAL: "internal_error",
} as const;
export type DropReason = (typeof DROP)[keyof typeof DROP];

/**
 * The longest a receiver holds an ACK for an ack-eliciting packet (RFC 9000 max_ack_delay). A protocol
 * constant, not an option: the sender's probe timeout counts on the peer's value and nothing exchanges it.
 */
export const MAX_ACK_DELAY_MS = 25;

// Recovery (RFC 9002 section 6 and appendix A).
/** Packets acknowledged after a missing one before it is declared lost (kPacketThreshold). */
export const PACKET_THRESHOLD = 3;
/** Time threshold as a fraction of the RTT (kTimeThreshold = 9/8). */
export const TIME_THRESHOLD_NUM = 9;
export const TIME_THRESHOLD_DEN = 8;
/** Timer granularity (kGranularity), ms. */
export const GRANULARITY_MS = 1;
/** Persistent congestion: this many PTO periods with every packet lost (kPersistentCongestionThreshold). */
export const PERSISTENT_CONGESTION_THRESHOLD = 3;
/**
 * A loss is a congestion signal only when the packets lost over the last two round trips are clearly more than
 * this share of those settled (BBRv2 uses the same 2% per round): more than share * n plus
 * CONGESTIVE_LOSS_SIGMAS standard deviations of what random loss at that share would give, so a small
 * window needs a higher share before it counts (3 losses in 120 packets is bad luck at 1%; 6 is a queue). Random
 * loss on a radio or satellite link (0.5-1%) says nothing about queues: cutting the window for it held a 600 ms,
 * 20 Mbit/s link with 1% loss to 0.4 Mbit/s, while an overflowing queue drops far more than 2% at once.
 */
export const CONGESTIVE_LOSS_RATE = 0.02;
export const CONGESTIVE_LOSS_SIGMAS = 2;
/** NewReno: window halves on a congestion event (kLossReductionFactor). */
export const LOSS_REDUCTION_FACTOR = 0.5;
/** Pacing rate = this * cwnd / srtt (RFC 9002 section 7.7: N = 1.25). */
export const PACING_GAIN = 1.25;
/** Largest PTO backoff exponent: past 2^16 periods a probe is as good as never. */
export const MAX_PTO_BACKOFF = 16;
/**
 * The backed-off probe timeout stops growing here (unless one unbacked PTO is longer, on a very long path). The
 * idle timeout, not the backoff, decides that a peer is gone; an uncapped backoff meant a transfer cut for 40 s
 * waited 9 s more after the link came back (and minutes after a longer cut, while the peer's keepalives kept the
 * idle timer fresh). A probe every 2 s while data waits costs next to nothing.
 */
export const MAX_PTO_MS = 2_000;

// The mux (mux.ts and the files it delegates to).
/** Probe packets sent per probe timeout (RFC 9002 section 6.2.4 allows up to two). */
export const PROBES_PER_PTO = 2;
/** Retired peer epochs remembered, so a late packet from before a restart is not taken for another restart. */
export const RETIRED_EPOCHS = 4;
/** Answers to packets for an old epoch of ours, and CLOSE answers once closed, are rate-limited. */
export const STALE_REPLY_INTERVAL_MS = 250;
export const CLOSE_REPLY_INTERVAL_MS = 1_000;
/** Below this much room a packet is full (no useful frame fits). */
export const MIN_FRAME_ROOM = 24;
/** How soon a mux with data and nothing in flight looks again (a safety net: no ACK is coming to wake it). */
export const STALL_RECHECK_MS = 10;
