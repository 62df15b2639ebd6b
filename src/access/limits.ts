// Every limit and timer of the access layer in one place, each with the reason for its value.

/** Largest UDP payload over IPv4 (65535 - 20 IP - 8 UDP): the largest datagram a flow frame carries. */
export const MAX_DATAGRAM = 65_507;

/** A client must finish its SOCKS5 or HTTP handshake within this (total, not per read: slowloris). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Guard on top of the Dialer's own timeout, so a dial that never settles cannot pin a client. */
export const DIAL_TIMEOUT_MS = 30_000;
/** Concurrent client connections per listener; more are closed at once and counted. */
export const MAX_CONNECTIONS = 1024;
/** Of those, from one source address (IPv6: /64): one program cannot take every slot from the others. */
export const MAX_CONNECTIONS_PER_SOURCE = 512;
/** Of those, still in their SOCKS5/HTTP handshake: idle connections cost an attacker nothing to hold. */
export const MAX_HANDSHAKES_PER_SOURCE = 64;

/** An HTTP request head larger than this is answered 431 (browsers send a few KiB at most). */
export const MAX_HTTP_HEAD = 16 * 1024;
/** Header lines per request; more is 431 too. */
export const MAX_HTTP_HEADERS = 100;

/** A UDP flow (SOCKS5 association entry, forward client, service socket) closes after this long idle. */
export const UDP_IDLE_MS = 60_000;
/** Flows per SOCKS5 UDP association, and per UDP forward: each is a mesh flow, so bound them. */
export const MAX_UDP_FLOWS = 256;
/** Datagrams held while a flow is still being dialled; later ones are dropped (UDP may lose them). */
export const UDP_PENDING_DATAGRAMS = 32;
/** Bytes a flow may have queued unsent on its mesh stream before datagrams are dropped, not buffered. */
export const UDP_MAX_UNSENT = 256 * 1024;
/** UDP sends awaiting the kernel before a flow pauses its mesh stream (back-pressure towards the peer). */
export const UDP_MAX_INFLIGHT_SENDS = 64;
/** A destination whose dial failed is not re-dialled for this long: one bad name must not dial per datagram. */
export const UDP_FAILED_HOLD_MS = 5_000;
/** The receiving side's connect to its local service; a local service that does not answer in this is down. */
export const LOCAL_CONNECT_TIMEOUT_MS = 10_000;
