// The contract between the daemon and the optional N-API addon in native/ (built at install when a compiler
// is present). The addon moves TUN packets between the TUN device and the daemon's one UDP socket on its own
// threads, in batches, so that no IP packet costs a JavaScript call; the daemon keeps every decision (who the
// peers are, which keys and path each one uses, what the policy allows) and tells the addon through setters.
//
// TUN_DATA packets (PACKET.TUN_DATA) have the DATA header (type, 3 zero bytes, receiver index u32 LE, counter
// u64 LE), then ChaCha20-Poly1305 (RFC 8439, nonce = 4 zero bytes || counter u64 LE, no associated data) of
// one IPv4 packet, under the session's TUN keys (tunKey() in src/native/tun-keys.ts: a one-way derivation of
// the session's transport keys, so the addon's counters never share a key with the daemon's own).

import type { FirewallTable } from "../policy/firewall-table.js";
export type { FirewallTable };

export interface NativePeer {
  /** The peer's overlay IPv4 address: packets from TUN to it go to this peer, packets from it must carry it. */
  overlayIp: string;
  /** The current direct path, or null when the peer is reached over the relay (packets go to onRelaySend). */
  endpoint: { host: string; port: number } | null;
  /** Largest UDP payload the path carries; a bigger sealed packet is never sent (ICMP fragmentation-needed). */
  maxDatagram: number;
  inbound: FirewallTable;
}

export interface DeniedFlow {
  peerId: number;
  /** IP protocol number: 1 ICMP, 6 TCP, 17 UDP. */
  proto: number;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
}

export interface DataPlaneOptions {
  /** The daemon's UDP socket (its IPv4 one, or its only one). The addon reads every datagram from it (the daemon stops libuv reading). */
  udpFd: number;
  /** The daemon's IPv6-only socket on the same port, beside an IPv4 udpFd: read too; IPv6 endpoints send on it. */
  udpFd6?: number;
  /** A TUN device from openTun(); absent, the data plane only batches UDP receives. */
  tunFd?: number;
  /** This node's overlay address: inbound packets must be addressed to it. (ICMP fragmentation-needed goes back into TUN
   *  from the packet's destination, as from a router on the path: Linux drops packets arriving from its own address.) */
  overlayIp?: string;
  /** Every datagram that is not TUN_DATA, in arrival order, one call per receive batch. */
  onDatagrams(packets: Buffer[], hosts: string[], ports: number[]): void;
  /** Sealed TUN_DATA packets for peers whose endpoint is null (the daemon sends them over the relay). */
  onRelaySend(peerIds: number[], packets: Buffer[]): void;
  /** Flows refused by a peer's inbound table, at most one report per flow per second. */
  onDenied(flows: DeniedFlow[]): void;
  /** Packets from TUN for a known peer without keys (the daemon starts a handshake); at most 1/s per peer. */
  onWant(peerIds: number[]): void;
}

export interface PeerCounters {
  peerId: number;
  /** Milliseconds since the addon last authenticated a packet from the peer; -1 never. */
  sinceRxMs: number;
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
}

export interface DataPlaneStats {
  udpRxPackets: number;
  udpRxBatches: number;
  udpTxPackets: number;
  udpTxCalls: number;
  /** IP packets from TUN (TSO super-packets counted as the segments they make) and read() calls on TUN. */
  tunRxPackets: number;
  tunReads: number;
  /** IP packets into TUN (coalesced segments counted one by one) and write() calls on TUN. */
  tunTxPackets: number;
  tunWrites: number;
  /** TUN packets that waited for a session (at most 64 a peer, 5 s) and left once its keys came. */
  staged: number;
  /** Drops by reason: bad_tun_packet, no_peer, no_session, replay, auth_failed, unknown_index, spoofed_source, firewall, too_big, ... */
  drops: Record<string, number>;
  gso: boolean;
  gro: boolean;
  /** The TUN device carries virtio_net_hdr (offloads: TSO reads cut into segments here, checksums completed). */
  tunVnetHdr: boolean;
}

export interface DataPlane {
  start(): void;
  /** Stops the threads and releases the TUN fd (the UDP fd stays the daemon's). Idempotent. */
  close(): void;
  setPeer(peerId: number, peer: NativePeer): void;
  /** Removes the peer and every key of it: nothing more is sent or accepted for it (revocation). */
  removePeer(peerId: number): void;
  /**
   * Adds a keypair; the newest one sends, except that keys added with confirmed = false (an initiator's, before
   * anything arrived under them) leave the previous keys sending until confirmKeys or a packet under them.
   * Older ones keep receiving until dropKeys.
   */
  addKeys(peerId: number, localIndex: number, remoteIndex: number, sendKey: Uint8Array, recvKey: Uint8Array, confirmed?: boolean): void;
  confirmKeys(localIndex: number): void;
  dropKeys(localIndex: number): void;
  /** A TUN_DATA packet that reached the daemon another way (over the relay). */
  injectRx(packet: Uint8Array): void;
  /**
   * IPv4 packets as if read from TUN: the tx thread's stage (peer by destination, seal, GSO/sendmmsg) on the
   * calling thread, without a TUN device (bench:dataplane, tests). Never blocks: a datagram the socket has no
   * room for is dropped and counted as udp_send_failed.
   */
  injectTx(packets: Uint8Array[]): void;
  stats(): DataPlaneStats;
  peerCounters(): PeerCounters[];
}

export interface NativeAddon {
  readonly version: string;
  /** Seals each plaintext under key with nonce counter[i]: ciphertext || tag, as the TypeScript path does. */
  aeadSealBatch(key: Uint8Array, counters: number[], plaintexts: Uint8Array[]): Buffer[];
  /** Opens each sealed message; null where authentication fails. */
  aeadOpenBatch(key: Uint8Array, counters: number[], sealed: Uint8Array[]): Array<Buffer | null>;
  /**
   * Creates (or attaches to) a TUN device (IFF_TUN | IFF_NO_PI), sets its address/prefix and MTU, brings it up.
   * offload (default true): IFF_VNET_HDR, and checksum + TSO4 offload when the kernel accepts them (tso).
   */
  openTun(name: string, address: string, prefixLength: number, mtu: number, offload?: boolean): { fd: number; name: string; vnetHdr: boolean; tso: boolean };
  DataPlane: new (opts: DataPlaneOptions) => DataPlane;
}
