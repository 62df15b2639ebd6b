// Two processes over loopback UDP, one core each: a sender here and a receiver child (dataplane-udp.ts),
// either plain datagrams, EmberNet-encrypted DATA packets (the receiver parses, replay-checks and opens
// them), or TUN_DATA through the native addon's data plane on both ends. Used by bench/dataplane.ts section 4 and, as the raw session ceiling, by bench/streams.ts.
import { fork } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { TransportCipher } from "../src/crypto/transport.js";
import { writeDataHeader } from "../src/wire/data.js";
import { DATA_HEADER_SIZE, MAX_DATAGRAM, TAG_SIZE } from "../src/wire/constants.js";
import { loadNativeAddon } from "../src/native/addon.js";
import type { DataPlane, NativeAddon } from "../src/native/types.js";

export interface RecvReport { received: number; payloadBytes: number; rejected: number; seconds: number; cpuSeconds: number }

export interface UdpResult { sentPps: number; sentCpuPps: number; report: RecvReport }

const key = randomBytes(32);

/**
 * An IPv4/UDP packet of `size` bytes from 100.64.0.1 to 100.64.0.2 (port 9): what the native mode seals, as a TUN
 * device would hand it over, so the receiving data plane parses and admits it like real TUN traffic.
 */
function ipv4Packet(size: number): Buffer {
  const p = Buffer.alloc(size);
  p[0] = 0x45; p.writeUInt16BE(size, 2); p[8] = 64; p[9] = 17;
  Buffer.from([100, 64, 0, 1, 100, 64, 0, 2]).copy(p, 12);
  p.writeUInt16BE(40000, 20); p.writeUInt16BE(9, 22); p.writeUInt16BE(size - 20, 24);
  return p;
}

export type UdpMode = "plain" | "ember" | "native";

/** A data plane on the sending socket with the receiver as its one peer (100.64.0.2), keys as the receiver's. */
function nativeSender(addon: NativeAddon, sock: Socket, port: number, receiverIndex: number): DataPlane {
  const state = Object.getOwnPropertySymbols(sock).find((k) => k.description === "state symbol")!;
  const fd = (sock as unknown as Record<symbol, { handle: { fd: number } }>)[state].handle.fd;
  const noop = () => {};
  const plane = new addon.DataPlane({ udpFd: fd, overlayIp: "100.64.0.1", onDatagrams: noop, onRelaySend: noop, onDenied: noop, onWant: noop });
  plane.setPeer(1, { overlayIp: "100.64.0.2", endpoint: { host: "127.0.0.1", port }, maxDatagram: MAX_DATAGRAM, inbound: { tcp: [], udp: [], icmp: false } });
  plane.addKeys(1, 1, receiverIndex, key, key);
  return plane;
}

export async function udpRun(mode: UdpMode, size: number, durationMs: number): Promise<UdpResult> {
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
    // Native mode: the addon's tx stage as the daemon runs it for TUN traffic (injectTx: a batch of IP packets
    // per call, sealed in place, sent with GSO or sendmmsg), minus the TUN device's read(). Unconnected: it
    // sends to the peer's endpoint like the daemon's socket.
    const addon = mode === "native" ? loadNativeAddon().addon : undefined;
    if (mode === "native" && !addon) throw new Error("native mode needs the addon (npm run build:native)");
    const plane = addon ? nativeSender(addon, sock, port, receiverIndex) : undefined;
    if (!plane) {
      sock.connect(port, "127.0.0.1");
      await new Promise<void>((r) => sock.once("connect", () => r()));
    }
    const tx = new TransportCipher(key);
    const payload = randomBytes(size);
    const ipBatch: Uint8Array[] = Array.from({ length: 64 }, () => ipv4Packet(size));
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
        if (plane) {
          plane.injectTx(ipBatch);
          sent = plane.stats().udpTxPackets;
          if (performance.now() < end && sent < 50_000_000) setImmediate(pump);
          else resolve();
          return;
        }
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
    plane?.close();
    sock.close();
    return { sentPps: sent / (durationMs / 1000), sentCpuPps: sent / ((cpu.user + cpu.system) / 1e6), report };
  } finally {
    if (child.exitCode === null) child.kill();
  }
}

