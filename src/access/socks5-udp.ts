// SOCKS5 UDP ASSOCIATE (RFC 1928 section 7). The relay is a UDP socket on the address the client's
// control connection came in on (127.0.0.1). It takes datagrams only from the client's IP (and from
// the port the request named, or else the first port that sends), and only whole ones (FRAG 0) to
// names (ATYP 0x03). Each (name, port) gets one mesh flow that carries the datagrams framed; replies
// come back with the client's own request header, so the client sees the name it sent. A flow idle
// for udpIdleMs closes; the association ends when the control connection closes.
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { isIPv6 } from "node:net";
import { closeWith } from "./client-io.js";
import { describeTarget, dialWithin } from "./dial.js";
import { resolveName, shown } from "./names.js";
import type { ClientConn, ProxyContext } from "./proxy-context.js";
import { ATYP_DOMAIN, encodeReply, encodeUdpReply, parseUdpRequest, REP, type SocksAddress } from "./socks5-wire.js";
import type { DatagramFlow } from "./udp-flow.js";
import { UdpFlowTable } from "./udp-flow-table.js";

export function startUdpAssociation(conn: ClientConn, req: SocksAddress, ctx: ProxyContext): void {
  const { socket } = conn;
  const clientIp = unmapped(socket.remoteAddress ?? "");
  const bindHost = unmapped(socket.localAddress ?? "127.0.0.1");
  // The port the client said it will send from; 0 means "not known yet": the first sender fixes it.
  let clientPort = req.port;
  let closed = false;
  const udp: UdpSocket = createSocket(isIPv6(bindHost) ? "udp6" : "udp4");
  const scope = { conn: conn.id, from: conn.from };

  const end = () => {
    if (closed) return;
    closed = true;
    table.closeAll();
    try { udp.close(); } catch { /* not bound yet */ }
    ctx.log.debug(scope, "socks5: udp association ended");
  };
  socket.once("close", end);

  udp.on("error", (err: NodeJS.ErrnoException) => {
    if (closed) return;
    ctx.log.warn({ ...scope, err: err.code ?? err.message }, "socks5: udp relay socket failed");
    ctx.counters.inc("failed");
    closeWith(socket, encodeReply(REP.GENERAL_FAILURE));
    end();
  });

  const table = new UdpFlowTable({
    max: ctx.maxUdpFlows, idleMs: ctx.udpIdleMs, counters: ctx.counters, log: ctx.log, prefix: "socks5",
    fields: (_key, to) => ({ ...scope, to }),
  });

  const open = (key: string, host: string, port: number, header: Buffer): DatagramFlow | null => {
    const reply = Buffer.from(header); // replies carry the client's own request header: it sees the name it sent
    return table.open(key, () => {
      const r = resolveName(host, port, "udp", ctx.directory);
      if (!r.ok) {
        ctx.counters.inc("udp_drop_resolve");
        ctx.log.warn({ ...scope, asked: `${shown(host)}:${port}`, code: r.code, reason: r.reason }, "socks5: udp destination does not resolve");
        table.hold(key);
        return null;
      }
      const stream = dialWithin(ctx.dialer, r.target, ctx.dialTimeoutMs);
      stream.then(() => ctx.counters.inc("dialled"), () => undefined);
      return { stream, to: describeTarget(r.target) };
    }, (payload, done) => {
      if (closed) return done();
      udp.send(encodeUdpReply(reply, payload), clientPort, clientIp, () => done());
    });
  };

  udp.on("message", (msg: Buffer, from: RemoteInfo) => {
    if (closed) return;
    if (unmapped(from.address) !== clientIp || (clientPort !== 0 && from.port !== clientPort)) {
      ctx.counters.inc("udp_drop_foreign_source");
      return;
    }
    const parsed = parseUdpRequest(msg);
    if (!parsed.ok) {
      ctx.counters.inc("udp_drop_malformed");
      ctx.log.debug({ ...scope, reason: parsed.reason }, "socks5: malformed udp datagram dropped");
      return;
    }
    const d = parsed.value;
    // Reassembly is optional in RFC 1928 and nobody fragments in practice: drop fragments.
    if (d.frag !== 0) return ctx.counters.inc("udp_drop_fragment");
    if (d.atyp !== ATYP_DOMAIN) return ctx.counters.inc("udp_drop_address_type");
    if (clientPort === 0) clientPort = from.port;
    ctx.counters.inc("udp_datagrams_in");
    const key = `${d.host.toLowerCase()}:${d.port}`;
    const flow = table.get(key) ?? open(key, d.host, d.port, d.header);
    flow?.send(d.data);
  });

  udp.bind(0, bindHost, () => {
    if (closed) return void udp.close();
    const port = udp.address().port;
    ctx.log.debug({ ...scope, relay: `${bindHost}:${port}` }, "socks5: udp association");
    socket.write(encodeReply(REP.SUCCEEDED, { host: bindHost, port }));
    // Nothing more is expected on the control connection; read it only to see it close.
    socket.on("data", () => undefined);
    socket.once("end", () => socket.destroy());
    socket.resume();
  });
}

/** "::ffff:127.0.0.1" and "127.0.0.1" are the same client. */
function unmapped(addr: string): string {
  return addr.startsWith("::ffff:") ? addr.slice(7) : addr;
}
