// The node daemon: composes the one UDP socket (udp-conn.ts), the session device, the coordinated mesh
// (mesh.ts: relays, paths, peer map), per-flow policy and the control socket, and offers the layers above
// the session one small interface (runtime.ts). Each part stays in its own module; this file only wires them.
import type { Logger } from "pino";
import { createJsonLogger } from "../log/json-logger.js";
import { pemBlocks, readBoundedFile, Verifier, type Identity } from "../pki/index.js";
import { Device, type SendResult } from "../session/device.js";
import type { Endpoint } from "../addr/endpoint.js";
import type { InnerHandler } from "../session/inner.js";
import type { SessionTimers } from "../session/timers.js";
import { innerPayloadFor, MAX_PAYLOAD, type InnerType } from "../wire/constants.js";
import type { CompiledRule } from "../policy/index.js";
import { ConfigError, type NodeConfig } from "./config.js";
import { ControlServer } from "./control-socket.js";
import { ControlMethods, registerNodeMethods } from "./control.js";
import { registerExposeMethods } from "./expose.js";
import { FlowPolicy } from "./flow-policy.js";
import { loadCredentials, type NodeCredentials } from "./identity.js";
import { LocalCandidates } from "./candidates.js";
import { PortMapper, probePortmap, type PortmapReport } from "../nat/portmap/portmapper.js";
import { Mesh } from "./mesh.js";
import type { KnownPeer, NodeRuntime } from "./runtime.js";
import { UdpConn } from "./udp-conn.js";
import { ServiceTable } from "./services.js";
import { Flows } from "./flows.js";
import { NodeAccess } from "./access.js";
import { NodeHealth } from "./health.js";
import { NodeEvents } from "./events.js";
import { RestClock } from "../clock/rest-clock.js";
import { addTotals, TrafficMeter, ZERO_TRAFFIC } from "./traffic.js";
import type { SessionMirror } from "../session/device.js";
import type { Peer } from "../session/peer.js";
import { nativeAddon, nativeStatus } from "../native/addon.js";
import { NativePlane, type NativePlaneStatus } from "./native-plane.js";
import { DnsResponder } from "./dns-responder.js";
import { lookupName } from "../access/names.js";
import { principalOf } from "./flow-policy.js";
import { UserBindings } from "./user-bindings.js";
import type { Principal } from "../policy/index.js";
import { OVERLAY_PREFIX_LENGTH } from "../wire/constants.js";

export interface DaemonOptions {
  config: NodeConfig;
  timers?: Partial<SessionTimers>;
  /** Where the JSON log goes: a file path, or a file descriptor (default 2, stderr). */
  logDestination?: string | number;
}

