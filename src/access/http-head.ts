// HTTP/1.x request heads as a forward proxy sees them: the request line, header fields, the two
// target forms a proxy serves (CONNECT's authority-form, and absolute-form http:// URLs), the head
// rewritten for the origin server, and the proxy's own error responses. Heads are handled as latin1
// so every byte survives the rewrite unchanged.
import { shown } from "./names.js";
import { MAX_HTTP_HEADERS } from "./limits.js";
import type { DialErrorCode } from "./types.js";

export interface RequestHead {
  method: string;
  target: string;
  version: string;
  headers: [string, string][];
}

export type HeadResult =
  | { ok: true; head: RequestHead }
  | { ok: false; status: 400 | 431 | 505; reason: string };

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REQUEST_LINE = /^([^ ]+) ([^ ]+) (HTTP\/\d\.\d)$/;
const FIELD = /^([^:]*):[ \t]*(.*?)[ \t]*$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const PRINTABLE = /^[\x20-\x7e]*$/;

/** Checks a complete request line: errors for garbage come before the client sends any header. */
export function checkRequestLine(line: string): HeadResult | null {
  if (!PRINTABLE.test(line)) return bad(400, "not an HTTP request (unprintable bytes in the request line)");
  const m = REQUEST_LINE.exec(line);
  if (!m) return bad(400, `not an HTTP request line: "${shown(line)}"`);
  if (!TOKEN.test(m[1])) return bad(400, `bad method "${shown(m[1])}"`);
  if (m[3] !== "HTTP/1.1" && m[3] !== "HTTP/1.0") return bad(505, `${m[3]} is not supported: this proxy speaks HTTP/1.0 and HTTP/1.1`);
  return null;
}

/** Parses a head (the text before the blank line). */
export function parseRequestHead(text: string): HeadResult {
  const lines = text.split("\r\n");
  const lineError = checkRequestLine(lines[0]);
  if (lineError) return lineError;
  const [, method, target, version] = REQUEST_LINE.exec(lines[0])!;
  if (lines.length - 1 > MAX_HTTP_HEADERS) return bad(431, `${lines.length - 1} header fields, over the limit of ${MAX_HTTP_HEADERS}`);
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    if (line.startsWith(" ") || line.startsWith("\t")) return bad(400, "obsolete header line folding is not accepted");
    const m = FIELD.exec(line);
    if (!m || !TOKEN.test(m[1])) return bad(400, `bad header line "${shown(line)}"`);
    if (!FIELD_VALUE.test(m[2])) return bad(400, `header ${shown(m[1])} has control characters in its value`);
    headers.push([m[1], m[2]]);
  }
  // Two ways of framing a body in one request are the classic request-smuggling shape: refuse them.
  const lengths = new Set(headers.filter(([n]) => n.toLowerCase() === "content-length").map(([, v]) => v));
  const chunked = headers.some(([n]) => n.toLowerCase() === "transfer-encoding");
  if (lengths.size > 1) return bad(400, "conflicting Content-Length headers");
  for (const v of lengths) if (!/^\d{1,15}$/.test(v)) return bad(400, `bad Content-Length "${shown(v)}"`);
  if (lengths.size && chunked) return bad(400, "both Content-Length and Transfer-Encoding");
  return { ok: true, head: { method, target, version, headers } };
}

function bad(status: 400 | 431 | 505, reason: string): HeadResult {
  return { ok: false, status, reason };
}

export type TargetResult = { ok: true; host: string; port: number; authority: string; path: string } | { ok: false; reason: string };

/** `host:port` or `[v6]:port`; the port may be left out only when there is a default. */
export function parseAuthority(authority: string, defaultPort?: number): TargetResult {
  if (authority.includes("@")) return { ok: false, reason: "credentials in the address are not accepted" };
  const m = /^(?:\[([^\]]*)\]|([^:[\]]+))(?::(\d*))?$/.exec(authority);
  if (!m) return { ok: false, reason: `bad address "${shown(authority)}": expected HOST:PORT` };
  const host = m[1] ?? m[2];
  let port = defaultPort;
  if (m[3] !== undefined && m[3] !== "") {
    port = m[3].length <= 5 ? Number(m[3]) : NaN;
    if (!(port >= 1 && port <= 65535)) return { ok: false, reason: `bad port "${shown(m[3])}": outside 1-65535` };
  }
  if (port === undefined) return { ok: false, reason: `"${shown(authority)}" has no port: CONNECT needs HOST:PORT` };
  return { ok: true, host, port, authority, path: "" };
}

