// Every EmberNet packet type, size and protocol constant in one place.
//
// Datagrams on the node's one UDP socket (also carried unchanged inside relay frames):
//   STUN            first byte 0x00/0x01 (top two bits zero), magic cookie 0x2112A442 at offset 4 (RFC 8489)
//   EmberNet        first byte 0x10..0x1f (PACKET below), so the two never collide
//
// All multi-byte integers are LITTLE-endian (as in WireGuard: x86/ARM read them natively, and the
// 64-bit counter is also the little-endian half of the Noise nonce).
//
// Data packet (16-byte header):
//   0      1..3          4..7                  8..15           16..
//   type   reserved = 0  receiver index (u32)  counter (u64)   ciphertext || 16-byte Poly1305 tag
// Handshake packets (one datagram each, at most HANDSHAKE_MAX_DATAGRAM bytes; a longer message is split):
//   type | reserved = 0 | fragment index (u8) | fragment count (u8) | sender index (u32)
//        | [receiver index (u32): RESP, FINAL] | chunk of the message | [mac1 (16) | mac2 (16): INIT]
//   The INIT message is e || claim length (u16) || sealed claim || zero padding (docs/crypto.md): a
//   one-fragment INIT is at least HANDSHAKE_INIT_DATAGRAM bytes (anti-amplification, see below).
// Cookie reply (docs/crypto.md, "Silent port and cookies"), exactly COOKIE_REPLY_SIZE bytes:
//   type | reserved(3) = 0 | receiver index (u32) | nonce (24) | XChaCha20-Poly1305(cookie) (16 + 16)

export const PACKET = {
  HANDSHAKE_INIT: 0x11,
  HANDSHAKE_RESP: 0x12,
  HANDSHAKE_FINAL: 0x13,
  DATA: 0x14,
  /** The responder is under load: here is a cookie for your address; send the INIT again with mac2. */
  COOKIE_REPLY: 0x15,
  /** An IPv4 packet between TUN devices, sealed by the native addon under the session's TUN keys (src/native/types.ts). */
  TUN_DATA: 0x16,
} as const;
export type PacketType = (typeof PACKET)[keyof typeof PACKET];

/** The first-byte range reserved for EmberNet; anything else on the socket is STUN or junk. */
export const EMBER_TYPE_MIN = 0x10;
export const EMBER_TYPE_MAX = 0x1f;

/**
 * First plaintext byte inside a DATA packet: the inner message kind (authenticated, so a probe answered here
 * proves the path reaches the peer that holds the session keys). Each kind has one handler, registered by
 * the layer that owns it (src/session/inner.ts); 0x00-0x0f belong to the session and NAT layers.
 */
export const INNER = {
  /** Empty: proves liveness and holds NAT mappings (session layer). */
  KEEPALIVE: 0x00,
  /** Application ping (`ember ping`): 8-byte id; the peer answers PONG on the path the ping came by. */
  PING: 0x01,
  PONG: 0x02,
  /** Our direct candidates, sent over the relay so both sides punch at once (src/nat/paths.ts). */
  CALL_ME_MAYBE: 0x03,
  /**
   * Path probe sent over exactly one candidate path: 8-byte id and the sender's no-NAT byte; answered by
   * PATH_PROBE_REPLY on that path (the same id, the replier's byte). src/nat/paths.ts.
   */
  PATH_PROBE: 0x04,
  PATH_PROBE_REPLY: 0x05,
  /** Opaque application datagram (tests and tools). */
  APP_DATA: 0x10,
  /** Stream-layer packet (src/transport). */
  STREAM: 0x11,
} as const;
export type InnerType = (typeof INNER)[keyof typeof INNER];