export class Daemon implements NodeRuntime {
  readonly log: Logger;
  readonly verifier: Verifier;
  readonly device: Device;
  /** The node's typed event bus (events.ts): health, flows, the edge and metrics subscribe. */
  readonly events = new NodeEvents((event, err) => this.log.warn({ event, err: err.message }, "an event listener failed"));
  /** Who peers (and this node) act as when a person is logged in on them (docs/users.md). */
  private readonly users: UserBindings;
  /** The user certificates of the last map (self first): a change means flows are decided again. */
  private userPemsSeen = "";
  readonly policy = new FlowPolicy();
  readonly startedAt = Date.now();
  /** The control API; layers above the session register their own methods here before start(). */
  readonly control = new ControlMethods();
  /** Services this node exposes; a change is announced to the coordination server at once. */
  readonly services = new ServiceTable(() => this.meshPart?.report());
  /** Application streams with peers (one stream mux per peer), decided by policy on both ends. */
  readonly flows: Flows;
  /** Names, proxy, forwards: how applications on this machine reach the mesh. */
  readonly access: NodeAccess;
  /** Diagnostics, recent policy and connection events, telemetry to the coordination server (health.ts). */
  readonly health: NodeHealth;
  private creds: NodeCredentials;
  private conn?: UdpConn;
  private local?: LocalCandidates;
  /** Asks the gateway to forward our UDP port (NAT-PMP, PCP, UPnP); absent when config.portmap is empty. */
  private portmapper?: PortMapper;
  private meshPart?: Mesh;
  private controlSocket?: ControlServer;
  private metricsServer?: import("node:http").Server;
  /** The native data plane (batched UDP; TUN in TUN mode); absent on the TypeScript path. */
  private native?: NativePlane;
  /** Why the daemon runs without the native data plane or without TUN, for status and the log. */
  private nativeNote?: string;
  private tunRefused = false;
  /** Answers the mesh's names with overlay addresses, on the node's overlay address (TUN mode). */
  private dns?: DnsResponder;
  /** Forwards the device's session changes to the native data plane, whenever there is one. */
  private readonly mirror: SessionMirror = {
    keysInstalled: (peer, kp) => this.native?.keysInstalled(peer, kp),
    keysConfirmed: (peer, kp) => this.native?.keysConfirmed(peer, kp),
    keysForgotten: (peer, index) => this.native?.keysForgotten(peer, index),
    pathChanged: (peer) => this.native?.pathChanged(peer),
    tunData: (data, from) => this.native?.tunData(data, from),
  };
  /** The one timer of the node's periodic work at rest (session and path ticks, samples, reports, telemetry). */
  readonly restClock = new RestClock();
  /** Everything this node sends and receives (UDP socket, relays, coordination stream), for `ember status`. */
  readonly traffic = new TrafficMeter(() => addTotals(this.conn?.totals() ?? ZERO_TRAFFIC, this.meshPart?.controlTraffic() ?? ZERO_TRAFFIC), this.restClock);

  constructor(readonly opts: DaemonOptions) {
    const cfg = opts.config;
    this.log = createJsonLogger({ level: cfg.logLevel, destination: opts.logDestination ?? 2 });
    const bundlePem = readBoundedFile(cfg.bundlePath, "trust bundle");
    this.verifier = new Verifier({ bundlePem });
    this.creds = loadCredentials(cfg.certPath, cfg.keyPath, this.verifier, bundlePem);
    this.device = new Device({
      local: this.creds.local,
      verifier: this.verifier,
      log: this.log,
      timers: opts.timers,
      restClock: this.restClock,
      send: (to, data) => this.sendDatagram(to, data),
      canSend: (to) => this.canSend(to),
      onWritable: (peer) => this.events.emit("writable", { peer: peer.name }),
      onEvent: (e) => {
        if (e.type === "session_up") this.events.emit("session_up", { peer: e.peer, endpoint: e.endpoint, initiator: e.initiator });
        else this.events.emit("handshake_refused", { peer: e.peer, reason: e.reason, detail: e.detail, from: e.from });
      },
      peerCertificate: (name) => this.mapCertificate(name),
      mirror: nativeWanted(opts.config) ? this.mirror : undefined,
    });
    for (const p of cfg.peers) this.device.addPeer(p.name, { kind: "udp", host: p.host, port: p.port });
    for (const s of cfg.services) this.services.add(s);
    this.users = new UserBindings(this.verifier, this.log, () => this.decisionsChanged("a user login expired"));
    this.flows = new Flows({ runtime: this, services: this.services });
    this.access = new NodeAccess(this, this.flows);
    registerNodeMethods(this.control, this);
    registerExposeMethods(this.control, this);
    this.access.registerMethods(this.control);
    this.health = new NodeHealth(this);
    this.health.registerMethods(this.control);
  }

  get config(): NodeConfig {
    return this.opts.config;
  }

  get name(): string {
    return this.creds.identity.name;
  }

  get mesh(): Mesh | undefined {
    return this.meshPart;
  }

  get candidates(): LocalCandidates | undefined {
    return this.local;
  }

  credentials(): NodeCredentials {
    return this.creds;
  }

  /** Peers' certificates from the peer map, as DER (parsed once per certificate). */
  private readonly mapCerts = new Map<string, { pem: string; der: Uint8Array }>();

