// The coordinated mesh: turns the coordination server's peer map into sessions and paths. It connects
// to the relays of the map (the home relay is the one with the lowest latency), keeps one session per
// visible peer, lets the path manager move each session between relay and direct paths, applies
// revocations at once, and reports this node's candidates back. Without a coordination server the
// daemon runs static peers only and this module is not used. It sees the daemon only through MeshDeps.
import type { Logger } from "pino";
import { CoordClient, type MapPeer, type PeerMap } from "../coord-client/client.js";
import type { MapService } from "../wire/coord/services.js";
import { RelayClient } from "../nat/relay-client.js";
import { PathManager } from "../nat/paths.js";
import { decodeCandidates, isCallMeMaybeAck } from "../nat/call-me-maybe.js";
import type { PathMessageKind } from "../nat/path-types.js";
import type { StunServerAddress } from "../nat/stun.js";
import type { Verifier } from "../pki/index.js";
import type { CompiledRule } from "../policy/index.js";
import type { Device } from "../session/device.js";
import { describeEndpoint, parseEndpointString, type Endpoint } from "../addr/endpoint.js";
import { INNER, type InnerType } from "../session/crypto-adapter.js";
import type { LocalCandidates } from "./candidates.js";
import type { NodeEvents } from "./events.js";
import type { NodeCredentials } from "./identity.js";
import type { UdpConn } from "./udp-conn.js";
import { addTotals, type TrafficTotals } from "./traffic.js";
import { AdaptiveTicker } from "../session/ticker.js";
import { due, repeat, type RestClock } from "../clock/rest-clock.js";
import { NetworkWatch, type NetworkChange } from "./network-watch.js";
import { movedAway } from "./network-change.js";

const MAX_RELAYS = 8;
const NETCHECK_INTERVAL_MS = 30_000;
/**
 * At rest, a node whose last netcheck found UDP blocked checks again this often, so `udp_blocked` clears by
 * itself once UDP passes: 4 STUN requests per server each time (stun.ts), only while the problem stands.
 */
const NETCHECK_BLOCKED_AT_REST_MS = 60_000;
const PATH_TICK_MS = 250;
/** Path timer period at rest: holds are due every 25 s at the most often, nothing else runs. */
const PATH_REST_TICK_MS = 5_000;
/**
 * Status is reported at once on every change we cause (netcheck, services, home relay); this periodic report
 * only notices interface address changes. A report equal to the last one is not sent (CoordClient).
 */
const REPORT_INTERVAL_MS = 30_000;
/** IP TTL of low-TTL punch packets: measured (src/nat/hops.ts); EMBER_PUNCH_TTL overrides it for lab experiments. */
const PUNCH_TTL_OVERRIDE = process.env.EMBER_PUNCH_TTL ? Number(process.env.EMBER_PUNCH_TTL) : undefined;
/**
 * A relay the node prefers as its home whenever it is connected (EMBER_HOME_RELAY=NAME): pins a node to one relay of
 * the fleet (a region, an experiment; the NAT lab homes two nodes on different relays with it). Without it, the nearest.
 */
const HOME_RELAY_PREFERENCE = process.env.EMBER_HOME_RELAY || undefined;
/**
 * A relay that answered UNKNOWN_PEER (or PEER_GONE) for a peer is not used as that peer's relay path for this long;
 * then it is tried again (the peer may have reconnected there). Hearing from the peer through it, or a map that
 * gives the peer another home relay (it reported a new one: it is connected there now), clears it at once.
 */
const RELAY_ABSENT_MS = 5_000;
/**
 * A connection to a relay other than our home one closes after this long without a datagram (and opens again on the
 * first datagram that needs it): a node holds its home relay and, while in use, the home relays of the peers it talks
 * to, not every relay of the fleet. Above the session layer's idle bound (45 s), so a pair at rest is what closes it.
 * EMBER_RELAY_IDLE_MS overrides it for lab tests.
 */