export const HEADER_RESERVED_BYTES = 3;
export const DATA_HEADER_SIZE = 16;
export const TAG_SIZE = 16;
export const KEY_SIZE = 32;
/** X25519 public key length: the Noise message 1 (-> e) is exactly this, EmberNet sends no payload in it. */
export const DH_SIZE = 32;
/** Smallest valid data packet: header + tag (a keepalive's plaintext is its 1 inner-type byte; tolerate 0). */
export const MIN_DATA_PACKET = DATA_HEADER_SIZE + TAG_SIZE;
export const HANDSHAKE_INIT_HEADER = 8;
export const HANDSHAKE_REPLY_HEADER = 12;
/** Largest datagram we send or accept: 1500-byte MTU minus IPv4 (20) and UDP (8) headers. */
export const MAX_DATAGRAM = 1472;
/** Largest inner payload (after the inner-type byte) that still fits one datagram. */
export const MAX_PAYLOAD = MAX_DATAGRAM - DATA_HEADER_SIZE - TAG_SIZE - 1;
/** Bytes a DATA packet adds to its inner payload: header, tag and the inner-kind byte. */
export const DATA_OVERHEAD = DATA_HEADER_SIZE + TAG_SIZE + 1;
/**
 * Path MTU assumed for direct paths unless configured higher: the IPv6 minimum, which every IPv4 and IPv6
 * path carries without fragmentation (links of 1280 bytes exist in real networks). Node's dgram cannot set
 * Don't-Fragment, so a larger probe could be fragmented and "succeed": no discovery above this without the
 * native addon. Relay paths run over TCP and take any datagram up to MAX_DATAGRAM.
 */
export const DEFAULT_PATH_MTU = 1280;
export const MAX_PATH_MTU = 1500;
export const IPV4_UDP_OVERHEAD = 28;
export const IPV6_UDP_OVERHEAD = 48;

/** Largest inner payload that fits one datagram on a path of this MTU (IPv6 when v6). */
export function innerPayloadFor(mtu: number, v6: boolean): number {
  return Math.min(MAX_PAYLOAD, mtu - (v6 ? IPV6_UDP_OVERHEAD : IPV4_UDP_OVERHEAD) - DATA_OVERHEAD);
}
/**
 * Largest handshake datagram: what a 1280-byte IPv6 packet carries (DEFAULT_PATH_MTU), so every handshake
 * datagram passes every path, direct or relayed, IPv4 or IPv6, without IP fragmentation. A handshake message
 * that does not fit (a long certificate chain) is split into fragments of this size (the last one shorter).
 */
export const HANDSHAKE_MAX_DATAGRAM = DEFAULT_PATH_MTU - IPV6_UDP_OVERHEAD;
/** Fragments of one handshake message at most: bounds a message (and a reassembly buffer) to ~19 KB. */
export const HANDSHAKE_MAX_FRAGMENTS = 16;
/** mac1 and mac2 of an INIT datagram: truncated HMAC-SHA-256 (docs/crypto.md). */
export const MAC_SIZE = 16;
export const HANDSHAKE_INIT_TRAILER = 2 * MAC_SIZE;
/** Message bytes per full fragment. */
export const INIT_FRAGMENT_CHUNK = HANDSHAKE_MAX_DATAGRAM - HANDSHAKE_INIT_HEADER - HANDSHAKE_INIT_TRAILER;
export const REPLY_FRAGMENT_CHUNK = HANDSHAKE_MAX_DATAGRAM - HANDSHAKE_REPLY_HEADER;
/** Largest handshake message (any type): what HANDSHAKE_MAX_FRAGMENTS fragments of the smaller chunk hold. */
export const MAX_HANDSHAKE_MESSAGE = HANDSHAKE_MAX_FRAGMENTS * INIT_FRAGMENT_CHUNK;
/**
 * A responder answers an INIT with a RESP carrying a certificate chain (~1 KB): an amplifier toward a forged
 * source address. A one-fragment INIT datagram is therefore padded to at least this size, so the answer to
 * a usual chain is under ~3x the request (QUIC's anti-amplification limit); shorter INITs are dropped. (A RESP
 * is only ever sent for an INIT whose claim a peer's certificate key signed, and under load only to an
 * address that proved it receives, through the cookie: see docs/crypto.md.)
 */