  /** A peer's certificate as the coordination server's map gives it: the device checks that peer's INIT claims with it. */
  private mapCertificate(name: string): Uint8Array | undefined {
    const pem = this.meshPart?.mapPeer(name)?.certPem;
    if (!pem) return undefined;
    const hit = this.mapCerts.get(name);
    if (hit?.pem === pem) return hit.der;
    try {
      const der = pemBlocks(pem, "CERTIFICATE", "peer certificate")[0];
      this.mapCerts.set(name, { pem, der });
      return der;
    } catch {
      return undefined;
    }
  }

  /** After a rotation: new certificate for future handshakes; live sessions keep their keys. */
  private reloadCredentials(): void {
    const cfg = this.opts.config;
    const bundlePem = readBoundedFile(cfg.bundlePath, "trust bundle");
    const fresh = loadCredentials(cfg.certPath, cfg.keyPath, this.verifier, bundlePem, {
      staticPrivate: this.creds.local.staticPrivate, staticPublic: this.creds.local.staticPublic,
    });
    this.creds = fresh;
    this.device.setLocalIdentity(fresh.local);
    this.log.info({ serial: fresh.identity.serial, notAfter: fresh.identity.notAfter.toISOString() }, "certificate rotated");
    this.events.emit("certificate_rotated", { serial: fresh.identity.serial, notAfter: fresh.identity.notAfter.toISOString() });
  }

  async start(): Promise<{ host: string; port: number }> {
    const cfg = this.opts.config;
    const conn = await UdpConn.bind({
      host: cfg.listenHost, port: cfg.listenPort, log: this.log,
      onDatagram: (msg, rinfo) => this.device.receive(msg, { kind: "udp", host: rinfo.address, port: rinfo.port }),
      onDrain: () => this.device.writableChanged(),
    });
    this.conn = conn;
    this.local = new LocalCandidates(conn);
    this.startNative();
    if (cfg.portmap.length) this.startPortMapper(conn.address().port, cfg.portmap);
    this.controlSocket = new ControlServer(cfg.controlSocket, this.control.handler());
    await this.controlSocket.listen();
    this.device.start();
    this.traffic.start();
    if (cfg.policyFile) await this.loadLocalPolicy(cfg.policyFile);
    if (cfg.proxy) await this.access.startProxy(cfg.proxy.host, cfg.proxy.port);
    if (cfg.coordUrl) {
      this.meshPart = new Mesh({
        coordUrl: cfg.coordReplicas.join(","), stateDir: cfg.stateDir, log: this.log, events: this.events, verifier: this.verifier, device: this.device, conn,
        candidates: this.local, credentials: () => this.creds, staticPeers: new Set(cfg.peers.map((p) => p.name)), restClock: this.restClock,
        services: () => this.services.announced(),
        onRenewed: () => this.reloadCredentials(),
        onRules: (rules) => this.setRules(rules),
        onPeers: () => { this.onMapPeers(); this.events.emit("peers", {}); },
        onPeerGone: (name, why) => this.events.emit("peer_gone", { peer: name, why }),
      });
      this.meshPart.start();
    }
    this.health.start(this.meshPart);
    if (cfg.metrics) {
      const { startNodeMetrics } = await import("./metrics.js");
      const m = await startNodeMetrics(this, cfg.metrics.host, cfg.metrics.port);
      this.metricsServer = m.server;
      this.log.info({ metrics: `http://${cfg.metrics.host}:${m.port}/metrics` }, "metrics listening");
    }
    const addr = conn.address();
    this.log.info({ name: this.name, identity: this.creds.identity.spiffeId, listen: `${addr.host}:${addr.port}`, control: cfg.controlSocket }, "node up");
    return addr;
  }

  private startPortMapper(port: number, protocols: NodeConfig["portmap"]): void {
    const local = this.local!;
    this.portmapper = new PortMapper({
      internalPort: port, protocols, log: this.log,
      // A new mapped address is a new candidate: report it at once rather than at the next periodic report.
      onChange: (m) => {
        local.setMapped(m && { host: m.externalAddress, port: m.externalPort });
        this.meshPart?.report();
      },
    });
    this.portmapper.start();
  }

