// The node daemon: one UDP socket, the session device, the control socket. Later parts (coordination
// client, path discovery, relay, streams) plug in here; each stays in its own module.
import { createSocket, type Socket } from "node:dgram";
import pino from "pino";
import { readBoundedFile, Verifier } from "../pki/index.js";
import { Device } from "../session/device.js";
import { aead } from "../crypto/aead.js";
import { describeEndpoint, type Endpoint } from "../session/endpoint.js";
import type { SessionTimers } from "../session/timers.js";
import { isStunPacket } from "../session/crypto-adapter.js";
import type { NodeConfig } from "./config.js";
import { ControlServer } from "./control.js";
import { loadCredentials, type NodeCredentials } from "./identity.js";
import { localAddresses } from "./interfaces.js";
import { Mesh } from "./mesh.js";
import { StunClient } from "../nat/stun.js";
import { netcheck, type NetcheckReport } from "../nat/netcheck.js";

const DEFAULT_TTL = 64;
/** Bytes queued in libuv for the UDP socket (the kernel buffer was full) before senders are told "full". */
const UDP_SEND_QUEUE_LIMIT = 512 * 1024;
/** A punch packet carries nothing: one byte of a type no peer accepts (it should die in transit anyway). */
const PUNCH_PAYLOAD = Buffer.from([0x1f]);

export interface DaemonOptions {
  config: NodeConfig;
  timers?: Partial<SessionTimers>;
}

export class Daemon {
  readonly log: pino.Logger;
  readonly verifier: Verifier;
  readonly device: Device;
  creds: NodeCredentials;
  private socket?: Socket;
  mesh?: Mesh;
  stun?: StunClient;
  lastNetcheck?: NetcheckReport;
  private control?: ControlServer;
  private udpDrainTimer?: NodeJS.Timeout;
  private readonly startedAt = Date.now();
  /** Mapping behaviour found by netcheck, reported to the coordination server. */
  natType?: string;
  /** Reflexive addresses learnt by STUN on our own socket. */
  reflexive: Endpoint[] = [];
  /** Set when a coordination server drives the peer list (src/node/mesh.ts). */
  relaySend?: (to: Endpoint & { kind: "relay" }, data: Uint8Array) => void;
  /** Extra datagram consumers tried before the session device (STUN responses). */
  readonly datagramHooks: ((msg: Buffer, from: { address: string; port: number }) => boolean)[] = [];

  constructor(readonly opts: DaemonOptions) {
    const cfg = opts.config;
    this.log = pino({ level: cfg.logLevel, base: undefined }, pino.destination(2));
    const bundlePem = readBoundedFile(cfg.bundlePath, "trust bundle");
    this.verifier = new Verifier({ bundlePem });
    this.creds = loadCredentials(cfg.certPath, cfg.keyPath, this.verifier, bundlePem);
    this.device = new Device({
      local: this.creds.local,
      verifier: this.verifier,
      log: this.log,
      timers: opts.timers,
      send: (to, data) => this.sendDatagram(to, data),
      canSend: (to) => this.canSend(to),
    });
    for (const p of cfg.peers) this.device.addPeer(p.name, { kind: "udp", host: p.host, port: p.port });
  }

  get config(): NodeConfig {
    return this.opts.config;
  }

  /** After a rotation: new certificate for future handshakes; live sessions keep their keys. */
  reloadCredentials(): void {
    const cfg = this.opts.config;
    const bundlePem = readBoundedFile(cfg.bundlePath, "trust bundle");
    const fresh = loadCredentials(cfg.certPath, cfg.keyPath, this.verifier, bundlePem, {
      staticPrivate: this.creds.local.staticPrivate, staticPublic: this.creds.local.staticPublic,
    });
    this.creds = fresh;
    this.device.setLocalIdentity(fresh.local);
    this.log.info({ serial: fresh.identity.serial, notAfter: fresh.identity.notAfter.toISOString() }, "certificate rotated");
  }

