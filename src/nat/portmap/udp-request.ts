// One request/response exchange over UDP with the gateway, retransmitted with a doubling timeout
// (RFC 6886 3.1 and RFC 6887 8.1.1 both ask for this). NAT-PMP and PCP use it; each brings its decoder.
import { createSocket, type Socket } from "node:dgram";
import { PMP_FIRST_TIMEOUT_MS, PMP_PORT, PMP_TRIES } from "./constants.js";
import { PortmapError, type PortmapProtocol } from "./errors.js";

export interface UdpExchange {
  protocol: PortmapProtocol;
  gateway: string;
  request: Buffer;
  /** Returns the decoded answer, or undefined for a datagram that is not the answer (keep waiting). Throws for a bad answer. */
  accept(msg: Buffer): unknown;
  tries?: number;
  firstTimeoutMs?: number;
  port?: number;
}

/** A socket connected to the gateway: only its datagrams reach us, and its local address is ours on that LAN. */
export async function gatewaySocket(gateway: string, port = PMP_PORT): Promise<Socket> {
  const sock = createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.connect(port, gateway, () => { sock.off("error", reject); resolve(); });
  });
  return sock;
}

export async function exchange<T>(ex: UdpExchange): Promise<T> {
  const sock = await gatewaySocket(ex.gateway, ex.port);
  try {
    return await exchangeOn<T>(sock, ex);
  } finally {
    sock.close();
  }
}

/** On a socket already connected to the gateway (PCP needs its local address inside the request). */
export function exchangeOn<T>(sock: Socket, ex: UdpExchange): Promise<T> {
  const tries = ex.tries ?? PMP_TRIES;
  let wait = ex.firstTimeoutMs ?? PMP_FIRST_TIMEOUT_MS;
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let sent = 0;
    const done = (fn: () => void) => { clearTimeout(timer); sock.off("message", onMessage); sock.off("error", onError); fn(); };
    const onMessage = (msg: Buffer) => {
      try {
        const v = ex.accept(msg);
        if (v !== undefined) done(() => resolve(v as T));
      } catch (err) { done(() => reject(err)); }
    };
    // ICMP port unreachable arrives as ECONNREFUSED on a connected socket: nothing listens there.
    const onError = (err: Error) => done(() => reject(new PortmapError(ex.protocol, "unavailable", `${ex.gateway}: ${err.message}`)));
    const send = () => {
      if (sent >= tries) return done(() => reject(new PortmapError(ex.protocol, "timeout", `no answer from ${ex.gateway} after ${tries} tries`)));
      sent++;
      sock.send(ex.request);
      timer = setTimeout(send, wait);
      wait *= 2;
    };
    sock.on("message", onMessage);
    sock.on("error", onError);
    send();
  });
}
