// Access: how applications reach mesh services by identity name with no root and no TUN. One loopback
// listener serves SOCKS5 and HTTP proxy clients, forwards serve clients that speak neither, names
// resolve against the peer map, and the receiving side joins accepted flows to local services. All of
// it runs against two interfaces (Directory, Dialer) that the node implements. See docs/access.md.
export type {
  AccessLog, AccessProtocol, DialErrorCode, Dialer, Directory, DirectoryPeer, ServiceInfo, Target,
} from "./types.js";
export { DialError, dialFailure } from "./types.js";
export { describeResolution, lookupName, parseName, resolveName, MESH_TLD, type Resolution, type ResolutionReport } from "./names.js";
export { startProxy, type ProxyOptions, type ProxyServer, type ProxyStats } from "./proxy-server.js";
export type { ProxyCounter } from "./proxy-context.js";
export { startForward, parseForwardTarget, ForwardError, type Forward, type ForwardOptions, type ForwardRefusal, type ForwardStats, type ForwardCounter } from "./forward.js";
export { connectService, type ServiceConnection, type ServiceOptions, type ServiceResult } from "./service-connector.js";
export { DatagramDecoder, encodeDatagram, FramingError, FRAME_HEADER } from "./datagram-framing.js";
export { resolveAndDial, dialWithin } from "./dial.js";
export { ListenError } from "./listen.js";
export * as limits from "./limits.js";
