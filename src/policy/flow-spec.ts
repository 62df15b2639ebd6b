// Flow specs as people type them: "db-1:5432/tcp", "dashboard-1:443" (tcp), "dashboard-1/https" (443),
// "db-1/icmp". Used by `ember policy check`, the embedded tests and the coordination API.
import { NAME_PATTERN } from "../pki/constants.js";
import { HTTPS_DEFAULT_PORT, MAX_FLOW_SPEC } from "./limits.js";
import type { FlowProtocol } from "./types.js";

export class FlowSpecError extends Error {
  override name = "FlowSpecError";
}

const FORMAT = "expected NAME[:PORT][/PROTOCOL], e.g. db-1:5432/tcp, dashboard-1:443/https or db-1/icmp";

export function parseFlowSpec(spec: string): { name: string; port?: number; protocol: FlowProtocol } {
  const fail = (why: string): never => { throw new FlowSpecError(`bad flow "${shown(spec)}": ${why}; ${FORMAT}`); };
  if (typeof spec !== "string") fail("not a string");
  if (spec.length > MAX_FLOW_SPEC) fail(`longer than ${MAX_FLOW_SPEC} characters`);
  const m = /^([^:/]*)(?::([^/]*))?(?:\/(.*))?$/.exec(spec.trim());
  if (!m) return fail("more than one ':' or '/'");
  const [, name, portText, protoText] = m;
  if (name === "") fail("no identity name");
  if (!NAME_PATTERN.test(name)) fail(`"${shown(name)}" is not an identity name (lowercase DNS label)`);

  let protocol: FlowProtocol = "tcp";
  if (protoText !== undefined) {
    const p = protoText.toLowerCase();
    if (p === "any") fail(`a flow has one protocol, not "any"`);
    if (p !== "tcp" && p !== "udp" && p !== "https" && p !== "icmp") fail(`unknown protocol "${shown(protoText)}" (tcp, udp, https or icmp)`);
    protocol = p as FlowProtocol;
  }

  if (portText === undefined) {
    if (protocol === "icmp") return { name, protocol };
    if (protocol === "https") return { name, port: HTTPS_DEFAULT_PORT, protocol };
    return fail(`a ${protocol} flow needs a port`);
  }
  if (protocol === "icmp") fail("icmp has no ports");
  if (!/^\d{1,5}$/.test(portText)) fail(`port "${shown(portText)}" is not a number`);
  const port = Number(portText);
  if (port < 1 || port > 65535) fail(`port ${port} is outside 1-65535`);
  return { name, port, protocol };
}

/** Input echoed in messages: bounded and printable. */
function shown(s: unknown): string {
  const t = String(s);
  return (t.length > 64 ? `${t.slice(0, 64)}…` : t).replace(/[^\x20-\x7e]/g, "?");
}
