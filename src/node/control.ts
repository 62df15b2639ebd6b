// The control API's methods and the shape of their answers: what `ember status`, `peers`, `ping` and
// `netcheck` print (with --json, exactly these objects). The socket that carries them is control-socket.ts.
// Layers above the session add their own methods with ControlMethods.register (e.g. streams, forwards).
import { RELEASE } from "../release.js";
import { aead } from "../crypto/aead.js";
import { describeEndpoint, familyOf, type Endpoint } from "../addr/endpoint.js";
import type { ControlConnection, ControlHandler } from "./control-socket.js";
import type { Daemon } from "./daemon.js";
import { parseService } from "./services.js";
import { registerLoginMethods } from "./login-control.js";

const MAX_PING_TIMEOUT_MS = 60_000;

export type ControlMethod = (params: Record<string, unknown>, conn: ControlConnection) => Promise<unknown> | unknown;

export class ControlMethods {
  private readonly methods = new Map<string, ControlMethod>();

  register(name: string, fn: ControlMethod): void {
    if (this.methods.has(name)) throw new Error(`control method "${name}" is already registered`);
    this.methods.set(name, fn);
  }

  /** The handler the control socket calls. */
  handler(): ControlHandler {
    return async (method, params, conn) => {
      const fn = this.methods.get(method);
      if (!fn) throw new Error(`unknown control method "${method}"`);
      return fn(params, conn);
    };
  }
}

/** The node's own methods: status, peers, ping, netcheck. */
export function registerNodeMethods(methods: ControlMethods, d: Daemon): void {
  registerServiceMethods(methods, d);
  registerLoginMethods(methods, d);
  methods.register("status", () => statusReport(d));
  methods.register("peers", () => peersReport(d));
  methods.register("netcheck", () => d.runNetcheck());
  methods.register("ping", async (params) => {
    const name = params.name;
    if (typeof name !== "string" || name === "") throw new Error("ping: give the peer's name");
    const timeoutMs = params.timeoutMs === undefined ? 5_000 : Number(params.timeoutMs);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_PING_TIMEOUT_MS) throw new Error(`ping: timeoutMs must be 1-${MAX_PING_TIMEOUT_MS}`);
    return { name, rttMs: await d.device.ping(name, timeoutMs) };
  });
}

/** `ember serve`: add, remove and list this node's services at run time. */
export function registerServiceMethods(methods: ControlMethods, d: Daemon): void {
  methods.register("serve", (params) => {
    const s = parseService({ name: String(params.name ?? ""), to: String(params.to ?? ""), protocol: params.protocol as string | undefined, port: params.port as number | undefined });
    d.services.add(s);
    d.log.info({ service: s.name, port: s.port, protocol: s.protocol, to: `${s.to!.host}:${s.to!.port}` }, "service exposed");
    return servicesReport(d);
  });
  methods.register("unserve", (params) => {
    const name = String(params.name ?? "");
    if (!d.services.remove(name)) throw new Error(`no service "${name}" on this node (it has: ${d.services.list().map((s) => s.name).join(", ") || "none"})`);
    d.log.info({ service: name }, "service withdrawn");
    return servicesReport(d);
  });
  methods.register("services", () => servicesReport(d));
}

export function servicesReport(d: Daemon) {
  return d.services.list().map((s) => ({ name: s.name, port: s.port, protocol: s.protocol, to: s.to ? `${s.to.host}:${s.to.port}` : "(in-process listener)" }));
}

export function statusReport(d: Daemon) {
  const id = d.identity();
  const mesh = d.mesh;
  return {
    name: id.name, identity: id.spiffeId, tenant: id.tenant, groups: id.groups,
    // The running release: a daemon started before an upgrade of the package says the old one.
    release: RELEASE,
    // Assigned by the coordination server (TUN mode); absent for a node without one.
    overlayIp: mesh?.peerMap?.self.overlayIp,
    // The person logged in on this node (ember login): its flows are theirs.
    user: userReport(d),
    certificate: { serial: id.serial, notAfter: id.notAfter.toISOString() },
    listen: d.listenAddress(),
    // Every socket of the node's port: IPv4 and IPv6 (docs/nat.md "IPv6").
    sockets: d.socketAddresses(),
    uptimeS: Math.round((Date.now() - d.startedAt) / 1000),
    cipher: aead.name, // the transport's ChaCha20-Poly1305 backend: libsodium, or node:crypto without the addon
    dataPlane: d.dataPlaneReport(),
    coordination: mesh ? {
      url: mesh.coord.origin, ...(d.config.coordReplicas.length > 1 ? { replicas: d.config.coordReplicas } : {}), homeRelay: mesh.homeRelay,
      relays: [...mesh.relays].map(([n, r]) => ({ name: n, connected: r.connected, ...(mesh.relayIdle(n) ? { idle: true } : {}), rttMs: r.rttMs, sendRefused: r.stats.sendRefused })), mapSeq: mesh.peerMap?.seq,
    } : undefined,
    policy: { rules: d.policy.ruleCount, hash: d.policy.hash.slice(0, 12) },
    services: servicesReport(d),
    flows: flowsReport(d),
    access: d.access.report(),
    traffic: { perMinute: d.traffic.perMinute(), total: d.traffic.totals() },
    memory: memoryReport(),
    peers: peersReport(d),
    drops: Object.fromEntries(d.device.drops),
    problems: d.health.problems(),
  };
}

