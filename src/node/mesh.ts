// The coordinated mesh: turns the coordination server's peer map into sessions and paths. It connects
// to the relays of the map (the home relay is the one with the lowest latency), keeps one session per
// visible peer, lets the path manager move each session between relay and direct paths, applies
// revocations at once, and reports this node's candidates back. Without a coordination server the
// daemon runs static peers only and this module is not used.
import { CoordClient, type PeerMap } from "../coord/client.js";
import { RelayClient } from "../nat/relay-client.js";
import { PathManager, decodeCandidates, type PathMessageKind } from "../nat/paths.js";
import { describeEndpoint, type Endpoint } from "../session/endpoint.js";
import { INNER, type InnerType } from "../session/crypto-adapter.js";
import type { Daemon } from "./daemon.js";

const MAX_RELAYS = 8;
const PATH_INNER: Record<PathMessageKind, InnerType> = {
  "probe": INNER.PATH_PROBE, "probe-reply": INNER.PATH_PROBE_REPLY, "call-me-maybe": INNER.CALL_ME_MAYBE,
};
const NETCHECK_INTERVAL_MS = 30_000;

export function parseEndpointString(s: string): Endpoint | undefined {
  const m = /^\[?([0-9a-fA-F:.]+)\]?:(\d{1,5})$/.exec(s.trim());
  if (!m) return undefined;
  const port = Number(m[2]);
  return port > 0 && port < 65536 ? { kind: "udp", host: m[1], port } : undefined;
}

export class Mesh {
  readonly coord: CoordClient;
  readonly relays = new Map<string, RelayClient>();
  homeRelay?: string;
  private map?: PeerMap;
  private reportTimer?: NodeJS.Timeout;

  readonly paths: PathManager;
  private pathTicker?: NodeJS.Timeout;
  private netcheckTimer?: NodeJS.Timeout;
  private netcheckRunning = false;

  constructor(private readonly daemon: Daemon, coordUrl: string, stateDir: string) {
    const device = daemon.device;
    this.paths = new PathManager({
      sendVia: (peer, ep, kind, payload) => { device.sendVia(peer, ep, PATH_INNER[kind], payload); },
      usePath: (peer, ep) => device.setPath(peer, ep),
      hasSession: (peer) => !!device.peers.get(peer)?.current,
      localCandidates: () => daemon.candidates(),
      punch: (ep) => daemon.punch(ep),
      mapping: () => daemon.natType,
      log: daemon.log,
      now: Date.now,
    });
    device.setPathsManaged(true);
    device.inner.register(INNER.PATH_PROBE, (peer, from, p) => this.paths.onProbe(peer.name, from, p));
    device.inner.register(INNER.PATH_PROBE_REPLY, (peer, from, p) => this.paths.onProbeReply(peer.name, from, p));
    device.inner.register(INNER.CALL_ME_MAYBE, (peer, _from, p) => this.paths.onCallMeMaybe(peer.name, decodeCandidates(p)));
    daemon.relaySend = (to, data) => this.sendViaRelay(to, data);
    this.coord = new CoordClient({ coordUrl, stateDir, log: (msg, fields) => daemon.log.info(fields ?? {}, `coord: ${msg}`) });
    this.coord.on("map", (m: PeerMap) => this.applyMap(m));
    this.coord.on("revocation", (text: string) => this.applyRevocation(text));
    this.coord.on("renewed", () => this.daemon.reloadCredentials());
    this.coord.on("connected", () => daemon.log.info({}, "coordination stream connected"));
    this.coord.on("disconnected", () => daemon.log.warn({}, "coordination stream lost; running on the cached map"));
  }