  /** Where peers may reach us directly: interface addresses on our port, then STUN-reflexive ones. */
  candidates(): Endpoint[] {
    const port = this.socket?.address().port;
    if (!port) return [];
    const out: Endpoint[] = localAddresses(this.opts.config.listenHost).map((host) => ({ kind: "udp" as const, host, port }));
    for (const r of this.reflexive) if (!out.some((e) => e.kind === "udp" && e.host === (r as { host: string }).host && e.port === (r as { port: number }).port)) out.push(r);
    return out;
  }

  get name(): string {
    return this.creds.identity.name;
  }

  async start(): Promise<{ host: string; port: number }> {
    const cfg = this.opts.config;
    const socket = createSocket({ type: cfg.listenHost.includes(":") ? "udp6" : "udp4" });
    this.socket = socket;
    socket.on("message", (msg, rinfo) => {
      if (isStunPacket(msg)) {
        for (const hook of this.datagramHooks) if (hook(msg, rinfo)) return;
        return;
      }
      this.device.receive(msg, { kind: "udp", host: rinfo.address, port: rinfo.port });
    });
    socket.on("error", (err) => this.log.warn({ err: err.message }, "udp socket error"));
    await new Promise<void>((res, rej) => {
      socket.once("error", rej);
      socket.bind(cfg.listenPort, cfg.listenHost, () => { socket.off("error", rej); res(); });
    });
    this.stun = new StunClient(socket);
    this.datagramHooks.push((msg, rinfo) => this.stun!.handle(msg, rinfo as never));
    this.control = new ControlServer(cfg.controlSocket, (m, p) => this.handleControl(m, p));
    await this.control.listen();
    this.device.start();
    if (cfg.coordUrl) {
      this.mesh = new Mesh(this, cfg.coordUrl, cfg.stateDir);
      this.mesh.start();
    }
    const addr = socket.address();
    this.log.info({ name: this.name, identity: this.creds.identity.spiffeId, listen: `${addr.address}:${addr.port}`, control: cfg.controlSocket }, "node up");
    return { host: addr.address, port: addr.port };
  }

  /** Room below the session for another datagram: the UDP socket's send queue, or the relay's buffer. */
  private canSend(to: Endpoint): boolean {
    if (to.kind === "relay") return this.mesh?.relays.get(to.relay)?.writable() ?? false;
    const s = this.socket;
    if (!s || s.getSendQueueSize() < UDP_SEND_QUEUE_LIMIT) return true;
    this.pollUdpDrain();
    return false;
  }

  /** dgram has no "drain" event: while someone waits, look at the send queue every millisecond. */
  private pollUdpDrain(): void {
    if (this.udpDrainTimer) return;
    this.udpDrainTimer = setInterval(() => {
      if (this.socket && this.socket.getSendQueueSize() >= UDP_SEND_QUEUE_LIMIT) return;
      clearInterval(this.udpDrainTimer);
      this.udpDrainTimer = undefined;
      this.device.writableChanged();
    }, 1);
  }

  private sendDatagram(to: Endpoint, data: Uint8Array): void {
    if (to.kind === "udp") {
      this.socket?.send(data, to.port, to.host, (err) => {
        if (err) this.log.debug({ to: describeEndpoint(to), err: err.message }, "udp send failed");
      });
    } else {
      this.relaySend?.(to, data);
    }
  }