function userReport(d: Daemon) {
  const u = d.loggedInUser();
  return u ? { name: u.name, groups: u.groups, notAfter: u.notAfter.toISOString() } : undefined;
}

/** The daemon's memory in MiB: resident, and V8's heap (total reserved, used) and off-heap buffers. */
export function memoryReport() {
  const m = process.memoryUsage();
  const mb = (n: number) => Math.round((n / 1048576) * 10) / 10;
  return { rssMb: mb(m.rss), heapTotalMb: mb(m.heapTotal), heapUsedMb: mb(m.heapUsed), externalMb: mb(m.external), arrayBuffersMb: mb(m.arrayBuffers) };
}

/** Flow counters, and per peer the stream layer's own (streams, bytes, losses, drops by reason). */
export function flowsReport(d: Daemon) {
  const s = d.flows.stats();
  return {
    opened: s.opened, accepted: s.accepted, denied: s.denied, refused: s.refused, cut: s.cut, live: s.live,
    peers: Object.fromEntries(Object.entries(s.peers).map(([name, m]) => [name, {
      openStreams: m.openStreams, streamsOpened: m.streamsOpened, streamsAccepted: m.streamsAccepted, opensRefused: m.opensRefused,
      bytesSent: m.bytesSent, bytesReceived: m.bytesReceived, packetsLost: m.packetsLost, srttMs: m.srttMs, cwnd: m.cwnd, drops: m.drops,
      // What a stalled transfer is waiting for: data in flight, buffered, a probe timer, or a link that said full.
      bytesInFlight: m.bytesInFlight, sendBuffered: m.sendBuffered, receiveBuffered: m.receiveBuffered, ptoCount: m.ptoCount,
      linkBlocked: m.linkBlocked, idleTimeouts: m.idleTimeouts,
    }])),
  };
}

function familyLabel(ep: Endpoint | undefined): "IPv4" | "IPv6" | undefined {
  return ep?.kind === "udp" ? (familyOf(ep.host) === 6 ? "IPv6" : "IPv4") : undefined;
}

function pathLabel(ep: Endpoint | undefined): string {
  return ep?.kind === "relay" ? `relay:${ep.relay}` : ep ? "direct" : "-";
}

export function peersReport(d: Daemon) {
  return [...d.device.peers.values()].map((p) => ({
    name: p.name,
    state: p.state,
    ...(p.refusal ? { refusal: p.refusal } : {}),
    // At rest (no application data for the idle bound) nothing is probed and only a direct path is held.
    activity: d.device.isIdle(p) ? "idle" : "active",
    lastData: new Date(p.lastDataAt).toISOString(),
    // The path manager owns the path (docs/nat.md "Who owns the path"); the session's endpoint follows it, so one
    // read serves every report (status, peers, telemetry and the native plane read the same).
    path: pathLabel(p.endpoint),
    // The address family of a direct path (docs/nat.md "IPv6"); none for the relay.
    family: familyLabel(p.endpoint),
    // Both directions: where we send, and where the peer's last packets came from (direct within the path timeout).
    direction: {
      out: pathLabel(p.endpoint),
      in: p.lastDirectRxAt && p.lastDirectRxAt >= p.lastRelayRxAt ? "direct" : p.lastRelayRxAt ? "relay" : "-",
    },
    notDirect: d.mesh?.paths.describe(p.name)?.notDirect,
    paths: d.mesh?.paths.describe(p.name),
    endpoint: describeEndpoint(p.endpoint),
    identity: p.identity?.spiffeId,
    // What the peer announced in its last handshake (protocol 1: release 0.1.0, which announces nothing).
    version: p.version,
    overlayIp: d.knownPeer(p.name)?.overlayIp,
    services: d.knownPeer(p.name)?.services ?? [],
    lastHandshake: p.stats.lastHandshakeAt ? new Date(p.stats.lastHandshakeAt).toISOString() : undefined,
    // The session's start: a rekey keeps it; keys dropped (a dead peer, expiry at rest) and a new handshake change it.
    sessionSince: p.stats.sessionSince ? new Date(p.stats.sessionSince).toISOString() : undefined,
    rttMs: p.stats.lastRttMs !== undefined ? Math.round(p.stats.lastRttMs * 1000) / 1000 : undefined,
    txBytes: p.stats.txBytes, rxBytes: p.stats.rxBytes, txPackets: p.stats.txPackets, rxPackets: p.stats.rxPackets,
    handshakes: p.stats.handshakes,
  }));
}