  /** Which port mapping protocol the gateway offers, and the mapping we hold (for netcheck). */
  async portmapReport(): Promise<PortmapReport> {
    const status = this.portmapper?.status();
    // Port mapping switched off: the gateway is not asked at all (no packet to it, no wait for its answers).
    const probe = this.portmapper ? await probePortmap(status?.gateway) : { pcp: false, natPmp: false, upnp: false, protocol: null };
    return { ...probe, enabled: !!this.portmapper, mapped: status?.mapped ?? null, mappedBy: status?.protocol ?? null, ...(status?.errors ? { errors: status.errors } : {}) };
  }

  /**
   * Without a coordination server, flows are decided by a local policy file (same format as the server's). The
   * policy parser (and the yaml package under it) is imported only then: a node fed by a coordination server gets
   * compiled rules and never loads it (docs/performance.md "Memory").
   */
  private async loadLocalPolicy(file: string): Promise<void> {
    if (this.opts.config.coordUrl) {
      this.log.warn({ file }, "local policy file ignored: the coordination server's policy applies");
      return;
    }
    const { parsePolicy } = await import("../policy/parse.js");
    const r = parsePolicy(readBoundedFile(file, "policy file"));
    if (!r.ok) throw new ConfigError(`policy ${file}: ${r.errors.map((e) => `line ${e.line}: ${e.message}`).join("; ")}`);
    for (const w of r.warnings) this.log.warn({ file, line: w.line }, `policy: ${w.message}`);
    this.setRules(r.policy.rules);
  }

  private setRules(rules: CompiledRule[]): void {
    if (!this.policy.setRules(rules)) return;
    this.log.info({ rules: this.policy.ruleCount, hash: this.policy.hash.slice(0, 12) }, "policy rules updated");
    this.decisionsChanged();
  }

  /** Rules or principals changed: the TUN tables are computed again and live flows decided again. */
  private decisionsChanged(why?: string): void {
    if (why) this.log.info({ reason: why }, "flows are decided again");
    this.native?.syncAll();
    this.events.emit("rules", {});
  }

  /** Room below the session for another datagram: the UDP socket's send queue, or the relay's buffer. */
  private canSend(to: Endpoint): boolean {
    if (to.kind === "relay") return this.meshPart?.relayWritable(to.relay) ?? false;
    return this.conn?.hasRoom() ?? false;
  }

  private sendDatagram(to: Endpoint, data: Uint8Array): void {
    if (to.kind === "udp") this.conn?.send(data, to.port, to.host);
    else this.meshPart?.sendViaRelay(to, data);
  }

  /** STUN from the daemon's own socket against the map's relays (the mapping its peers see). */
  async runNetcheck() {
    if (!this.local) throw new Error("the daemon's socket is not open");
    const [report, portmap] = await Promise.all([this.local.refresh(this.meshPart?.stunServers() ?? []), this.portmapReport()]);
    return { ...report, portmap };
  }

  socketAddresses(): string[] {
    return this.conn?.addresses() ?? [];
  }

  listenAddress(): string | undefined {
    const a = this.conn?.address();
    return a ? `${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}` : undefined;
  }

  async stop(): Promise<void> {
    // First, while the socket and routes still exist: the gateway forgets our mapping (ember up exits on SIGTERM).
    await this.portmapper?.stop();
    this.traffic.stop();
    await this.access.close();
    await this.health.stop();
    await new Promise<void>((resolve) => (this.metricsServer ? this.metricsServer.close(() => resolve()) : resolve()));
    this.flows.close();
    await this.dns?.close();
    await this.meshPart?.stop();
    this.native?.close();
    this.users.close();
    this.device.stop();
    await this.controlSocket?.close();
    await this.conn?.close();
    this.log.info({ name: this.name }, "node down");
    this.log.flush?.();
  }