const RELAY_IDLE_CLOSE_MS = Number(process.env.EMBER_RELAY_IDLE_MS) || 60_000;
/** Datagrams held per relay while its connection opens on demand (then sent; dropped if the connection fails). */
const RELAY_OPEN_QUEUE = 32;
const PATH_INNER: Record<PathMessageKind, InnerType> = {
  "probe": INNER.PATH_PROBE, "probe-reply": INNER.PATH_PROBE_REPLY, "call-me-maybe": INNER.CALL_ME_MAYBE,
};

export interface MeshDeps {
  coordUrl: string;
  stateDir: string;
  log: Logger;
  /** The node's event bus: path changes, the coordination stream, relay connections. */
  events: NodeEvents;
  verifier: Verifier;
  device: Device;
  conn: UdpConn;
  candidates: LocalCandidates;
  credentials(): NodeCredentials;
  /** The services this node announces. */
  services(): MapService[];
  /** Static peers (--peer) stay whatever the map says. */
  staticPeers: ReadonlySet<string>;
  /** The coordination client installed a renewed certificate. */
  onRenewed(): void;
  /** The map's policy rules (checked; empty = deny everything). */
  onRules(rules: CompiledRule[]): void;
  /** Peers or their announced services changed. */
  onPeers(): void;
  /** A peer left the map or was revoked: its session is gone. */
  onPeerGone(name: string, why: string): void;
  /** The node's rest clock: the path tick at rest, reports, netcheck and relay checks run on its beat. */
  restClock?: RestClock;
}


/**
 * Home relay hysteresis: another relay must answer in under 70% of the current one's round trip and at least
 * 5 ms faster. Relays of one region differ by a few milliseconds of jitter, and every change of home relay is a
 * status report and a map delta to every peer that can see this node.
 */
const HOME_FASTER_RATIO = 0.7;
const HOME_FASTER_MS = 5;

/**
 * The home relay (pure): the preferred one (EMBER_HOME_RELAY) while it is connected; else the current one while it is
 * connected and not clearly slower than another; else the connected one with the lowest round trip. A home relay that
 * disconnected (it died) is left at once for the best one still connected.
 */
export function chooseHomeRelay(current: string | undefined, relays: { name: string; connected: boolean; rttMs?: number }[], prefer?: string): string | undefined {
  const up = relays.filter((r) => r.connected);
  if (!up.length) return current;
  if (prefer && up.some((r) => r.name === prefer)) return prefer;
  const rtt = (r: { rttMs?: number }) => r.rttMs ?? Number.MAX_SAFE_INTEGER;
  const best = up.reduce((a, b) => (rtt(b) < rtt(a) ? b : a));
  const cur = up.find((r) => r.name === current);
  if (!cur) return best.name;
  return rtt(best) < rtt(cur) * HOME_FASTER_RATIO && rtt(cur) - rtt(best) >= HOME_FASTER_MS ? best.name : cur.name;
}

/**
 * The relay to reach a peer through (pure): one where the peer is connected and we hold a connection. Tried in order:
 * the peer's home relay from the map; the relay the peer's last packet came in on (it sent on that relay, so it is
 * connected there: this covers the time before a map delta tells us a moved home relay); our own home relay and then
 * any other relay we hold (a node connects to every relay of the map it can reach). A relay that said the peer is not
 * there (UNKNOWN_PEER, PEER_GONE) is skipped until RELAY_ABSENT_MS passed. Undefined: no relay connected.
 */
export function chooseRelayFor(peer: { homeRelay?: string; heardVia?: string; absent?: ReadonlySet<string> }, relays: { name: string; connected: boolean }[], ownHome?: string): string | undefined {
  const up = new Set(relays.filter((r) => r.connected).map((r) => r.name));
  const usable = (r: string | undefined): r is string => !!r && up.has(r) && !peer.absent?.has(r);
  for (const r of [peer.homeRelay, peer.heardVia, ownHome, ...up]) if (usable(r)) return r;
  // Every relay we hold said the peer is not there (it is starting, or moving): the best guess in the same order.
  for (const r of [peer.homeRelay, peer.heardVia, ownHome]) if (r && up.has(r)) return r;
  return undefined;
}