  start(): void {
    this.coord.start();
    this.pathTicker = setInterval(() => this.paths.tick(), 250);
    this.pathTicker.unref();
    this.reportTimer = setInterval(() => this.report(), 5_000);
    this.reportTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.reportTimer);
    clearInterval(this.pathTicker);
    clearTimeout(this.netcheckTimer);
    await this.coord.stop();
    await Promise.all([...this.relays.values()].map((r) => r.stop()));
  }

  applyRevocation(text: string): void {
    const r = this.daemon.verifier.applyRevocationList(text);
    if (r.ok) {
      const dropped = this.daemon.device.enforceRevocations();
      this.daemon.log.info({ number: this.daemon.verifier.revocation.number, dropped }, "revocation list applied");
    } else if (r.reason !== "stale_list") {
      this.daemon.log.warn({ reason: r.reason, detail: r.detail }, "revocation list refused");
    }
  }

  /** Netcheck on the map's relays now, then every NETCHECK_INTERVAL_MS; candidates follow it. */
  private scheduleNetcheck(delayMs: number): void {
    clearTimeout(this.netcheckTimer);
    this.netcheckTimer = setTimeout(async () => {
      if (this.netcheckRunning) return;
      this.netcheckRunning = true;
      try {
        const r = await this.daemon.runNetcheck();
        this.daemon.log.info({ mapping: r.mapping, reflexive: this.daemon.reflexive.map(describeEndpoint) }, "netcheck");
        this.report();
      } catch (err) {
        this.daemon.log.warn({ err: (err as Error).message }, "netcheck failed");
      } finally {
        this.netcheckRunning = false;
        this.scheduleNetcheck(NETCHECK_INTERVAL_MS);
      }
    }, delayMs);
    this.netcheckTimer.unref();
  }

  private applyMap(m: PeerMap): void {
    const firstRelays = !this.map?.relays.length && m.relays.length > 0;
    this.map = m;
    if (firstRelays) this.scheduleNetcheck(0);
    if (m.revocation) this.applyRevocation(m.revocation);
    this.syncRelays(m);
    const visible = new Set<string>();
    for (const p of m.peers) {
      visible.add(p.name);
      const relay: Endpoint | undefined = p.homeRelay && this.relays.get(p.homeRelay)?.connected ? { kind: "relay", relay: p.homeRelay, peer: p.name } : undefined;
      const direct = p.endpoints.map(parseEndpointString).filter((e): e is Endpoint => !!e);
      this.paths.setPeer(p.name, direct, relay);
      const peer = this.daemon.device.addPeer(p.name, this.paths.initialPath(p.name));
      if (!peer.current && !peer.endpoint) peer.endpoint = this.paths.initialPath(p.name);
    }
    // Policy hides a peer: it leaves the map, and its session goes with it.
    for (const name of [...this.daemon.device.peers.keys()]) {
      if (!visible.has(name) && !this.daemon.config.peers.some((s) => s.name === name)) {
        this.daemon.device.removePeer(name);
        this.paths.removePeer(name);
        this.daemon.log.info({ peer: name }, "peer left the map");
      }
    }
  }

  private syncRelays(m: PeerMap): void {
    for (const r of m.relays.slice(0, MAX_RELAYS)) {
      if (this.relays.has(r.name)) continue;
      const creds = this.daemon.creds;
      const client = new RelayClient({
        host: r.host, port: r.port, name: r.name,
        certChainPem: creds.certPem.trimEnd() + "\n" + creds.bundlePem.split(/(?=-----BEGIN CERTIFICATE-----)/).slice(1).join(""),
        keyPem: creds.keyPem, bundlePem: creds.bundlePem, verifier: this.daemon.verifier,
        log: (msg: string, f?: object) => this.daemon.log.debug(f ?? {}, `relay ${r.name}: ${msg}`),
      });
      client.on("packet", (from: string, payload: Buffer) => this.daemon.device.receive(payload, { kind: "relay", relay: r.name, peer: from }));
      // A relay that came up after the peers were known: give them their relay path now.
      client.on("connected", () => { if (this.map) this.applyMap(this.map); });
      client.on("connected", () => { this.daemon.log.info({ relay: r.name }, "relay connected"); this.pickHome(); });
      for (const ev of ["connected", "drain"]) client.on(ev, () => this.daemon.device.writableChanged());
      client.on("disconnected", (why: string) => this.daemon.log.warn({ relay: r.name, why }, "relay disconnected"));
      this.relays.set(r.name, client);
      client.start();
    }
  }

  /** Home relay: the connected relay with the lowest round trip. */
  private pickHome(): void {
    let best: [string, number] | undefined;
    for (const [name, c] of this.relays) {
      if (!c.connected) continue;
      const rtt = c.rttMs ?? Number.MAX_SAFE_INTEGER;
      if (!best || rtt < best[1]) best = [name, rtt];
    }
    if (best && best[0] !== this.homeRelay) {
      this.homeRelay = best[0];
      this.daemon.log.info({ relay: best[0], rttMs: best[1] }, "home relay");
      this.report();
    }
  }

  sendViaRelay(to: Endpoint & { kind: "relay" }, data: Uint8Array): void {
    this.relays.get(to.relay)?.send(to.peer, data);
  }

  report(): void {
    this.pickHome();
    this.coord.reportStatus({
      endpoints: this.daemon.candidates().map(describeEndpoint),
      homeRelay: this.homeRelay,
      natType: this.daemon.natType,
    });
  }

  get peerMap(): PeerMap | undefined {
    return this.map;
  }
}

