// Two (or more) session devices in one process, wired by an in-memory "network" that can tap, drop,
// replay and rewrite datagrams: for hostile-input and certificate tests at the device boundary.
import { Verifier, type CaMaterial } from "../../src/pki/index.js";
import { Device, type DeviceOptions } from "../../src/session/device.js";
import type { Endpoint } from "../../src/addr/endpoint.js";
import { generateStaticKeyPair } from "../../src/session/crypto-adapter.js";
import type { SessionTimers } from "../../src/session/timers.js";
import type { TestLeaf } from "./pki.js";

export const silentLog = { info() {}, warn() {}, debug() {} };

export interface Wire {
  from: Endpoint;
  to: Endpoint;
  data: Buffer;
}

export class MemoryNet {
  readonly devices = new Map<string, Device>();
  readonly sent: Wire[] = [];
  /** Return false to drop a datagram in flight. */
  filter: (w: Wire) => boolean = () => true;
  logs: { level: string; obj: any; msg?: string }[] = [];

  addr(name: string): Endpoint {
    return { kind: "udp", host: "127.0.0.1", port: 1000 + [...this.devices.keys()].indexOf(name) };
  }

  add(name: string, ca: CaMaterial, leaf: TestLeaf, opts: {
    verifier?: Verifier; timers?: Partial<SessionTimers>; chain?: Uint8Array[];
    canSend?: DeviceOptions["canSend"]; onWritable?: DeviceOptions["onWritable"]; peerCertificate?: DeviceOptions["peerCertificate"];
  } = {}): Device {
    const port = 1000 + this.devices.size;
    const self: Endpoint = { kind: "udp", host: "127.0.0.1", port };
    const log = (level: string) => (obj: object, msg?: string) => this.logs.push({ level, obj: { ...obj, device: name }, msg });
    const dev = new Device({
      local: { certChainDer: opts.chain ?? [leaf.der, ca.intermediateDer], certPrivateKey: leaf.keys.privateKey, ...generateStaticKeyPair() },
      verifier: opts.verifier ?? new Verifier({ bundlePem: ca.bundlePem }),
      log: { info: log("info"), warn: log("warn"), debug: log("debug") },
      timers: { tickMs: 50, ...opts.timers },
      canSend: opts.canSend,
      onWritable: opts.onWritable,
      peerCertificate: opts.peerCertificate,
      send: (to, data) => {
        const w: Wire = { from: self, to, data: Buffer.from(data) };
        this.sent.push(w);
        if (this.sent.length > 10_000) this.sent.splice(0, 5_000);
        if (!this.filter(w)) return;
        setImmediate(() => this.deliver(w));
      },
    });
    this.devices.set(name, dev);
    return dev;
  }

  deliver(w: Wire): void {
    if (w.to.kind !== "udp") return;
    const name = [...this.devices.keys()][w.to.port - 1000];
    this.devices.get(name)?.receive(w.data, w.from);
  }

  /** Connects a and b as persistent peers of each other. */
  link(a: string, b: string): void {
    this.devices.get(a)!.addPeer(b, this.addr(b));
    this.devices.get(b)!.addPeer(a, this.addr(a));
  }

  stop(): void {
    for (const d of this.devices.values()) d.stop();
  }
}

export function drops(dev: Device, reason: string): number {
  return dev.drops.get(reason) ?? 0;
}
