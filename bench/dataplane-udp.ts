// Child process for bench/dataplane.ts section 4: the RECEIVING end of a loopback UDP flow, one core.
// The parent tells it the mode (plain or ember), the key and the payload size over IPC; it binds a
// socket, reports the port, counts (and in ember mode parses, replay-checks and decrypts) every
// datagram, and reports its counts when the parent says the flow is over.
import { createSocket } from "node:dgram";
import { TransportCipher, ReplayWindow } from "../src/crypto/transport.js";
import { isDataPacket, readCounter, readReceiverIndex, dataCiphertext } from "../src/wire/data.js";
import { MAX_DATAGRAM } from "../src/wire/constants.js";
import { loadNativeAddon } from "../src/native/addon.js";

interface Start { mode: "plain" | "ember" | "native"; keyHex: string; receiverIndex: number }

const send = (m: unknown) => process.send!(m);

process.on("message", (msg: { start?: Start; done?: true }) => {
  if (msg.start) start(msg.start);
});

function start({ mode, keyHex, receiverIndex }: Start): void {
  if (mode === "native") return startNative(Buffer.from(keyHex, "hex"), receiverIndex);
  const sock = createSocket({ type: "udp4", recvBufferSize: 8 << 20 });
  const keys = new Map([[receiverIndex, { cipher: new TransportCipher(Buffer.from(keyHex, "hex")), replay: new ReplayWindow() }]]);
  const scratch = new Uint8Array(MAX_DATAGRAM);
  let received = 0, payloadBytes = 0, rejected = 0, first = 0, last = 0;
  const cpu0 = process.cpuUsage();
  sock.on("message", (p: Buffer) => {
    if (mode === "ember") {
      if (!isDataPacket(p)) { rejected++; return; }
      const k = keys.get(readReceiverIndex(p));
      if (!k) { rejected++; return; }
      const ctr = readCounter(p);
      if (!k.replay.check(ctr)) { rejected++; return; }
      const n = k.cipher.open(ctr, dataCiphertext(p), scratch);
      if (n < 0) { rejected++; return; }
      k.replay.update(ctr);
      payloadBytes += n;
    } else {
      payloadBytes += p.length;
    }
    if (received++ === 0) first = performance.now();
    last = performance.now();
  });
  process.on("message", (m: { done?: true }) => {
    if (!m.done) return;
    const cpu = process.cpuUsage(cpu0);
    send({ received, payloadBytes, rejected, seconds: (last - first) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6 });
    sock.close();
    setImmediate(() => process.exit(0));
  });
  sock.bind(0, "127.0.0.1", () => send({ port: sock.address().port }));
}

/**
 * Native mode: the addon's data plane reads the socket (recvmmsg, GRO), authenticates, replay-checks and decrypts
 * each TUN_DATA packet on its own thread and admits the IPv4 packet inside through the firewall; with no TUN device
 * it counts it as no_tun, which is the count of packets fully received. Polled every 10 ms for first and last.
 */
function startNative(key: Buffer, receiverIndex: number): void {
  const addon = loadNativeAddon().addon!;
  const sock = createSocket({ type: "udp4", recvBufferSize: 8 << 20 });
  sock.bind(0, "127.0.0.1", () => {
    const state = Object.getOwnPropertySymbols(sock).find((k) => k.description === "state symbol")!;
    const handle = (sock as unknown as Record<symbol, { handle: { fd: number; recvStop(): number } }>)[state].handle;
    handle.recvStop();
    let rejected = 0;
    const plane = new addon.DataPlane({
      udpFd: handle.fd, overlayIp: "100.64.0.2",
      onDatagrams: (ps) => { rejected += ps.length; }, onRelaySend: () => {}, onDenied: () => {}, onWant: () => {},
    });
    plane.setPeer(1, { overlayIp: "100.64.0.1", endpoint: null, maxDatagram: MAX_DATAGRAM, inbound: { tcp: [], udp: [[1, 65535]], icmp: false } });
    plane.addKeys(1, receiverIndex, 1, key, key);
    plane.start();
    const cpu0 = process.cpuUsage();
    let received = 0, first = 0, last = 0;
    const poll = setInterval(() => {
      const n = plane.stats().drops.no_tun ?? 0;
      if (n > received) { if (received === 0) first = performance.now(); last = performance.now(); received = n; }
    }, 10);
    process.on("message", (m: { done?: true }) => {
      if (!m.done) return;
      clearInterval(poll);
      const st = plane.stats();
      received = st.drops.no_tun ?? 0;
      const cpu = process.cpuUsage(cpu0);
      const bad = Object.entries(st.drops).filter(([k]) => k !== "no_tun").reduce((a, [, v]) => a + v, 0);
      send({ received, payloadBytes: 0, rejected: rejected + bad, seconds: Math.max(0.001, (last - first) / 1000), cpuSeconds: (cpu.user + cpu.system) / 1e6 });
      plane.close();
      sock.close();
      setImmediate(() => process.exit(0));
    });
    send({ port: sock.address().port });
  });
}