export class Mesh {
  readonly coord: CoordClient;
  private readonly relayClients = new Map<string, RelayClient>();
  readonly paths: PathManager;
  private home?: string;
  private map?: PeerMap;
  private readonly mapPeers = new Map<string, MapPeer>();
  /** Stops the periodic report, relay idle check and netcheck (on the rest clock's beat). */
  private readonly stopPeriodic: (() => void)[] = [];
  private readonly pathTicker: AdaptiveTicker;
  /** A netcheck asked for now (the first relays, a wake-up); the periodic one runs on the beat. */
  private netcheckTimer?: NodeJS.Timeout;
  private netcheckRunning = false;
  /** The network changed while a netcheck ran: another one follows it. */
  private netcheckAgain = false;
  /** Address changes and wake-ups (network-watch.ts). */
  private readonly watch: NetworkWatch;
  private lastNetcheckAt = 0;
  /** Per peer: the relay its last relayed packet came in on. */
  private readonly relayHeard = new Map<string, string>();
  /** Per peer: relays that said it is not connected there, and until when that holds. */
  private readonly relayAbsent = new Map<string, Map<string, number>>();
  /**
   * Relays whose connection we closed while idle (or are opening again): still a path to the peers there, opened by
   * the first datagram that needs one. A relay whose connection fails leaves this set (it is down).
   */
  private readonly relaysOnDemand = new Set<string>();
  /** Datagrams waiting for a relay connection opened on demand. */
  private readonly relayOpening = new Map<string, { peer: string; data: Uint8Array }[]>();

  constructor(private readonly deps: MeshDeps) {
    const { device, log } = deps;
    this.paths = new PathManager({
      sendVia: (peer, ep, kind, payload) => { device.sendVia(peer, ep, PATH_INNER[kind], payload); },
      usePath: (peer, ep, shadow) => device.setPath(peer, ep, shadow),
      pathChanged: (change) => deps.events.emit("path_changed", change),
      hasSession: (peer) => !!device.peers.get(peer)?.current,
      activity: (name) => {
        const p = device.peers.get(name);
        return p && { idle: device.isIdle(p), lastSentAt: p.lastPathSentAt, lastDirectRxAt: p.lastDirectRxAt, lastDirectRxFrom: p.lastDirectRxFrom };
      },
      sessionFresh: (peer) => device.sessionFresh(peer),
      hold: (ep) => { if (ep.kind === "udp") deps.conn.hold(ep.port, ep.host); },
      selfName: deps.credentials().identity.name,
      localCandidates: () => deps.candidates.list(),
      punch: (ep) => { if (ep.kind === "udp") deps.conn.punch(ep.port, ep.host, PUNCH_TTL_OVERRIDE ?? deps.candidates.punchTtl); },
      canSend: (ep) => deps.candidates.canSend(ep),
      noNat: () => deps.candidates.noNat,
      mapping: () => deps.candidates.natType,
      // Behind an endpoint-dependent NAT our own first packet to a peer leaves a NAT entry whose reply tuple
      // is the one the peer's packets through our port mapping need: the kernel drops those as a clash. With
      // a mapping held, the peer comes first through it (docs/nat.md "Port mapping").
      letPeerComeFirst: () => deps.candidates.natType === "endpoint-dependent" && !!deps.candidates.mappedEndpoint(),
      punchReady: () => deps.candidates.punchTtlKnown || PUNCH_TTL_OVERRIDE !== undefined,
      log,
      now: Date.now,
    });
    // While any peer is active the network is watched closely too (network-watch.ts): the path tick pokes the watch.
    this.pathTicker = new AdaptiveTicker(() => { const busy = this.paths.tick(); if (busy) this.watch.poke(); return busy; },
      PATH_TICK_MS, PATH_REST_TICK_MS, deps.restClock);
    device.setPathsManaged(true, {
      onWake: (peer) => this.onWake(peer.name),
      onDirectRx: (peer, from) => { this.paths.onDirectRx(peer.name, from); this.pathTicker.poke(); },
      adoptPath: (peer, from) => this.paths.adoptPath(peer.name, from),
      onRelayRx: (peer) => this.paths.onRelayRx(peer.name),
    });
    this.watch = new NetworkWatch({ onChange: (c) => this.networkChanged(c), active: () => this.anyActive(), restClock: deps.restClock,
      log });
    device.inner.register(INNER.PATH_PROBE, (peer, from, p) => this.paths.onProbe(peer.name, from, p));
    device.inner.register(INNER.PATH_PROBE_REPLY, (peer, from, p) => this.paths.onProbeReply(peer.name, from, p));
    device.inner.register(INNER.CALL_ME_MAYBE, (peer, _from, p) => { this.paths.onCallMeMaybe(peer.name, decodeCandidates(p), isCallMeMaybeAck(p)); this.pathTicker.poke(); });
    this.coord = new CoordClient({ coordUrl: deps.coordUrl, stateDir: deps.stateDir, log: (msg, fields) => log.info(fields ?? {}, `coord: ${msg}`) });
    this.coord.on("map", (m: PeerMap) => this.applyMap(m));
    this.coord.on("revocation", (text: string) => this.applyRevocation(text));
    this.coord.on("renewed", () => deps.onRenewed());
    this.coord.on("connected", () => {
      log.info({}, "coordination stream connected");
      deps.events.emit("coord_connected", {});
    });
    this.coord.on("error", (err: Error) => deps.events.emit("coord_error", { message: err.message }));
    this.coord.on("disconnected", () => {
      log.warn({}, "coordination stream lost; running on the cached map");
      deps.events.emit("coord_lost", {});
    });
  }