  /**
   * Low-TTL punch (docs/nat.md): a packet that leaves our own NAT, creating the mapping towards the peer,
   * but expires before the peer's NAT, so it cannot leave a conntrack entry there that would clash with
   * the peer's own outgoing mapping. Full-TTL probes follow.
   */
  punch(to: Endpoint): void {
    const s = this.socket;
    if (!s || to.kind !== "udp") return;
    try {
      s.setTTL(this.punchTtl);
      s.send(PUNCH_PAYLOAD, to.port, to.host, () => { try { s.setTTL(DEFAULT_TTL); } catch { /* closed */ } });
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, "punch failed");
    }
  }

  punchTtl = Number(process.env.EMBER_PUNCH_TTL ?? 2);

  /**
   * STUN from the daemon's own socket against the relays' STUN servers: the reflexive addresses are the
   * mappings peers will see, and two servers tell endpoint-independent from endpoint-dependent NAT.
   */
  async runNetcheck(): Promise<NetcheckReport> {
    const servers = (this.mesh?.peerMap?.relays ?? []).filter((r) => r.stunPort).map((r) => ({ host: r.host, port: r.stunPort! }));
    if (!this.socket || !this.stun) throw new Error("the daemon's socket is not open");
    const report = await netcheck(this.socket, this.stun, { servers, timeoutMs: 2_000 });
    this.lastNetcheck = report;
    this.natType = report.mapping;
    this.reflexive = report.candidates.filter((c) => c.type === "reflexive").map((c) => ({ kind: "udp" as const, host: c.address, port: c.port }));
    return report;
  }

  /** The UDP socket, for STUN and path discovery which must share it. */
  get udp(): Socket | undefined {
    return this.socket;
  }

  async stop(): Promise<void> {
    clearInterval(this.udpDrainTimer);
    await this.mesh?.stop();
    this.stun?.close();
    this.device.stop();
    await this.control?.close();
    await new Promise<void>((res) => (this.socket ? this.socket.close(() => res()) : res()));
    this.log.info({ name: this.name }, "node down");
    this.log.flush?.();
  }

  status() {
    const id = this.creds.identity;
    const addr = this.socket?.address();
    return {
      name: id.name, identity: id.spiffeId, tenant: id.tenant, groups: id.groups,
      certificate: { serial: id.serial, notAfter: id.notAfter.toISOString() },
      listen: addr ? `${addr.address}:${addr.port}` : undefined,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      cipher: aead.name, // the transport's ChaCha20-Poly1305 backend: libsodium, or node:crypto without the addon
      coordination: this.mesh ? { url: this.opts.config.coordUrl, homeRelay: this.mesh.homeRelay, relays: [...this.mesh.relays].map(([n, r]) => ({ name: n, connected: r.connected, rttMs: r.rttMs })), mapSeq: this.mesh.peerMap?.seq } : undefined,
      peers: this.peers(),
      drops: Object.fromEntries(this.device.drops),
    };
  }

  peers() {
    return [...this.device.peers.values()].map((p) => ({
      name: p.name,
      state: p.state,
      path: p.endpoint?.kind === "relay" ? `relay:${p.endpoint.relay}` : p.endpoint ? "direct" : "-",
      paths: this.mesh?.paths.describe(p.name),
      endpoint: describeEndpoint(p.endpoint),
      identity: p.identity?.spiffeId,
      lastHandshake: p.stats.lastHandshakeAt ? new Date(p.stats.lastHandshakeAt).toISOString() : undefined,
      rttMs: p.stats.lastRttMs !== undefined ? Math.round(p.stats.lastRttMs * 1000) / 1000 : undefined,
      txBytes: p.stats.txBytes, rxBytes: p.stats.rxBytes, txPackets: p.stats.txPackets, rxPackets: p.stats.rxPackets,
      handshakes: p.stats.handshakes,
    }));
  }

  private async handleControl(method: string, params: Record<string, unknown>): Promise<unknown> {
    switch (method) {
      case "status": return this.status();
      case "peers": return this.peers();
      case "netcheck": return this.runNetcheck();
      case "ping": {
        const name = String(params.name ?? "");
        const timeoutMs = Number(params.timeoutMs ?? 5_000);
        return { name, rttMs: await this.device.ping(name, timeoutMs) };
      }
      default: throw new Error(`unknown control method "${method}"`);
    }
  }
}