export const HANDSHAKE_INIT_DATAGRAM = 400;
/** The INIT message (e, claim length, sealed claim) is zero-padded to at least this. */
export const MIN_INIT_MESSAGE = HANDSHAKE_INIT_DATAGRAM - HANDSHAKE_INIT_HEADER - HANDSHAKE_INIT_TRAILER;
/** Claim length field after e in the INIT message. */
export const INIT_CLAIM_LENGTH_SIZE = 2;
export const COOKIE_SIZE = 16;
export const COOKIE_NONCE_SIZE = 24;
/** type, reserved, receiver index, nonce, sealed cookie: 64 bytes, far smaller than any INIT. */
export const COOKIE_REPLY_SIZE = 8 + COOKIE_NONCE_SIZE + COOKIE_SIZE + TAG_SIZE;
/** The responder's cookie secret is replaced this often (WireGuard's 2 minutes); older cookies stop working. */
export const COOKIE_SECRET_ROTATE_MS = 120_000;
/** An initiator uses a cookie this long after it arrived (a little less than the secret's life). */
export const COOKIE_MAX_AGE_MS = COOKIE_SECRET_ROTATE_MS - 5_000;
/**
 * "Under load": more INIT datagrams with a valid mac1 than this in one second. Then, and for
 * UNDER_LOAD_HOLD_MS after, an INIT must carry a valid mac2 (a cookie for its source address) before the
 * responder does any public-key work for it; one without gets a cookie reply. A mesh of 1,000 peers
 * rekeying every 2 minutes makes ~8 INITs per second.
 */
export const HANDSHAKE_UNDER_LOAD_PER_S = 128;
export const UNDER_LOAD_HOLD_MS = 1_000;
/** Handshake messages being reassembled from fragments: bounds, all of them, and per source address. */
export const REASSEMBLY_MAX_MESSAGES = 128;
export const REASSEMBLY_MAX_PER_SOURCE = 8;
export const REASSEMBLY_MAX_BYTES = 1 << 20;
/** A message whose fragments did not all arrive within this is forgotten. */
export const REASSEMBLY_TIMEOUT_MS = 5_000;
/** Domain-separation labels of the silent-port keys (docs/crypto.md). */
export const LABEL_RESPONDER = "embernet-responder:v1:";
export const LABEL_MAC1 = "embernet-mac1:v1:";
export const LABEL_COOKIE = "embernet-cookie:v1:";
export const LABEL_CLAIM_KEY = "embernet-claim-key:v1:";
export const CLAIM_SIGNATURE_CONTEXT = "embernet-init-claim:v1:";
/** INIT claim (msgpack) version. */
export const INIT_CLAIM_VERSION = 1;
/** Noise message sizes, for length checks before any crypto: RESP = e, enc(s), enc(payload) etc. */
export const MIN_HANDSHAKE_RESP_MESSAGE = DH_SIZE + DH_SIZE + TAG_SIZE + TAG_SIZE;
export const MIN_HANDSHAKE_FINAL_MESSAGE = DH_SIZE + TAG_SIZE + TAG_SIZE;

export const STUN_MAGIC_COOKIE = 0x2112a442;
export const STUN_HEADER_SIZE = 20;

/** True for a STUN message (RFC 8489 header: top two bits zero, magic cookie at offset 4). */
export function isStunPacket(p: Uint8Array): boolean {
  return p.length >= STUN_HEADER_SIZE && p[0] < 0x04
    && ((p[4] << 24) | (p[5] << 16) | (p[6] << 8) | p[7]) >>> 0 === STUN_MAGIC_COOKIE;
}

/** True when the first byte is in EmberNet's range (the type itself is checked by the parsers). */
export function isEmberPacket(p: Uint8Array): boolean {
  return p.length > 0 && p[0] >= EMBER_TYPE_MIN && p[0] <= EMBER_TYPE_MAX;
}