  start(): void {
    this.coord.start();
    // Our interface candidates are known now: published at once, whatever STUN will say, so a peer on a LAN (or
    // in a mesh whose relay is down) can reach us before the first netcheck or status beat (issue 24).
    this.report();
    this.pathTicker.start();
    this.watch.start();
    const clock = this.deps.restClock;
    this.stopPeriodic.push(
      repeat(clock, REPORT_INTERVAL_MS, () => this.report()),
      repeat(clock, Math.min(15_000, RELAY_IDLE_CLOSE_MS / 2), () => this.closeIdleRelays()),
      repeat(clock, clock?.beatMs ?? NETCHECK_INTERVAL_MS, () => this.periodicNetcheck()),
    );
  }

  async stop(): Promise<void> {
    for (const stop of this.stopPeriodic.splice(0)) stop();
    this.pathTicker.stop();
    this.watch.stop();
    clearTimeout(this.netcheckTimer);
    await this.coord.stop();
    await Promise.all([...this.relayClients.values()].map((r) => r.stop()));
  }

  /** The relay connections, read-only (syncRelays opens and closes them). */
  get relays(): ReadonlyMap<string, RelayClient> {
    return this.relayClients;
  }

  /** The relay this node reports as its home (pickHome is its one setter). */
  get homeRelay(): string | undefined {
    return this.home;
  }

  get peerMap(): PeerMap | undefined {
    return this.map;
  }

  /** A request to the coordination server with this node's certificate (logins). */
  coordPost(path: string, body: unknown): Promise<any> {
    return this.coord.post(path, body);
  }

  /** A peer's entry in the current map. */
  mapPeer(name: string): MapPeer | undefined {
    return this.mapPeers.get(name);
  }

  /** STUN servers of the map's relays, for netcheck. */
  stunServers(): StunServerAddress[] {
    return (this.map?.relays ?? []).filter((r) => r.stunPort).map((r) => ({ host: r.host, port: r.stunPort! }));
  }

  /** Frames on the relay connections and the coordination stream (keepalives included), for the node's traffic. */
  controlTraffic(): TrafficTotals {
    let t: TrafficTotals = { txPackets: this.coord.stats.statusReports, txBytes: this.coord.stats.statusBytes, rxPackets: this.coord.stats.frames, rxBytes: this.coord.stats.bytes };
    for (const r of this.relayClients.values()) {
      t = addTotals(t, { txPackets: r.stats.wireFramesOut, txBytes: r.stats.wireBytesOut, rxPackets: r.stats.wireFramesIn, rxBytes: r.stats.wireBytesIn });
    }
    return t;
  }

