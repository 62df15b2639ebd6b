// What the session layer uses from wire and crypto, in one import.
export * from "../wire/constants.js";
export { writeDataHeader, readReceiverIndex, readCounter, isStunPacket, encodeHandshake, parseHandshake } from "../wire/packets.js";
export { encodeInitMessage, parseInitMessage, parseCookieReply, initMacs } from "../wire/handshake-frame.js";
export {
  Initiator, Responder, HandshakeError, TimestampGuard, generateStaticKeyPair, nextTimestamp, type LocalIdentity, type HandshakeResult, type PeerVersion,
} from "../crypto/handshake.js";
export { CookieChecker, mac1Key, openCookieReply, responderKey, writeInitMacs } from "../crypto/cookie.js";
export { claimSignatureHolds, openClaim, sealClaim, signClaim, type InitClaim } from "../crypto/init-claim.js";
export { TransportCipher, ReplayWindow } from "../crypto/transport.js";
export { REKEY_TIMEOUT_MS, KEEPALIVE_TIMEOUT_MS, REKEY_AFTER_TIME_MS, REJECT_AFTER_TIME_MS, REKEY_AFTER_MESSAGES, REJECT_AFTER_MESSAGES } from "../wire/constants.js";
