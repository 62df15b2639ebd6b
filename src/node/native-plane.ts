// The daemon's side of the native data plane (src/native/types.ts): it mirrors the session device's keys and
// paths into the addon, gives the addon each peer's overlay address and inbound firewall table, feeds the
// addon's per-peer counters back into the device (activity, liveness, `ember status`), and carries what the
// addon cannot: TUN packets over the relay, and denied flows into the log. The device stays the one owner of
// sessions and paths; this class only follows it.
import type { Logger } from "pino";
import type { Device, SessionMirror } from "../session/device.js";
import type { Endpoint } from "../addr/endpoint.js";
import type { Keypair } from "../session/keypair.js";
import type { Peer } from "../session/peer.js";
import type { DataPlane, DataPlaneStats, DeniedFlow, FirewallTable, NativeAddon, NativePeer } from "../native/types.js";
import { DATA_HEADER_SIZE, IPV4_UDP_OVERHEAD, MAX_DATAGRAM, TAG_SIZE } from "../wire/constants.js";
import type { UdpConn } from "./udp-conn.js";

/** How often the addon's per-peer counters are read back into the device. */
const COUNTER_SYNC_MS = 1_000;
/** Everything a TUN packet gains on the wire: DATA header and tag (no inner-kind byte: the packet type says it). */
export const TUN_OVERHEAD = DATA_HEADER_SIZE + TAG_SIZE;
const NO_TABLE: FirewallTable = { tcp: [], udp: [], icmp: false };
const PROTOCOL_NAMES: Record<number, string> = { 1: "icmp", 6: "tcp", 17: "udp" };

/** The TUN device's MTU for a node whose direct paths carry `pathMtu`-byte IPv4 packets. */
export function tunMtuFor(pathMtu: number): number {
  return pathMtu - IPV4_UDP_OVERHEAD - TUN_OVERHEAD;
}

export interface NativePlaneDeps {
  addon: NativeAddon;
  conn: UdpConn;
  device: Device;
  log: Logger;
  /** The path MTU of direct paths (config.mtu). */
  pathMtu: number;
  /** A peer's overlay address (from the peer map); undefined leaves the peer out of the TUN routes. */
  overlayIpOf(name: string): string | undefined;
  /** What the peer may open on this node, from the policy and the peer's verified identity. */
  inboundTable(peer: Peer): FirewallTable;
  /** Why a flow from the peer is denied (the policy's reason and rule), for the log. */
  explainDenied(peer: Peer, protocol: string, port: number): string;
  sendViaRelay(to: Endpoint & { kind: "relay" }, data: Uint8Array): void;
}

export interface TunSettings { name: string; address: string; prefixLength: number }

/** What `ember status` shows of the data plane. */
export interface NativePlaneStatus {
  backend: "native";
  tun?: { name: string; address: string; mtu: number };
  stats: DataPlaneStats;
}

export class NativePlane implements SessionMirror {
  private readonly plane: DataPlane;
  private readonly ids = new Map<string, number>();
  private readonly names = new Map<number, string>();
  private readonly last = new Map<number, { rxPackets: number; txPackets: number; rxBytes: number; txBytes: number }>();
  private nextId = 1;
  /** TUN_DATA that came over the relay since the last counter sync, by peer (the rest came by the direct path). */
  private readonly relayRx = new Map<string, number>();
  private syncTimer?: NodeJS.Timeout;
  private tunInfo?: { name: string; address: string; mtu: number; tso: boolean };

  /**
   * Starts the data plane on the daemon's socket (libuv stops reading it), with a TUN device when `tun` is
   * given. Throws with the reason when the addon refuses (no TUN permission, a socket it cannot take).
   */
  constructor(private readonly deps: NativePlaneDeps, tun?: TunSettings) {
    const { addon, conn } = deps;
    const [first, second] = conn.sockets.map((leg) => conn.fdOf(leg.family));
    if (first === undefined || (conn.sockets.length > 1 && second === undefined)) {
      throw new Error("a UDP socket has no file descriptor to hand to the native data plane");
    }
    let tunFd: number | undefined;
    if (tun) {
      const mtu = tunMtuFor(deps.pathMtu);
      // EMBER_TUN_OFFLOAD=off: one packet per TUN read and write, as before offloads (for comparison).
      const opened = addon.openTun(tun.name, tun.address, tun.prefixLength, mtu, process.env.EMBER_TUN_OFFLOAD !== "off");
      tunFd = opened.fd;
      this.tunInfo = { name: opened.name, address: tun.address, mtu, tso: opened.tso };
    }
    this.plane = new addon.DataPlane({
      udpFd: first,
      ...(second !== undefined ? { udpFd6: second } : {}),
      tunFd,
      overlayIp: tun?.address,
      onDatagrams: (packets, hosts, ports) => conn.deliver(packets, hosts, ports),
      onRelaySend: (ids, packets) => this.relaySend(ids, packets),
      onDenied: (flows) => this.denied(flows),
      onWant: (ids) => { for (const id of ids) { const n = this.names.get(id); if (n) deps.device.want(n); } },
    });
    if (!conn.yieldReceiving()) {
      this.plane.close();
      throw new Error("this Node cannot stop reading the UDP socket (no recvStop on its handle)");
    }
    this.plane.start();
    // Sessions that came up before the plane did: their keypairs, oldest first, so the newest sends.
    for (const peer of deps.device.peers.values()) {
      if (this.syncPeer(peer) === undefined) continue;
      for (const kp of [...peer.retired].reverse()) this.keysInstalled(peer, kp);
      if (peer.current) this.keysInstalled(peer, peer.current);
    }
    // Only TUN traffic passes the session layer by: without a TUN device there is nothing to sync, and a
    // resting node should not wake every second for it.
    if (tun) {
      this.syncTimer = setInterval(() => this.syncCounters(), COUNTER_SYNC_MS);
      this.syncTimer.unref();
    }
  }

