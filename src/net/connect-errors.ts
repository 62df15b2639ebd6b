// Why a TCP/TLS connection to a server failed, told apart from its error text: a refused connection means the
// network works and nothing listens (the server is not running, or the port is wrong); a timeout or no route
// means packets are dropped (a firewall, or the host is down); a name that does not resolve, a TLS failure and a
// cut connection each have their own fix. Pure: the error's code or message in, a kind and a sentence out, so
// `ember up` (before a token is spent) and `ember status` (diagnostics.ts) say the same thing.

export type ConnectFailure = "refused" | "timeout" | "unreachable" | "dns" | "tls" | "reset" | "other";

const PATTERNS: [ConnectFailure, RegExp][] = [
  ["refused", /ECONNREFUSED|connection refused/i],
  ["dns", /ENOTFOUND|EAI_AGAIN|EAI_NONAME|getaddrinfo/i],
  ["unreachable", /EHOSTUNREACH|ENETUNREACH|EHOSTDOWN|ENETDOWN|no route/i],
  ["timeout", /ETIMEDOUT|timed out|timeout|no answer/i],
  ["tls", /ERR_TLS|ERR_SSL|SSL routines|CERT_[A-Z_]+|self[- ]signed certificate|unable to (verify|get local issuer)|wrong version number|EPROTO/],
  ["reset", /ECONNRESET|EPIPE|socket hang up|ECONNABORTED/i],
];

/** The kind of a connection failure, from its error code or message (unknown text: "other"). */
export function classifyConnectError(err: { code?: string; message?: string } | string): ConnectFailure {
  const text = typeof err === "string" ? err : `${err.code ?? ""} ${err.message ?? ""}`;
  for (const [kind, re] of PATTERNS) if (re.test(text)) return kind;
  return "other";
}

/** True for the kinds where packets do not get through at all (what a firewall that drops does). */
export function looksBlocked(kind: ConnectFailure): boolean {
  return kind === "timeout" || kind === "unreachable";
}

/** One sentence naming what failed and one naming the fix, for `what` (e.g. "the coordination server") at target. */
export function describeConnectFailure(kind: ConnectFailure, what: string, target: string, detail: string): { cause: string; fix: string } {
  const host = target.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  switch (kind) {
    case "refused": return {
      // A firewall that rejects (a TCP reset) looks the same as a server that is not running: both are named, the
      // server first (with no relay to compare, nothing tells them apart).
      cause: `${what} is not running or refusing at ${target} (connection refused: nothing listens on that port, or a firewall rejects it)`,
      fix: `start it, or check the port in the URL (curl -k https://${target}/v1/health, from another host too); if it runs, allow outbound TCP to ${target}`,
    };
    case "timeout": return {
      cause: `no answer from ${what} at ${target} (${detail}): a firewall drops the packets, or the host is down`,
      fix: `check that the host is up and allow outbound TCP to ${target} in the host and network firewalls`,
    };
    case "unreachable": return {
      cause: `no route to ${what} at ${target} (${detail})`,
      fix: `check this host's network and routes to ${host}`,
    };
    case "dns": return {
      cause: `the name ${host} of ${what} does not resolve (${detail})`,
      fix: "check the host name in the URL and this host's DNS (/etc/resolv.conf)",
    };
    case "tls": return {
      cause: `TLS with ${what} at ${target} failed (${detail})`,
      fix: "check that the URL names the EmberNet server (https, the right port) and that no proxy intercepts TLS; a certificate error can be a wrong clock (NTP)",
    };
    case "reset": return {
      cause: `${what} at ${target} cut the connection (${detail})`,
      fix: `check that the server is healthy (its log) and that nothing between cuts connections to ${target}`,
    };
    default: return { cause: `${what} at ${target}: ${detail}`, fix: `check that it runs and is reachable (curl -k https://${target}/v1/health)` };
  }
}

/** "HOST:PORT" of a URL (443 when it names none). */
export function urlTarget(url: string | undefined): string {
  try { const u = new URL(url ?? ""); return `${u.hostname}:${u.port || 443}`; } catch { return url ?? "?"; }
}
