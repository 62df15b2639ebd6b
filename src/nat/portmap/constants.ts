// Port mapping protocol constants, in one place: NAT-PMP (RFC 6886), PCP (RFC 6887) and UPnP IGD
// (SSDP discovery, WANIPConnection SOAP actions). Codecs and clients import from here only.

/** NAT-PMP and PCP share the gateway's UDP port 5351 (RFC 6886 3.1, RFC 6887 19.1). */
export const PMP_PORT = 5351;

// ---- NAT-PMP (RFC 6886) --------------------------------------------------------------------------

export const NATPMP_VERSION = 0;
export const NATPMP_OP_EXTERNAL_ADDRESS = 0;
export const NATPMP_OP_MAP_UDP = 1;
/** A response's opcode is the request's plus 128 (RFC 6886 3.2). */
export const NATPMP_RESPONSE_BIT = 128;
export const NATPMP_EXTERNAL_ADDRESS_RESPONSE_SIZE = 12;
export const NATPMP_MAP_REQUEST_SIZE = 12;
export const NATPMP_MAP_RESPONSE_SIZE = 16;

/** RFC 6886 3.5 result codes. */
export const NATPMP_RESULTS: Record<number, string> = {
  0: "success",
  1: "unsupported version",
  2: "not authorized/refused",
  3: "network failure",
  4: "out of resources",
  5: "unsupported opcode",
};

// ---- PCP (RFC 6887) -------------------------------------------------------------------------------

export const PCP_VERSION = 2;
export const PCP_OP_ANNOUNCE = 0;
export const PCP_OP_MAP = 1;
/** The R bit: set in responses (RFC 6887 7.2). */
export const PCP_RESPONSE_BIT = 0x80;
export const PCP_HEADER_SIZE = 24;
/** MAP opcode body: nonce 12, protocol 1, reserved 3, ports 2+2, suggested external address 16. */
export const PCP_MAP_BODY_SIZE = 36;
export const PCP_MAX_MESSAGE = 1100;
export const PCP_MAP_NONCE_SIZE = 12;
export const IPPROTO_UDP = 17;

/** RFC 6887 7.4 result codes. */
export const PCP_RESULTS: Record<number, string> = {
  0: "SUCCESS",
  1: "UNSUPP_VERSION",
  2: "NOT_AUTHORIZED",
  3: "MALFORMED_REQUEST",
  4: "UNSUPP_OPCODE",
  5: "UNSUPP_OPTION",
  6: "MALFORMED_OPTION",
  7: "NETWORK_FAILURE",
  8: "NO_RESOURCES",
  9: "UNSUPP_PROTOCOL",
  10: "USER_EX_QUOTA",
  11: "CANNOT_PROVIDE_EXTERNAL",
  12: "ADDRESS_MISMATCH",
  13: "EXCESSIVE_REMOTE_PEERS",
};

// ---- UPnP IGD ---------------------------------------------------------------------------------------

export const SSDP_ADDRESS = "239.255.255.250";
export const SSDP_PORT = 1900;
export const IGD_DEVICE = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
/** Services that carry AddPortMapping, best first (IGDv2 WANIPConnection:2 also answers v1 actions). */
export const IGD_SERVICES = [
  "urn:schemas-upnp-org:service:WANIPConnection:2",
  "urn:schemas-upnp-org:service:WANIPConnection:1",
  "urn:schemas-upnp-org:service:WANPPPConnection:1",
] as const;
/** UPnP error codes the client acts on (UPnP IGD WANIPConnection v2, 2.4.16). */
export const UPNP_ERR_CONFLICT = 718;
export const UPNP_ERR_ONLY_PERMANENT_LEASES = 725;
export const UPNP_ERR_NO_SUCH_ENTRY = 714;
export const UPNP_ERR_INVALID_INDEX = 713;
/** A description or SOAP answer larger than this is not an IGD's (bounds what we read from the LAN). */
export const UPNP_MAX_BODY = 256 * 1024;
export const PORTMAP_DESCRIPTION = "embernet";

// ---- Timing ---------------------------------------------------------------------------------------

/** Lifetime we ask for: RFC 6886 3.3 recommends 7200 s. */
export const REQUESTED_LIFETIME_S = 7200;
/** NAT-PMP/PCP retransmit: first wait 250 ms, doubling (RFC 6886 3.1), cut to a few tries for a daemon. */
export const PMP_FIRST_TIMEOUT_MS = 250;
export const PMP_TRIES = 3;
/** SSDP answers come within MX seconds; a LAN gateway answers at once. */
export const SSDP_WAIT_MS = 1_500;
export const HTTP_TIMEOUT_MS = 3_000;