  status(): NativePlaneStatus {
    return { backend: "native", ...(this.tunInfo ? { tun: this.tunInfo } : {}), stats: this.plane.stats() };
  }

  get tun(): { name: string; address: string; mtu: number; tso: boolean } | undefined {
    return this.tunInfo;
  }

  close(): void {
    clearInterval(this.syncTimer);
    this.plane.close();
  }

  // ---- SessionMirror: the device tells us what changed ------------------------------------------------------

  keysInstalled(peer: Peer, keypair: Keypair): void {
    const id = this.syncPeer(peer);
    if (id === undefined || !keypair.tunKeys) return;
    this.plane.addKeys(id, keypair.localIndex, keypair.remoteIndex, keypair.tunKeys.send, keypair.tunKeys.recv, keypair.confirmed);
  }

  keysConfirmed(_peer: Peer, keypair: Keypair): void {
    this.plane.confirmKeys(keypair.localIndex);
  }

  keysForgotten(_peer: Peer, localIndex: number): void {
    this.plane.dropKeys(localIndex);
  }

  pathChanged(peer: Peer): void {
    this.syncPeer(peer);
  }

  tunData(data: Buffer, from: Endpoint): void {
    if (from.kind === "relay") this.relayRx.set(from.peer, (this.relayRx.get(from.peer) ?? 0) + 1);
    this.plane.injectRx(data);
  }

  // ---- peers ----------------------------------------------------------------------------------------------

  /**
   * Tells the addon the peer's overlay address, path and firewall table; a peer with no overlay address (or a
   * revoked one) is removed, so nothing is sent to it or accepted from it. Returns its id while it is present.
   */
  syncPeer(peer: Peer): number | undefined {
    // Without TUN the addon only batches receives: it needs no peers, keys or tables (and a node with a thousand
    // peers in its map would describe every one of them on every map delta for nothing).
    if (!this.tunInfo) return undefined;
    const overlayIp = this.deps.overlayIpOf(peer.name);
    let id = this.ids.get(peer.name);
    if (!overlayIp || peer.revoked) {
      if (id !== undefined) this.forget(peer.name, id);
      return undefined;
    }
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(peer.name, id);
      this.names.set(id, peer.name);
    }
    this.plane.setPeer(id, this.describe(peer, overlayIp));
    return id;
  }

  /** Every peer again: after a new map (addresses), new rules (tables) or a revocation. */
  syncAll(): void {
    if (!this.tunInfo) return;
    const present = new Set(this.deps.device.peers.keys());
    for (const [name, id] of this.ids) if (!present.has(name)) this.forget(name, id);
    for (const peer of this.deps.device.peers.values()) this.syncPeer(peer);
  }

  private forget(name: string, id: number): void {
    this.plane.removePeer(id);
    this.ids.delete(name);
    this.names.delete(id);
    this.last.delete(id);
  }

  private describe(peer: Peer, overlayIp: string): NativePeer {
    const ep = peer.endpoint;
    const direct = ep?.kind === "udp";
    return {
      overlayIp,
      endpoint: direct ? { host: ep.host, port: ep.port } : null,
      maxDatagram: direct ? this.deps.pathMtu - IPV4_UDP_OVERHEAD : MAX_DATAGRAM,
      // Until a session shows the peer's certificate, nothing it sends is accepted anyway (no keys).
      inbound: peer.identity ? this.deps.inboundTable(peer) : NO_TABLE,
    };
  }

  // ---- what the addon hands back --------------------------------------------------------------------------

  private relaySend(ids: number[], packets: Buffer[]): void {
    for (let i = 0; i < ids.length; i++) {
      const name = this.names.get(ids[i]);
      const ep = name ? this.deps.device.peers.get(name)?.endpoint : undefined;
      if (ep?.kind === "relay") this.deps.sendViaRelay(ep, packets[i]);
    }
  }

  private denied(flows: DeniedFlow[]): void {
    for (const f of flows) {
      const name = this.names.get(f.peerId);
      const peer = name ? this.deps.device.peers.get(name) : undefined;
      if (!peer) continue;
      const protocol = PROTOCOL_NAMES[f.proto] ?? `proto-${f.proto}`;
      const port = f.proto === 1 ? 0 : f.dstPort;
      this.deps.log.warn({
        peer: peer.name, protocol, src: `${f.srcIp}:${f.srcPort}`, dst: `${f.dstIp}:${f.dstPort}`, tun: true,
        reason: this.deps.explainDenied(peer, protocol, port),
      }, "flow denied");
    }
  }

  /** The addon's counters since the last read become the device's activity and traffic figures. */
  private syncCounters(): void {
    for (const c of this.plane.peerCounters()) {
      const name = this.names.get(c.peerId);
      if (!name) continue;
      const before = this.last.get(c.peerId) ?? { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0 };
      const d = {
        rxPackets: c.rxPackets - before.rxPackets, txPackets: c.txPackets - before.txPackets,
        rxBytes: c.rxBytes - before.rxBytes, txBytes: c.txBytes - before.txBytes,
      };
      this.last.set(c.peerId, { rxPackets: c.rxPackets, txPackets: c.txPackets, rxBytes: c.rxBytes, txBytes: c.txBytes });
      const relayRxPackets = this.relayRx.get(name) ?? 0;
      if (d.rxPackets > 0 || d.txPackets > 0) this.deps.device.noteTunTraffic(name, { ...d, relayRxPackets });
    }
    this.relayRx.clear();
  }
}