  // ---- native data plane and TUN ----------------------------------------------------------------------------

  /**
   * The native data plane on the daemon's socket when the addon loads: batched receives at once; TUN later,
   * once the peer map gives this node its overlay address (onMapPeers). Without the addon (or with
   * EMBER_NATIVE=off) the TypeScript path carries everything and the note says why.
   */
  private startNative(): void {
    if (!nativeWanted(this.config)) {
      this.nativeNote = "native data plane off: EMBER_NATIVE=off";
      return;
    }
    const why = nativeStatus();
    if (!why.loaded) {
      this.nativeNote = `native data plane off: ${why.reason}`;
      if (this.config.tun) this.nativeNote = `TUN off: the native addon is not loaded (${why.reason})`;
      this.log.info({ reason: why.reason, tun: this.config.tun }, this.config.tun ? "TUN off: the native addon is not loaded" : "native data plane off");
      return;
    }
    if (this.config.tun && !this.config.coordUrl) {
      this.nativeNote = "TUN off: overlay addresses come from a coordination server (--coord)";
      this.log.warn({}, this.nativeNote);
    }
    this.openNative();
  }

  /** (Re)creates the data plane, with TUN when given; false (and the note says why) when the addon refuses. */
  private openNative(tun?: { name: string; address: string }): boolean {
    const addon = nativeAddon();
    if (!addon || !this.conn) return false;
    const meshPart = () => this.meshPart;
    const deps = {
      addon, conn: this.conn, device: this.device, log: this.log, pathMtu: this.config.mtu,
      overlayIpOf: (name: string) => meshPart()?.mapPeer(name)?.overlayIp,
      inboundTable: (peer: Peer) => this.policy.inboundTable(this.peerPrincipal(peer.name) ?? principalOf(peer.identity!), principalOf(this.identity())),
      explainDenied: (peer: Peer, protocol: string, port: number) => {
        const d = this.policy.decide({ from: this.peerPrincipal(peer.name) ?? principalOf(peer.identity!), to: principalOf(this.identity()), port, protocol: protocol as "tcp" });
        return d.rule ? `${d.reason} (line ${d.rule.line}: ${d.rule.text})` : d.reason;
      },
      sendViaRelay: (to: Endpoint & { kind: "relay" }, data: Uint8Array) => meshPart()?.sendViaRelay(to, data),
    };
    const previous = this.native;
    this.native = undefined;
    previous?.close();
    try {
      this.native = new NativePlane(deps, tun && { ...tun, prefixLength: OVERLAY_PREFIX_LENGTH });
      if (tun) {
        this.nativeNote = undefined;
        this.log.info({ tun: this.native.tun }, "TUN up");
      }
      return true;
    } catch (err) {
      const reason = (err as Error).message;
      this.nativeNote = tun ? `TUN off: ${reason}` : `native data plane off: ${reason}`;
      this.log.warn({ err: reason }, tun ? "TUN off: staying userspace" : "native data plane off");
      // TUN refused (no root, no /dev/net/tun): the batched socket still serves the userspace path.
      if (tun) this.openNative();
      return false;
    }
  }

  /** A new peer map: TUN comes up once the map gives this node an address; the data plane learns the peers. */
  private onMapPeers(): void {
    const map = this.meshPart?.peerMap;
    // Only logins count: peers coming and going without one change no decision here (their flows end with them).
    let pems = map?.self.userCertPem ?? "";
    for (const p of map?.peers ?? []) if (p.userCertPem) pems += `|${p.name}=${p.userCertPem}`;
    if (pems !== this.userPemsSeen) {
      this.userPemsSeen = pems;
      for (const name of [...this.device.peers.keys()]) if (!this.meshPart?.mapPeer(name)) this.users.forget(name);
      this.decisionsChanged("a login on this node or a peer changed");
    }
    const tun = this.config.tun;
    const address = this.meshPart?.peerMap?.self.overlayIp;
    if (tun && address && !this.tunRefused && this.native?.tun?.address !== address) {
      if (this.openNative({ name: tun, address })) void this.startDns(address);
      else this.tunRefused = true; // said once in the log and in status; not retried with every map
    }
    this.native?.syncAll();
  }