/** `http://host[:port][/path][?query]`, the form a client sends to a proxy for http:// URLs. */
export function parseAbsoluteTarget(target: string): TargetResult {
  if (target.startsWith("/") || target === "*") {
    return { ok: false, reason: "this is a proxy: send an absolute URL (GET http://NAME/ HTTP/1.1) or CONNECT NAME:PORT" };
  }
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)([^#]*)/.exec(target);
  if (!m) return { ok: false, reason: `bad request target "${shown(target)}": expected http://NAME[:PORT]/PATH` };
  const scheme = m[1].toLowerCase();
  if (scheme === "https") return { ok: false, reason: "https:// URLs go through CONNECT (clients tunnel TLS themselves: curl and browsers do)" };
  if (scheme !== "http") return { ok: false, reason: `scheme "${shown(scheme)}" is not proxied: only http:// (and CONNECT)` };
  const auth = parseAuthority(m[2], 80);
  if (!auth.ok) return auth;
  const path = m[3] === "" ? "/" : m[3].startsWith("?") ? `/${m[3]}` : m[3];
  return { ...auth, path };
}

/** Hop-by-hop headers (RFC 9110 section 7.6.1) and the proxy's own: none reaches the origin. */
const HOP_BY_HOP = new Set(["connection", "proxy-connection", "keep-alive", "proxy-authorization", "proxy-authenticate"]);

/**
 * The head as the origin server gets it: origin-form request line, Host from the URL, hop-by-hop and
 * proxy headers (and any the client listed in Connection) removed, and `Connection: close`: one
 * request per tunnel, so the proxy never has to find where a response ends.
 */
export function headForOrigin(head: RequestHead, authority: string, path: string): Buffer {
  const named = new Set(head.headers.filter(([n]) => n.toLowerCase() === "connection")
    .flatMap(([, v]) => v.split(",").map((t) => t.trim().toLowerCase())).filter(Boolean));
  const lines = [`${head.method} ${path} ${head.version}`, `Host: ${authority}`];
  for (const [name, value] of head.headers) {
    const n = name.toLowerCase();
    if (n === "host" || HOP_BY_HOP.has(n) || named.has(n)) continue;
    lines.push(`${name}: ${value}`);
  }
  lines.push("Connection: close", "", "");
  return Buffer.from(lines.join("\r\n"), "latin1");
}

const STATUS_TEXT: Record<number, string> = {
  200: "Connection Established", 400: "Bad Request", 403: "Forbidden", 408: "Request Timeout",
  431: "Request Header Fields Too Large", 502: "Bad Gateway", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
};

/**
 * What a refused dial answers. An unknown name is 502, not 404: the proxy, not the origin, failed, and a
 * 404 may be cached by the browser after the peer has come online.
 */
export function statusForDialError(code: DialErrorCode | "failed"): number {
  switch (code) {
    case "denied": return 403;
    case "timeout": return 504;
    case "bad_request": return 400;
    default: return 502;
  }
}

/** The proxy's own answer: the reason in the body and in X-Ember-Reason, never cached, connection closed. */
export function errorResponse(status: number, reason: string, code?: string): Buffer {
  const body = `${reason}\n`;
  const safe = reason.replace(/[^\x20-\x7e]/g, "?").slice(0, 512);
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}`,
    "Content-Type: text/plain; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`,
    "Cache-Control: no-store",
    "Connection: close",
    `X-Ember-Reason: ${safe}`,
    ...(code ? [`X-Ember-Code: ${code}`] : []),
    "", body,
  ];
  return Buffer.from(lines.join("\r\n"), "utf8");
}

export const CONNECT_ESTABLISHED = Buffer.from("HTTP/1.1 200 Connection Established\r\n\r\n", "latin1");
