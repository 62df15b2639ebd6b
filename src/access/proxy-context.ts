// What the proxy's front ends (SOCKS5, HTTP) share: the mesh, the log, the limits, and one set of
// counters in which every refusal and drop reason is its own key.
import type { Socket } from "node:net";
import type { Counters } from "./counters.js";
import type { AccessLog, Dialer, Directory } from "./types.js";

export const PROXY_COUNTERS = [
  // connections
  "accepted", "over_limit", "source_limit", "source_handshakes", "handshake_timeout", "socks5", "http",
  // SOCKS5 refusals
  "socks4_refused", "socks_bad_greeting", "socks_no_acceptable_method", "socks_bad_request",
  "socks_unsupported_command", "socks_unsupported_address", "socks_handshake_too_large",
  // HTTP refusals
  "http_bad_request", "http_header_too_large", "http_version_not_supported",
  // what was asked and how dials ended
  "socks_connect", "socks_udp_associate", "http_connect", "http_forward", "dialled",
  "denied", "unknown_name", "unreachable", "refused", "timeout", "bad_request", "failed",
  // SOCKS5 UDP ASSOCIATE
  "udp_datagrams_in", "udp_datagrams_out", "udp_flows", "udp_flows_idle_closed",
  "udp_drop_malformed", "udp_drop_fragment", "udp_drop_address_type", "udp_drop_foreign_source", "udp_drop_resolve",
  "udp_drop_dial_failed", "udp_drop_flow_limit", "udp_drop_dialling_backlog", "udp_drop_stream_backlog",
  "udp_drop_unframeable", "udp_drop_closed", "udp_framing_errors",
] as const;
export type ProxyCounter = typeof PROXY_COUNTERS[number];

export interface ProxyContext {
  dialer: Dialer;
  directory: Directory;
  log: AccessLog;
  counters: Counters<ProxyCounter>;
  dialTimeoutMs: number;
  udpIdleMs: number;
  maxUdpFlows: number;
}

/** One accepted client connection during its handshake. */
export interface ClientConn {
  socket: Socket;
  /** For log lines: a connection number and the client's address. */
  id: number;
  from: string;
  /** The request is parsed: the handshake deadline no longer applies (the dial has its own). */
  handshakeDone(): void;
  /** What to send when the handshake deadline passes, before the connection closes (HTTP: 408). */
  onDeadline(send: () => void): void;
}