  /**
   * Room for a datagram on that relay. A relay closed while idle opens again, and takes up to RELAY_OPEN_QUEUE
   * datagrams meanwhile; past that the sender waits for "connected" (device.writableChanged).
   */
  relayWritable(relay: string): boolean {
    const c = this.relayClients.get(relay);
    if (!c) return false;
    if (c.connected && c.running) return c.writable();
    return this.openOnDemand(relay) && (this.relayOpening.get(relay)?.length ?? 0) < RELAY_OPEN_QUEUE;
  }

  sendViaRelay(to: Endpoint & { kind: "relay" }, data: Uint8Array): void {
    const c = this.relayClients.get(to.relay);
    if (!c) return;
    if ((c.connected && c.running) || !this.openOnDemand(to.relay)) {
      // A refusal (not connected, or no room after canSend said yes) is counted by the client (status: sendRefused).
      if (!c.send(to.peer, data)) this.deps.log.debug({ relay: to.relay, peer: to.peer }, "relay refused a datagram");
      return;
    }
    // Opening: hold a few datagrams (a handshake, a ping) rather than lose them to a TLS handshake's worth of time.
    const q = this.relayOpening.get(to.relay) ?? [];
    if (q.length < RELAY_OPEN_QUEUE) q.push({ peer: to.peer, data: Uint8Array.from(data) });
    this.relayOpening.set(to.relay, q);
  }

  /** Whether our connection to that relay is closed while idle (opened again by the first datagram that needs it). */
  relayIdle(relay: string): boolean {
    return this.relaysOnDemand.has(relay) && !this.relayClients.get(relay)?.running;
  }

  /** Starts a relay connection closed while idle; true while it is opening on demand (not failed). */
  private openOnDemand(relay: string): boolean {
    if (!this.relaysOnDemand.has(relay)) return false;
    const c = this.relayClients.get(relay)!;
    if (!c.running) {
      this.deps.log.info({ relay }, "relay: opening on demand");
      c.start();
    }
    return true;
  }

  /** Closes connections to relays other than our home that carried no datagram for RELAY_IDLE_CLOSE_MS. */
  private closeIdleRelays(): void {
    for (const [name, c] of this.relayClients) {
      if (name === this.home || !this.home || (c.idleMs ?? 0) < RELAY_IDLE_CLOSE_MS) continue;
      this.relaysOnDemand.add(name);
      this.deps.log.info({ relay: name, idleS: Math.round(c.idleMs! / 1000) }, "relay: closed while idle (opens on demand)");
      void c.stop();
    }
  }

  applyRevocation(text: string): void {
    const { verifier, device, log } = this.deps;
    const r = verifier.applyRevocationList(text);
    if (r.ok) {
      const dropped = device.enforceRevocations();
      log.info({ number: verifier.revocation.number, dropped }, "revocation list applied");
      for (const name of dropped) this.deps.onPeerGone(name, "certificate revoked");
    } else if (r.reason !== "stale_list") {
      log.warn({ reason: r.reason, detail: r.detail }, "revocation list refused");
    }
  }

  /** A peer woke from rest: its path is revalidated; our own mapping is checked again if it is old. */
  private onWake(name: string): void {
    this.paths.onWake(name);
    this.pathTicker.poke();
    if (Date.now() - this.lastNetcheckAt >= NETCHECK_INTERVAL_MS && this.map?.relays.length) this.scheduleNetcheck(0);
  }

