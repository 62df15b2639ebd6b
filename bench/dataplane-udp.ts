// Child process for bench/dataplane.ts section 4: the RECEIVING end of a loopback UDP flow, one core.
// The parent tells it the mode (plain or ember), the key and the payload size over IPC; it binds a
// socket, reports the port, counts (and in ember mode parses, replay-checks and decrypts) every
// datagram, and reports its counts when the parent says the flow is over.
import { createSocket } from "node:dgram";
import { TransportCipher, ReplayWindow } from "../src/crypto/transport.js";
import { isDataPacket, readCounter, readReceiverIndex, dataCiphertext } from "../src/wire/data.js";
import { MAX_DATAGRAM } from "../src/wire/constants.js";

interface Start { mode: "plain" | "ember"; keyHex: string; receiverIndex: number }

const send = (m: unknown) => process.send!(m);

process.on("message", (msg: { start?: Start; done?: true }) => {
  if (msg.start) start(msg.start);
});

function start({ mode, keyHex, receiverIndex }: Start): void {
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
