// One import for everything a datagram handler needs from the wire format.
export { writeDataHeader, readReceiverIndex, readCounter, isDataPacket, dataCiphertext } from "./data.js";
export { encodeHandshake, parseHandshake, FrameError, type HandshakeType, type HandshakeRefusal, type ParsedHandshake } from "./handshake-frame.js";
export { isStunPacket, isEmberPacket, DATA_HEADER_SIZE } from "./constants.js";
