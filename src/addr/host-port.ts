// "host:port" as flags and config files give it: "[v6]:port", ":port" or a bare port (the default host then).

export class HostPortError extends Error {}

/** "host:port", "[v6]:port" or ":port"/"port" (host defaults to all interfaces). */
export function parseHostPort(text: string, what: string, defaultHost = "0.0.0.0"): { host: string; port: number } {
  // A bare number is a port (the pattern below would otherwise split "34615" into host "3461", port 5).
  if (/^\s*\d{1,5}\s*$/.test(text)) text = `:${text.trim()}`;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*))?:?(\d{1,5})$/.exec(text.trim());
  if (!m) throw new HostPortError(`${what}: "${text}" is not host:port`);
  const port = Number(m[3]);
  if (port > 65535) throw new HostPortError(`${what}: port ${port} is out of range`);
  return { host: m[1] ?? (m[2] || defaultHost), port };
}
