// The HTTP proxy front end. `CONNECT NAME:PORT` answers 200 and becomes a raw tunnel (https, or any
// TCP protocol); an absolute-form request (`GET http://NAME[:PORT]/path`, what clients send a proxy
// for http:// URLs) is dialled at NAME:PORT (80 by default) and forwarded with its head rewritten
// for the origin (http-head.ts) and `Connection: close`, then the rest is piped raw. Refusals answer
// with a status for their reason and the reason itself in the body and in X-Ember-Reason.
import { closeWith, HandshakeBuffer, startTunnel } from "./client-io.js";
import { describeTarget, resolveAndDial } from "./dial.js";
import {
  checkRequestLine, CONNECT_ESTABLISHED, errorResponse, headForOrigin, parseAbsoluteTarget, parseAuthority, parseRequestHead,
  statusForDialError,
} from "./http-head.js";
import { MAX_HTTP_HEAD } from "./limits.js";
import { shown } from "./names.js";
import type { ClientConn, ProxyContext, ProxyCounter } from "./proxy-context.js";
import { dialFailure } from "./types.js";

const CRLF = Buffer.from("\r\n");
const END_OF_HEAD = Buffer.from("\r\n\r\n");

export function handleHttp(conn: ClientConn, initial: Buffer, ctx: ProxyContext): void {
  const { socket } = conn;
  const hb = new HandshakeBuffer(MAX_HTTP_HEAD);
  let done = false;
  // Scan positions, so a client sending one byte at a time costs linear work, not quadratic.
  let lineChecked = false;
  let scanned = 0;

  const refuse = (counter: ProxyCounter, status: number, reason: string) => {
    done = true;
    conn.handshakeDone();
    ctx.counters.inc(counter);
    ctx.log.warn({ conn: conn.id, from: conn.from, status, reason }, "http proxy: refused");
    closeWith(socket, errorResponse(status, reason));
  };
  conn.onDeadline(() => closeWith(socket, errorResponse(408, "the request head did not arrive in time")));

  const onData = (chunk: Buffer) => {
    if (done) return;
    hb.append(chunk);
    const view = hb.view();
    if (!lineChecked) {
      const eol = view.indexOf(CRLF);
      if (eol >= 0) {
        lineChecked = true;
        const err = checkRequestLine(view.toString("latin1", 0, eol));
        if (err && !err.ok) return refuse(err.status === 505 ? "http_version_not_supported" : "http_bad_request", err.status, err.reason);
      } else if (!/^[\x20-\x7e]*\r?$/.test(view.toString("latin1", scanned))) {
        // Binary bytes (a TLS ClientHello, SOCKS4) before any line end: no request line will come.
        return refuse("http_bad_request", 400, "not an HTTP request (unprintable bytes in the request line)");
      }
    }
    const end = view.indexOf(END_OF_HEAD, Math.max(0, scanned - 3));
    if (end < 0) {
      scanned = view.length;
      if (hb.overflowed || view.length >= MAX_HTTP_HEAD) {
        refuse("http_header_too_large", 431, `request head over ${MAX_HTTP_HEAD} bytes`);
      }
      return;
    }
    done = true;
    socket.off("data", onData);
    socket.pause();
    conn.handshakeDone();
    const parsed = parseRequestHead(view.toString("latin1", 0, end));
    if (!parsed.ok) {
      const counter = parsed.status === 431 ? "http_header_too_large" : parsed.status === 505 ? "http_version_not_supported" : "http_bad_request";
      return refuse(counter, parsed.status, parsed.reason);
    }
    const head = parsed.head;
    const early = hb.rest(end + END_OF_HEAD.length);
    if (head.method === "CONNECT") {
      const t = parseAuthority(head.target);
      if (!t.ok) return refuse("http_bad_request", 400, t.reason);
      ctx.counters.inc("http_connect");
      return dialThen(conn, ctx, t.host, t.port, `CONNECT ${shown(head.target)}`, (stream) => {
        socket.write(CONNECT_ESTABLISHED);
        startTunnel(socket, stream, early);
      });
    }
    const t = parseAbsoluteTarget(head.target);
    if (!t.ok) return refuse("http_bad_request", 400, t.reason);
    ctx.counters.inc("http_forward");
    dialThen(conn, ctx, t.host, t.port, `${head.method} ${shown(head.target)}`, (stream) => {
      stream.write(headForOrigin(head, t.authority, t.path));
      startTunnel(socket, stream, early);
    });
  };
  socket.on("data", onData);
  onData(initial);
}

function dialThen(conn: ClientConn, ctx: ProxyContext, host: string, port: number, asked: string,
  then: (stream: import("node:stream").Duplex) => void): void {
  const { socket } = conn;
  resolveAndDial(host, port, "tcp", ctx.directory, ctx.dialer, ctx.dialTimeoutMs).then(({ target, why, stream }) => {
    ctx.counters.inc("dialled");
    if (socket.destroyed) return void stream.destroy();
    ctx.log.debug({ conn: conn.id, from: conn.from, asked, to: describeTarget(target), why }, "http proxy: connected");
    then(stream);
  }, (err: unknown) => {
    const f = dialFailure(err);
    const status = statusForDialError(f.code);
    ctx.counters.inc(f.code);
    ctx.log.warn({ conn: conn.id, from: conn.from, asked, code: f.code, reason: f.reason, status }, "http proxy: dial refused");
    closeWith(socket, errorResponse(status, f.reason, f.code));
  });
}
