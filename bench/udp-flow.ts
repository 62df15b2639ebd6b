// Two processes over loopback UDP, one core each: a sender here and a receiver child (dataplane-udp.ts),
// either plain datagrams or EmberNet-encrypted DATA packets (the receiver parses, replay-checks and opens
// them). Used by bench/dataplane.ts section 4 and, as the raw session ceiling, by bench/streams.ts.
import { fork } from "node:child_process";
import { createSocket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { TransportCipher } from "../src/crypto/transport.js";
import { writeDataHeader } from "../src/wire/data.js";
import { DATA_HEADER_SIZE, TAG_SIZE } from "../src/wire/constants.js";

export interface RecvReport { received: number; payloadBytes: number; rejected: number; seconds: number; cpuSeconds: number }

export interface UdpResult { sentPps: number; sentCpuPps: number; report: RecvReport }

const key = randomBytes(32);

export async function udpRun(mode: "plain" | "ember", size: number, durationMs: number): Promise<UdpResult> {
  const child = fork(join(import.meta.dirname, "dataplane-udp.ts"), [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  try {
    const receiverIndex = 0x0badcafe;
    const keyHex = key.toString("hex");
    const port = await new Promise<number>((resolve, reject) => {
      child.once("message", (m: { port?: number }) => (m.port ? resolve(m.port) : reject(new Error("no port"))));
      child.once("exit", (c) => reject(new Error(`receiver exited ${c}`)));
      child.send({ start: { mode, keyHex, receiverIndex } });
    });
    const sock = createSocket({ type: "udp4", sendBufferSize: 8 << 20 });
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    sock.connect(port, "127.0.0.1");
    await new Promise<void>((r) => sock.once("connect", () => r()));
    const tx = new TransportCipher(key);
    const payload = randomBytes(size);
    const plainPkt = Buffer.from(payload);
    let counter = 0;
    let sent = 0;
    const cpu0 = process.cpuUsage();
    const end = performance.now() + durationMs;
    const BATCH = 32;
    // Send in batches and yield to the event loop between them so libuv can flush; each encrypted
    // packet gets its own buffer (dgram holds the buffer until the kernel took it).
    await new Promise<void>((resolve) => {
      const pump = () => {
        for (let i = 0; i < BATCH; i++) {
          if (mode === "ember") {
            const pkt = Buffer.allocUnsafe(DATA_HEADER_SIZE + size + TAG_SIZE);
            writeDataHeader(pkt, receiverIndex, counter);
            tx.seal(counter++, payload, pkt, DATA_HEADER_SIZE);
            sock.send(pkt);
          } else {
            sock.send(plainPkt);
          }
          sent++;
        }
        if (performance.now() < end && sent < 50_000_000) setImmediate(pump);
        else resolve();
      };
      pump();
    });
    const cpu = process.cpuUsage(cpu0);
    await new Promise((r) => setTimeout(r, 300)); // let the receiver drain its socket buffer
    const report = await new Promise<RecvReport>((resolve) => {
      child.once("message", (m: RecvReport) => resolve(m));
      child.send({ done: true });
    });
    sock.close();
    return { sentPps: sent / (durationMs / 1000), sentCpuPps: sent / ((cpu.user + cpu.system) / 1e6), report };
  } finally {
    if (child.exitCode === null) child.kill();
  }
}