  /** The mesh's names (NAME, NAME.TENANT, SERVICE.NAME, with or without .ember) answered with overlay addresses. */
  private async startDns(address: string): Promise<void> {
    await this.dns?.close();
    this.dns = new DnsResponder((name) => {
      const found = lookupName(name, this.access.directory);
      return found.ok ? this.meshPart?.mapPeer(found.peer.name)?.overlayIp : undefined;
    }, this.log);
    try {
      await this.dns.start({ host: address, port: 53 });
      this.log.info({ dns: `${address}:53` }, "DNS for mesh names listening");
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "DNS for mesh names not started");
      this.dns = undefined;
    }
  }

  /** For `ember status`: which data plane carries packets, and TUN. */
  dataPlaneReport(): { backend: "native" | "typescript"; note?: string; native?: NativePlaneStatus } {
    const st = this.native?.status();
    return { backend: st ? "native" : "typescript", ...(this.nativeNote ? { note: this.nativeNote } : {}), ...(st ? { native: st } : {}) };
  }

  // ---- NodeRuntime ---------------------------------------------------------------------------------------

  identity(): Identity {
    return this.creds.identity;
  }

  send(peer: string, kind: InnerType, payload: Uint8Array): SendResult {
    return this.device.sendTo(peer, kind, payload);
  }

  maxPayload(peer: string): number {
    const path = this.pathOf(peer);
    if (path?.kind === "relay") return MAX_PAYLOAD;
    return innerPayloadFor(this.opts.config.mtu, path ? path.host.includes(":") : true);
  }

  pathOf(peer: string): Endpoint | undefined {
    return this.device.peers.get(peer)?.endpoint;
  }

  peerIdentity(peer: string): Identity | undefined {
    const p = this.device.peers.get(peer);
    return p && !p.revoked ? p.identity : undefined;
  }

  peerPrincipal(peer: string): Principal | undefined {
    const id = this.peerIdentity(peer);
    if (!id) return undefined;
    const mp = this.meshPart?.mapPeer(peer);
    return this.users.peerPrincipal(id, mp?.certPem, mp?.userCertPem);
  }

  selfPrincipal(): Principal {
    const own = this.identity();
    const u = this.users.selfUser(own, this.meshPart?.peerMap?.self.userCertPem);
    return u ? { name: u.name, tenant: u.tenant, groups: u.groups, kind: "user", device: own.name } : principalOf(own);
  }

  /** The person logged in on this node, for status. */
  loggedInUser() {
    return this.users.selfUser(this.identity(), this.meshPart?.peerMap?.self.userCertPem);
  }

  onInner(kind: InnerType, handler: InnerHandler): void {
    this.device.inner.register(kind, handler);
  }

  *knownPeers(): Iterable<KnownPeer> {
    for (const name of this.device.peers.keys()) {
      const k = this.knownPeer(name);
      if (k) yield k;
    }
  }

  knownPeer(name: string): KnownPeer | undefined {
    const fromMap = this.meshPart?.mapPeer(name);
    if (fromMap) return { name, tenant: fromMap.tenant, groups: fromMap.groups, services: fromMap.services ?? [], ...(fromMap.overlayIp ? { overlayIp: fromMap.overlayIp } : {}) };
    const p = this.device.peers.get(name);
    if (!p) return undefined;
    // A static peer: what its verified certificate says, once a session has shown it.
    return { name, tenant: p.identity?.tenant ?? "", groups: p.identity?.groups ?? [], services: [] };
  }
}

/** The native data plane is tried in TUN mode, and for batched UDP unless EMBER_NATIVE=off. */
function nativeWanted(cfg: NodeConfig): boolean {
  return !!cfg.tun || process.env.EMBER_NATIVE !== "off";
}