// Session timing and key limits: WireGuard's figures (whitepaper, section 6.1).
export const REKEY_AFTER_MESSAGES = 2 ** 60;
/**
 * WireGuard rejects after 2^64 - 2^13 - 1 messages. Counters here are JS numbers, exact only below
 * 2^53, so the hard stop is 2^53 - 2^13 - 1: at 1 Mpps that is 285 years, far beyond REJECT_AFTER_TIME,
 * so in practice keys always age out first. (REKEY_AFTER_MESSAGES is thus never reached either.)
 */
export const REJECT_AFTER_MESSAGES = Number.MAX_SAFE_INTEGER - 2 ** 13;
export const REKEY_AFTER_TIME_MS = 120_000;
export const REJECT_AFTER_TIME_MS = 180_000;
export const REKEY_TIMEOUT_MS = 5_000;
export const KEEPALIVE_TIMEOUT_MS = 10_000;
/** Sliding replay window (RFC 6479 bitmap), in packets; the usable span is this minus one 32-bit word. */
export const REPLAY_WINDOW_SIZE = 8192;

/**
 * Why a node refused or cut an application flow: the code in the stream layer's REFUSE or RESET (above the
 * transport's own codes), so the client side can say what happened (SOCKS5 0x02, HTTP 403, ...).
 */
export const FLOW_CODE = {
  /** The receiving node's policy does not allow the flow (the reason names the rule decision). */
  DENIED: 0x100,
  /** Nothing is served on that port/protocol, or the named service does not exist there. */
  NO_SERVICE: 0x101,
  /** The service's local target did not answer (connection refused, timeout). */
  SERVICE_UNREACHABLE: 0x102,
  /** The open request could not be read. */
  BAD_REQUEST: 0x103,
  /** A live flow that a policy change no longer allows. */
  POLICY_CHANGED: 0x104,
  /** The peer was revoked or left the map. */
  PEER_GONE: 0x105,
} as const;

/** Handshake payload (msgpack) version and the binding's domain-separation string. */
export const HANDSHAKE_PAYLOAD_VERSION = 1;
export const STATIC_KEY_BINDING_CONTEXT = "embernet-noise-static-key:v1:";
export const NOISE_PROTOCOL_NAME = "Noise_XX_25519_ChaChaPoly_SHA256";
/** The prologue binds the wire version into the handshake hash (2: INIT with mac1, mac2 and a signed claim). */
export const NOISE_PROLOGUE = "embernet/2";
/** Control-message (msgpack) schema version. */
export const CONTROL_MESSAGE_VERSION = 1;

/**
 * Answering an initiation costs a key generation, two DH and a signature (~0.1 ms): cap the rate, overall
 * and per source address, so a flood of forged initiations cannot eat the CPU (WireGuard answers such
 * load with cookies; this is the simpler first line).
 */
export const HANDSHAKE_INIT_RATE_PER_S = 2_000;
export const HANDSHAKE_INIT_BURST = 400;
export const HANDSHAKE_INIT_RATE_PER_SOURCE_PER_S = 50;
export const HANDSHAKE_INIT_BURST_PER_SOURCE = 20;

/**
 * TUN mode: every node's overlay IPv4 address is in 100.64.0.0/10 (RFC 6598 shared address space, which no
 * LAN or public service uses), assigned by the coordination server (src/coord/overlay-address.ts).
 */
export const OVERLAY_NETWORK = "100.64.0.0";
export const OVERLAY_PREFIX_LENGTH = 10;

/**
 * Whether an IPv4 address is in the overlay range. Such an address is never a path: a node's own TUN address
 * offered as a candidate would carry the tunnel inside itself (probes loop through TUN and die there).
 */
export function isOverlayAddress(host: string): boolean {
  const m = /^100\.(\d{1,3})\./.exec(host);
  return !!m && (Number(m[1]) & 0xc0) === 64;
}
