// The call-me-maybe message's payload: our candidates as "host:port" strings, comma-separated UTF-8 (small,
// sealed in the session), and the token that marks an acknowledgement.
import { describeEndpoint, parseEndpointString, type Endpoint } from "../addr/endpoint.js";

/**
 * A call-me-maybe that answers one (the receiver has punched too): marked by this token among the candidates, which
 * older decoders skip. It is never answered itself, so two peers cannot keep each other busy.
 */
const CMM_ACK = "ack";

/** Candidates in call-me-maybe: "host:port" strings, comma-separated UTF-8 (small, sealed in the session). */
export function encodeCandidates(eps: Endpoint[], ack = false): Uint8Array {
  const parts = eps.filter((e) => e.kind === "udp").map((e) => describeEndpoint(e));
  return Buffer.from((ack ? [CMM_ACK, ...parts] : parts).join(","), "utf8");
}

/** Whether a call-me-maybe answers ours (the peer punched in reply). */
export function isCallMeMaybeAck(payload: Uint8Array): boolean {
  return Buffer.from(payload.subarray(0, CMM_ACK.length + 1)).toString("utf8").split(",")[0] === CMM_ACK;
}


export function decodeCandidates(payload: Uint8Array): Endpoint[] {
  const out: Endpoint[] = [];
  for (const part of Buffer.from(payload).toString("utf8").split(",").slice(0, 33)) {
    const ep = parseEndpointString(part);
    if (ep) out.push(ep);
  }
  return out;
}
