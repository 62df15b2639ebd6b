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
import { UDP_FAILED_HOLD_MS } from "./limits.js";
import { resolveName, shown } from "./names.js";
import type { ClientConn, ProxyContext } from "./proxy-context.js";
import { ATYP_DOMAIN, encodeReply, encodeUdpReply, parseUdpRequest, REP, type SocksAddress } from "./socks5-wire.js";
import { DatagramFlow } from "./udp-flow.js";

interface Entry { flow: DatagramFlow; header: Buffer }

export function startUdpAssociation(conn: ClientConn, req: SocksAddress, ctx: ProxyContext): void {
  const { socket } = conn;
  const clientIp = unmapped(socket.remoteAddress ?? "");
  const bindHost = unmapped(socket.localAddress ?? "127.0.0.1");
  // The port the client said it will send from; 0 means "not known yet": the first sender fixes it.
  let clientPort = req.port;
  const flows = new Map<string, Entry>();
  /** Destinations whose resolution or dial failed recently: not retried per datagram. */
  const held = new Map<string, number>();
  let closed = false;
  const udp: UdpSocket = createSocket(isIPv6(bindHost) ? "udp6" : "udp4");
  const scope = { conn: conn.id, from: conn.from };

  const end = () => {
    if (closed) return;
    closed = true;
    for (const e of [...flows.values()]) e.flow.close();
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

  const hold = (key: string) => {
    if (held.size >= ctx.maxUdpFlows) held.delete(held.keys().next().value as string);
    held.set(key, Date.now() + UDP_FAILED_HOLD_MS);
  };

  const open = (key: string, host: string, port: number, header: Buffer): Entry | null => {
    const until = held.get(key);
    if (until !== undefined && Date.now() < until) {
      ctx.counters.inc("udp_drop_dial_failed");
      return null;
    }
    held.delete(key);
    if (flows.size >= ctx.maxUdpFlows) {
      ctx.counters.inc("udp_drop_flow_limit");
      return null;
    }
    const r = resolveName(host, port, "udp", ctx.directory);
    if (!r.ok) {
      ctx.counters.inc("udp_drop_resolve");
      ctx.log.warn({ ...scope, asked: `${shown(host)}:${port}`, code: r.code, reason: r.reason }, "socks5: udp destination does not resolve");
      hold(key);
      return null;
    }
    const stream = dialWithin(ctx.dialer, r.target, ctx.dialTimeoutMs);
    stream.then(() => ctx.counters.inc("dialled"), () => undefined);
    ctx.counters.inc("udp_flows");
    const to = describeTarget(r.target);
    const entry: Entry = { header: Buffer.from(header), flow: null as unknown as DatagramFlow };
    entry.flow = new DatagramFlow({
      stream,
      idleMs: ctx.udpIdleMs,
      deliver: (payload, done) => {
        if (closed) return done();
        ctx.counters.inc("udp_datagrams_out");
        udp.send(encodeUdpReply(entry.header, payload), clientPort, clientIp, () => done());
      },
      onDrop: (why) => ctx.counters.inc(`udp_drop_${why}`),
      onClose: (why) => {
        if (flows.get(key) === entry) flows.delete(key);
        if (why.dialCode) {
          ctx.counters.inc(why.dialCode);
          hold(key);
          ctx.log.warn({ ...scope, to, code: why.dialCode, reason: why.reason }, "socks5: udp flow refused");
        } else if (why.framingError) {
          ctx.counters.inc("udp_framing_errors");
          ctx.log.warn({ ...scope, to, reason: why.reason }, "socks5: udp flow closed");
        } else {
          if (why.idle) ctx.counters.inc("udp_flows_idle_closed");
          ctx.log.debug({ ...scope, to, reason: why.reason }, "socks5: udp flow closed");
        }
      },
    });
    flows.set(key, entry);
    return entry;
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
    const entry = flows.get(key) ?? open(key, d.host, d.port, d.header);
    entry?.flow.send(d.data);
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