  /**
   * Our network changed, or we woke (network-watch.ts; docs/networks.md "Nodes that move"). An address added alone is
   * reported as a candidate. Otherwise every direct path moves to the relay and is found again from the new network
   * (PathManager.networkChanged), the relays and the coordination stream connect again at once, and the coordination
   * server hears our candidates now and again after netcheck has measured the new network.
   */
  private networkChanged(c: NetworkChange): void {
    const away = c.why === "wake" || movedAway(c);
    const msg = c.why === "wake" ? "network: woke up" : "network changed";
    this.deps.log.info({ why: c.why, added: c.added, removed: c.removed, sleptMs: c.sleptMs, away }, msg);
    this.deps.events.emit("network_changed", { ...c, away });
    if (away) {
      this.deps.candidates.networkChanged();
      this.paths.networkChanged();
      this.pathTicker.poke();
      for (const r of this.relayClients.values()) if (r.running) r.reconnectNow(`our network changed (${c.why})`);
      this.coord.networkChanged();
    }
    this.report();
    if (this.netcheckRunning) this.netcheckAgain = true;
    else this.scheduleNetcheck(0);
  }

  /** Whether any peer is active (not at rest): netcheck runs only then (docs/nat.md "At rest"). */
  private anyActive(): boolean {
    for (const p of this.deps.device.peers.values()) if (!this.deps.device.isIdle(p)) return true;
    return false;
  }

  /** A netcheck now (the first relays of the map, a wake-up with an old one); the periodic one is periodicNetcheck. */
  private scheduleNetcheck(delayMs: number): void {
    clearTimeout(this.netcheckTimer);
    this.netcheckTimer = setTimeout(() => void this.netcheck(), delayMs);
    this.netcheckTimer.unref();
  }

  /**
   * Every beat: netcheck when the last one is NETCHECK_INTERVAL_MS old and any peer is active; at rest the check
   * is skipped (our mapping is not in use), and the next wake-up runs it if it is older than that. A node whose
   * last netcheck found UDP blocked checks at rest too, less often: that verdict is a problem `ember status`
   * shows, and it must clear by itself once UDP passes again.
   */
  private periodicNetcheck(): void {
    if (!this.lastNetcheckAt || this.netcheckRunning) return; // the first one comes with the map's relays
    const beat = this.deps.restClock?.beatMs ?? NETCHECK_INTERVAL_MS;
    const now = Date.now();
    if (this.anyActive() ? due(this.lastNetcheckAt, now, NETCHECK_INTERVAL_MS, beat)
      : this.deps.candidates.natType === "udp-blocked" && due(this.lastNetcheckAt, now, NETCHECK_BLOCKED_AT_REST_MS, beat)) void this.netcheck();
  }

