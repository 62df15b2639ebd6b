// The SOCKS5 front end (RFC 1928). Authentication: NO AUTH only (the listener is loopback-only; the
// mesh identity is the node's). Commands: CONNECT and UDP ASSOCIATE to names (ATYP 0x03); IPv4 and
// IPv6 destinations are refused with 0x08, because mesh peers have names, not addresses here (clients
// must let the proxy resolve: socks5h://, curl --socks5-hostname); BIND is refused with 0x07. A
// refused dial is answered with the reply code for its reason, and the reason itself goes to the log.
import { closeWith, HandshakeBuffer, startTunnel } from "./client-io.js";
import { describeTarget, resolveAndDial } from "./dial.js";
import { shown } from "./names.js";
import type { ClientConn, ProxyContext, ProxyCounter } from "./proxy-context.js";
import {
  ATYP_DOMAIN, CMD_BIND, CMD_CONNECT, CMD_UDP_ASSOCIATE, describeReply, encodeReply, METHOD_NO_AUTH, METHOD_NONE_ACCEPTABLE,
  parseGreeting, parseRequest, replyForDialError, REP, SOCKS_VERSION,
} from "./socks5-wire.js";
import { startUdpAssociation } from "./socks5-udp.js";
import { dialFailure } from "./types.js";

/** A greeting (at most 257 bytes) and a request (at most 262) fit with room to spare. */
const MAX_SOCKS_HANDSHAKE = 1024;

export function handleSocks5(conn: ClientConn, initial: Buffer, ctx: ProxyContext): void {
  const { socket } = conn;
  const hb = new HandshakeBuffer(MAX_SOCKS_HANDSHAKE);
  let stage: "greeting" | "request" | "done" = "greeting";

  const refuse = (counter: ProxyCounter, reason: string, last?: Buffer) => {
    stage = "done";
    conn.handshakeDone();
    ctx.counters.inc(counter);
    ctx.log.warn({ conn: conn.id, from: conn.from, reason }, "socks5: refused");
    closeWith(socket, last);
  };

  const advance = () => {
    if (stage === "greeting") {
      const g = parseGreeting(hb.view());
      if (g.kind === "more") return checkOverflow();
      if (g.kind === "bad") return refuse("socks_bad_greeting", g.reason, Buffer.from([SOCKS_VERSION, METHOD_NONE_ACCEPTABLE]));
      if (!g.methods.includes(METHOD_NO_AUTH)) {
        const offered = g.methods.map((m) => `0x${m.toString(16).padStart(2, "0")}`).join(", ");
        return refuse("socks_no_acceptable_method", `client offers methods ${offered}; only 0x00 (no authentication) is served`,
          Buffer.from([SOCKS_VERSION, METHOD_NONE_ACCEPTABLE]));
      }
      socket.write(Buffer.from([SOCKS_VERSION, METHOD_NO_AUTH]));
      hb.consume(g.size);
      stage = "request";
    }
    if (stage === "request") {
      const r = parseRequest(hb.view());
      if (r.kind === "more") return checkOverflow();
      if (r.kind === "bad") {
        const counter = r.reply === REP.ADDRESS_TYPE_NOT_SUPPORTED ? "socks_unsupported_address" : "socks_bad_request";
        return refuse(counter, r.reason, encodeReply(r.reply ?? REP.GENERAL_FAILURE));
      }
      if (r.cmd === CMD_BIND) return refuse("socks_unsupported_command", "BIND is not supported", encodeReply(REP.COMMAND_NOT_SUPPORTED));
      if (r.cmd !== CMD_CONNECT && r.cmd !== CMD_UDP_ASSOCIATE) {
        return refuse("socks_unsupported_command", `command ${r.cmd} is not one RFC 1928 defines`, encodeReply(REP.COMMAND_NOT_SUPPORTED));
      }
      // UDP ASSOCIATE's address is the client's own (usually 0.0.0.0:0), so only CONNECT needs a name.
      if (r.cmd === CMD_CONNECT && r.atyp !== ATYP_DOMAIN) {
        return refuse("socks_unsupported_address",
          `destination ${r.host} is an IP address: mesh peers are reached by name; let the proxy resolve (socks5h://, curl --socks5-hostname)`,
          encodeReply(REP.ADDRESS_TYPE_NOT_SUPPORTED));
      }
      stage = "done";
      socket.off("data", onData);
      socket.pause();
      conn.handshakeDone();
      const early = hb.rest(r.size);
      if (r.cmd === CMD_UDP_ASSOCIATE) {
        ctx.counters.inc("socks_udp_associate");
        return startUdpAssociation(conn, r, ctx);
      }
      ctx.counters.inc("socks_connect");
      connectTo(conn, r.host, r.port, early, ctx);
    }
  };

  const checkOverflow = () => {
    if (hb.overflowed) refuse("socks_handshake_too_large", `handshake over ${MAX_SOCKS_HANDSHAKE} bytes`);
  };

  const onData = (chunk: Buffer) => {
    if (stage === "done") return;
    hb.append(chunk);
    advance();
  };
  socket.on("data", onData);
  onData(initial);
}

function connectTo(conn: ClientConn, host: string, port: number, early: Buffer, ctx: ProxyContext): void {
  const { socket } = conn;
  const asked = `${shown(host)}:${port}`;
  resolveAndDial(host, port, "tcp", ctx.directory, ctx.dialer, ctx.dialTimeoutMs).then(({ target, why, stream }) => {
    ctx.counters.inc("dialled");
    if (socket.destroyed) return void stream.destroy();
    ctx.log.debug({ conn: conn.id, from: conn.from, asked, to: describeTarget(target), why }, "socks5: connected");
    socket.write(encodeReply(REP.SUCCEEDED));
    startTunnel(socket, stream, early);
  }, (err: unknown) => {
    const f = dialFailure(err);
    const rep = replyForDialError(f.code);
    ctx.counters.inc(f.code);
    ctx.log.warn({ conn: conn.id, from: conn.from, asked, code: f.code, reason: f.reason, reply: describeReply(rep) }, "socks5: connect refused");
    closeWith(socket, encodeReply(rep));
  });
}
