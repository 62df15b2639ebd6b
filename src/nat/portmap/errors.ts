// One error class for every port mapping failure, carrying which protocol and why in machine-readable form
// (`code`), so the port mapper can tell "no such gateway service" from "the gateway refused".

export type PortmapProtocol = "nat-pmp" | "pcp" | "upnp";

export type PortmapErrorCode =
  | "timeout" // nothing answered
  | "malformed" // an answer we cannot decode
  | "refused" // a well-formed answer with a non-success result
  | "unavailable"; // no gateway, no service, no address

export class PortmapError extends Error {
  constructor(readonly protocol: PortmapProtocol, readonly code: PortmapErrorCode, message: string, readonly result?: number) {
    super(`${protocol}: ${message}`);
    this.name = "PortmapError";
  }
}