  private async netcheck(): Promise<void> {
    if (this.netcheckRunning) return;
    this.netcheckRunning = true;
    this.lastNetcheckAt = Date.now();
    try {
      const r = await this.deps.candidates.refresh(this.stunServers());
      this.deps.log.info({ mapping: r.mapping, reflexive: this.deps.candidates.reflexiveEndpoints().map(describeEndpoint), hops: this.deps.candidates.hops, punchTtl: this.deps.candidates.punchTtl }, "netcheck");
      this.report();
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, "netcheck failed");
    } finally {
      this.netcheckRunning = false;
      if (this.netcheckAgain) { this.netcheckAgain = false; this.scheduleNetcheck(0); }
    }
  }

  /**
   * A map from the coordination server (full, or after a delta: the coordination client keeps every unchanged peer's
   * object, so identity tells what changed). Only the peers that changed get their paths and session set up again,
   * unless everyPeer (a relay connected: every relay path may change). Applying every peer on every delta made an
   * enrollment burst quadratic: 994 new identities meant ~500,000 peer set-ups, and their garbage grew a 999-peer
   * node's V8 heap to 62-72 MB during the burst (docs/performance.md "Memory").
   */
  private applyMap(m: PeerMap, everyPeer = false): void {
    const { device, log } = this.deps;
    const firstRelays = !this.map?.relays.length && m.relays.length > 0;
    const rulesChanged = this.map?.rules !== m.rules;
    this.map = m;
    if (firstRelays) this.scheduleNetcheck(0);
    if (m.revocation) this.applyRevocation(m.revocation);
    this.syncRelays(m);
    for (const p of m.peers) {
      const before = this.mapPeers.get(p.name);
      if (before === p && !everyPeer) continue;
      // A home relay the peer reported since: what relays said about it before is stale.
      if (before?.homeRelay !== p.homeRelay) this.relayAbsent.delete(p.name);
      this.mapPeers.set(p.name, p);
      const relay = this.relayPathFor(p.name);
      const direct = p.endpoints.map(parseEndpointString).filter((e): e is Endpoint => !!e);
      // A home relay not connected yet: no path at all until it is (its "connected" re-applies the map). A guessed
      // direct candidate would send full-TTL handshakes to the peer's NAT before anyone punched (a conntrack clash).
      // The session layer's peer first: the path manager's choice (setPeer) reaches it through usePath.
      device.addPeer(p.name);
      this.paths.setPeer(p.name, direct, relay, !!p.homeRelay && !relay);
    }
    // Every map peer is in mapPeers now; more entries than map peers means some left the map.
    if (this.mapPeers.size > m.peers.length) {
      const present = new Set(m.peers.map((p) => p.name));
      for (const name of this.mapPeers.keys()) if (!present.has(name)) this.mapPeers.delete(name);
    }
    // Policy hides a peer: it leaves the map, and its session goes with it.
    for (const name of device.peers.keys()) {
      if (!this.mapPeers.has(name) && !this.deps.staticPeers.has(name)) {
        device.removePeer(name);
        this.paths.removePeer(name);
        this.relayHeard.delete(name);
        this.relayAbsent.delete(name);
        log.info({ peer: name }, "peer left the map");
        this.deps.onPeerGone(name, "left the peer map (policy or removal)");
      }
    }
    this.pathTicker.poke();
    if (rulesChanged) this.deps.onRules(m.rules);
    this.deps.onPeers();
  }

  private syncRelays(m: PeerMap): void {
    const { log, verifier, device } = this.deps;
    for (const r of m.relays.slice(0, MAX_RELAYS)) {
      if (this.relayClients.has(r.name)) continue;
      const creds = this.deps.credentials();
      const client = new RelayClient({
        host: r.host, port: r.port, name: r.name,
        certChainPem: creds.certPem.trimEnd() + "\n" + creds.bundlePem.split(/(?=-----BEGIN CERTIFICATE-----)/).slice(1).join(""),
        keyPem: creds.keyPem, bundlePem: creds.bundlePem, verifier,
        log: (msg: string, f?: object) => log.debug(f ?? {}, `relay ${r.name}: ${msg}`), restClock: this.deps.restClock,
      });
      client.on("packet", (from: string, payload: Buffer) => {
        device.receive(payload, { kind: "relay", relay: r.name, peer: from });
        if (this.relayHeard.get(from) !== r.name) this.heardVia(from, r.name);
      });
      // Opened on demand: what waited goes first, then everyone else wakes (writableChanged below).
      client.on("connected", () => {
        this.relaysOnDemand.delete(r.name);
        for (const q of this.relayOpening.get(r.name) ?? []) client.send(q.peer, q.data);
        this.relayOpening.delete(r.name);
      });
      client.on("connect-failed", (why: string) => {
        if (!this.relaysOnDemand.delete(r.name)) return;
        this.relayOpening.delete(r.name);
        log.warn({ relay: r.name, why }, "relay: opening on demand failed");
        this.refreshRelayPaths();
      });
      client.on("unknown-peer", (name: string) => this.peerAbsent(name, r.name, "unknown peer"));
      client.on("peer-gone", (name: string) => this.peerAbsent(name, r.name, "peer gone"));
      // A relay that came up after the peers were known: give them their relay path now, once our home relay is
      // chosen (a peer's relay path falls back to it; applyMap sets up unchanged peers only here).
      client.on("connected", () => {
        log.info({ relay: r.name }, "relay connected");
        this.deps.events.emit("relay_connected", { relay: r.name });
        this.pickHome();
        if (this.map) this.applyMap(this.map, true);
      });
      for (const ev of ["connected", "drain"]) client.on(ev, () => device.writableChanged());
      // A relay that died: our home moves to another one now (and the coordination server hears it), and every peer
      // reached through it moves to a relay where it is connected; sessions keep their keys (Device.setPath).
      client.on("disconnected", (why: string) => {
        if (this.relaysOnDemand.has(r.name) && !client.running) return; // closed while idle, on purpose
        log.warn({ relay: r.name, why }, "relay disconnected");
        this.deps.events.emit("relay_lost", { relay: r.name, why });
        if (client.reconnecting) return; // replaced at once on purpose (our network changed): paths stay on it
        // Our home died: every relay closed while idle opens again, and the first one up becomes home.
        if (r.name === this.home) for (const name of this.relaysOnDemand) this.openOnDemand(name);
        this.pickHome();
        this.refreshRelayPaths();
      });
      this.relayClients.set(r.name, client);
      client.start();
    }
  }

  /** The relay path to a peer now (chooseRelayFor), or undefined when no relay is connected. */
  private relayPathFor(name: string): (Endpoint & { kind: "relay" }) | undefined {
    const absentUntil = this.relayAbsent.get(name);
    const now = Date.now();
    const absent = new Set<string>();
    for (const [relay, until] of absentUntil ?? []) {
      if (until > now) absent.add(relay);
      else absentUntil!.delete(relay);
    }
    // A relay closed while idle still counts: the first datagram opens it again.
    const relays = [...this.relayClients].map(([n, c]) => ({ name: n, connected: c.connected || this.relaysOnDemand.has(n) }));
    const relay = chooseRelayFor({ homeRelay: this.mapPeers.get(name)?.homeRelay, heardVia: this.relayHeard.get(name), absent }, relays, this.home);
    return relay ? { kind: "relay", relay, peer: name } : undefined;
  }

  /** Every map peer's relay path again (a relay connected or died, or our home moved). */
  private refreshRelayPaths(): void {
    for (const name of this.mapPeers.keys()) this.paths.setRelay(name, this.relayPathFor(name));
    this.pathTicker.poke();
  }

  /** A peer's packet came in on another relay than before: it is connected there, and may have moved there. */
  private heardVia(peer: string, relay: string): void {
    if (!this.mapPeers.has(peer)) return;
    this.relayHeard.set(peer, relay);
    this.relayAbsent.get(peer)?.delete(relay);
    const current = this.paths.peers.get(peer)?.relay;
    if (current?.kind !== "relay" || !this.relayClients.get(current.relay)?.connected) this.paths.setRelay(peer, this.relayPathFor(peer));
  }

  /** A relay says the peer is not connected there: reach it through another relay for a while. */
  private peerAbsent(peer: string, relay: string, why: string): void {
    if (!this.mapPeers.has(peer)) return;
    let m = this.relayAbsent.get(peer);
    if (!m) this.relayAbsent.set(peer, (m = new Map()));
    const known = (m.get(relay) ?? 0) > Date.now();
    m.set(relay, Date.now() + RELAY_ABSENT_MS);
    if (this.relayHeard.get(peer) === relay) this.relayHeard.delete(peer);
    if (known) return;
    const next = this.relayPathFor(peer);
    this.deps.log.info({ peer, relay, why, next: next?.relay }, "relay: peer not there");
    this.paths.setRelay(peer, next);
  }

  /** Home relay: the preferred one (EMBER_HOME_RELAY), else the connected relay with the lowest round trip. */
  private pickHome(): void {
    const next = chooseHomeRelay(this.home, [...this.relayClients].map(([name, c]) => ({ name, connected: c.connected, rttMs: c.rttMs })), HOME_RELAY_PREFERENCE);
    if (next && next !== this.home) {
      const from = this.home;
      this.home = next;
      this.deps.log.info({ relay: next, from, rttMs: this.relayClients.get(next)?.rttMs }, "home relay");
      this.report();
    }
  }

  report(): void {
    this.pickHome();
    this.coord.reportStatus({
      endpoints: this.deps.candidates.list().map(describeEndpoint),
      homeRelay: this.home,
      natType: this.deps.candidates.natType,
      services: this.deps.services(),
    });
  }
}
