// What the node knows of its own health, in one place: it subscribes to the node's typed events (events.ts:
// policy decisions, handshakes, path changes, coordination and relay connections, certificate rotations), keeps
// the recent ones for `ember logs`, samples the peers' paths and latencies, diagnoses problems (diagnostics.ts),
// answers `ember whois`, and feeds the telemetry client.
import { X509Certificate } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TelemetryEvent, PeerSnapshot } from "../wire/coord/telemetry.js";
import { nearestRule } from "../policy/nearest.js";
import { describeEndpoint } from "../addr/endpoint.js";
import type { ControlMethods } from "./control.js";
import type { FlowDecisionEvent, NodeEvents } from "./events.js";
import type { Daemon } from "./daemon.js";
import { diagnose, type DeniedFlow, type DiagnosisFacts, type Problem } from "./diagnostics.js";
import type { Mesh } from "./mesh.js";
import { TelemetryClient } from "./telemetry.js";

/** Events kept for `ember logs` (newest last). */
const RECENT_MAX = 1_000;
const DENIED_MAX = 64;
export const DIAGNOSTICS_FILE = "diagnostics.json";

export type LogKind = "policy" | "connections";
export interface LogEvent { seq: number; at: string; kind: LogKind; event: string; peer?: string; [field: string]: unknown }

export class NodeHealth {
  readonly telemetry?: TelemetryClient;
  private readonly recent: LogEvent[] = [];
  private seq = 0;
  private readonly denied = new Map<string, DeniedFlow>();
  private mesh?: Mesh;
  private coord?: { connected: boolean; lastError?: string; since?: number };
  private readonly relayErrors = new Map<string, string>();
  private readonly lossSample = new Map<string, { probes: number; pongs: number; lossPct?: number }>();
  private readonly waiters = new Set<() => void>();
  /** Policy decisions seen, by "verdict|side" (metrics). */
  readonly decisionCounts = new Map<string, number>();

  constructor(private readonly d: Daemon) {
    const cfg = d.config;
    if (cfg.coordUrl) {
      this.telemetry = new TelemetryClient({
        coordUrl: cfg.coordUrl, stateDir: cfg.stateDir, log: d.log, verifier: d.verifier,
        credentials: () => d.credentials(), restClock: d.restClock, snapshot: () => { const peers = this.peers(); return { peers, problems: diagnose(this.facts(peers)) }; },
      });
    }
    this.subscribe(d.events);
  }

  start(mesh: Mesh | undefined): void {
    this.mesh = mesh;
    if (mesh) {
      this.coord = { connected: false, since: Date.now() };
      const events = this.d.events;
      events.on("coord_connected", () => { this.coord = { connected: true, since: Date.now() }; });
      events.on("coord_lost", () => { if (this.coord?.connected) this.coord = { connected: false, since: Date.now(), lastError: this.coord.lastError }; });
      events.on("coord_error", (e) => { if (this.coord && !this.coord.connected) this.coord.lastError = e.message; });
    }
    this.telemetry?.start();
  }

  async stop(): Promise<void> {
    await this.telemetry?.stop();
    for (const w of this.waiters) w();
  }

  // ---- the node's events ----------------------------------------------------------------------------

  private subscribe(events: NodeEvents): void {
    events.on("handshake_refused", (e) => {
      const at = Date.now();
      this.add({ kind: "connections", event: "handshake_failed", peer: e.peer, reason: e.reason, detail: e.detail, from: e.from }, at,
        { t: "handshake", at, ...(e.peer ? { peer: e.peer } : {}), ok: false, data: { reason: e.reason, from: e.from } });
    });
    // The responder's session, or the initiator's once the peer confirmed it (a resting mesh handshakes on first
    // data, so the node that sends first is the initiator).
    events.on("session_up", (e) => {
      const at = Date.now();
      this.add({ kind: "connections", event: "handshake_ok", peer: e.peer, endpoint: e.endpoint }, at,
        { t: "handshake", at, peer: e.peer, ok: true, data: { endpoint: e.endpoint, initiator: e.initiator } });
    });
    events.on("path_changed", (e) => {
      const at = Date.now();
      this.add({ kind: "connections", event: e.direct ? "path_direct" : "relay_fallback", peer: e.peer, from: e.from, to: e.to, rttMs: e.rttMs }, at,
        { t: "path", at, peer: e.peer, ok: e.direct, data: { from: e.from, to: e.to, ...(e.rttMs !== undefined ? { rttMs: Math.round(e.rttMs * 100) / 100 } : {}) } });
    });
    for (const up of [true, false]) {
      events.on(up ? "coord_connected" : "coord_lost", () => {
        const at = Date.now();
        this.add({ kind: "connections", event: up ? "coord_connected" : "coord_lost" }, at, { t: "coord", at, ok: up, data: { what: "coordination stream" } });
      });
    }
    events.on("relay_connected", (e) => {
      const at = Date.now();
      this.relayErrors.delete(e.relay);
      this.add({ kind: "connections", event: "relay_connected", relay: e.relay }, at, { t: "coord", at, ok: true, data: { relay: e.relay } });
    });
    events.on("relay_lost", (e) => {
      const at = Date.now();
      this.relayErrors.set(e.relay, e.why);
      this.add({ kind: "connections", event: "relay_lost", relay: e.relay, why: e.why }, at, { t: "coord", at, ok: false, data: { relay: e.relay, why: e.why } });
    });
    events.on("certificate_rotated", (e) => {
      const at = Date.now();
      this.add({ kind: "connections", event: "certificate_rotated", serial: e.serial, notAfter: e.notAfter }, at,
        { t: "coord", at, ok: true, data: { what: "certificate rotated", serial: e.serial, notAfter: e.notAfter } });
    });
    // ember logs only: a node's own network is not the console's news (its paths' changes follow as events).
    events.on("network_changed", (e) => {
      const event = e.why === "wake" ? "woke_up" : "network_changed";
      this.add({ kind: "connections", event, added: e.added, removed: e.removed, sleptMs: e.sleptMs, away: e.away }, Date.now());
    });
    events.on("flow_decision", (e) => this.onFlow(e, Date.now()));
  }

  private onFlow(e: FlowDecisionEvent, at: number): void {
    const allow = e.event === "flow_allowed";
    const f = e.flow;
    const self = this.d.name;
    const from = f && (f.from.kind === "user" ? f.from.device ?? "?" : f.from.name);
    const peer = f ? (from === self ? f.to.name : from) : e.peer;
    if (e.event === "flow_denied" && f && e.text) {
      const key = `${e.side}|${e.text}`;
      const prev = this.denied.get(key);
      const nearest = nearestRule({ rules: this.d.policy.rules }, f.from, f.to, f.port, f.protocol);
      this.denied.set(key, { flow: e.text, from: from!, to: f.to.name, port: f.port, protocol: f.protocol, reason: e.reason ?? "", side: e.side ?? "receiver", at, count: (prev?.count ?? 0) + 1, ...(nearest ? { nearest } : {}) });
      if (this.denied.size > DENIED_MAX) this.denied.delete(this.denied.keys().next().value!);
    }
    const verdict = allow ? "allow" : e.event === "flow_denied" ? "deny" : e.event === "flow_cut" ? "cut" : "refused";
    const ck = `${verdict}|${e.side ?? "receiver"}`;
    this.decisionCounts.set(ck, (this.decisionCounts.get(ck) ?? 0) + 1);
    const user = f?.from.kind === "user" ? f.from.name : undefined;
    this.add({ kind: "policy", event: e.event, verdict, side: e.side, flow: e.text, rule: e.rule, reason: e.reason, peer }, at,
      e.event === "flow_refused" ? undefined : {
        t: "decision", at, ...(peer && /^[a-z0-9-]+$/.test(peer) ? { peer } : {}), ok: allow,
        data: { side: e.side ?? "receiver", verdict, flow: e.text, ...(f ? { from: from!, to: f.to.name, port: f.port, protocol: f.protocol } : {}), ...(user ? { user } : {}), ...(e.rule ? { rule: e.rule } : {}), reason: e.reason },
      });
  }

  private add(e: Omit<LogEvent, "seq" | "at">, at: number, t?: TelemetryEvent): void {
    const ev = { ...e, seq: ++this.seq, at: new Date(at).toISOString() } as LogEvent;
    for (const k of Object.keys(ev)) if (ev[k] === undefined) delete ev[k];
    this.recent.push(ev);
    if (this.recent.length > RECENT_MAX) this.recent.shift();
    if (t) this.telemetry?.record(t);
    for (const w of [...this.waiters]) w();
  }

  // ---- views -----------------------------------------------------------------------------------------

  /** Events of a kind after `after` (a seq); with waitMs, waits that long for the first new one (for --follow). */
  async logs(kind: LogKind | undefined, after: number, limit: number, waitMs = 0): Promise<{ events: LogEvent[]; last: number }> {
    const pick = () => this.recent.filter((e) => e.seq > after && (!kind || e.kind === kind)).slice(-limit);
    let events = pick();
    if (events.length === 0 && waitMs > 0) {
      await new Promise<void>((resolve) => {
        const done = () => { clearTimeout(t); this.waiters.delete(done); resolve(); };
        const t = setTimeout(done, Math.min(waitMs, 30_000));
        this.waiters.add(done);
      });
      events = pick();
    }
    return { events, last: Math.max(after, this.seq) };
  }

  peers(): PeerSnapshot[] {
    const out: PeerSnapshot[] = [];
    for (const p of this.d.device.peers.values()) {
      const ep = p.endpoint;
      const path = ep?.kind === "relay" ? `relay:${ep.relay}` : ep ? "direct" : "-";
      // Only a direct path has candidate figures; describe() builds a whole report, so not for every relayed or
      // unreachable peer (a 999-peer node did it twice every 5 s for the telemetry snapshot: its at-rest garbage).
      const cur = path === "direct" ? this.mesh?.paths.describe(p.name)?.candidates.find((c) => c.endpoint === describeEndpoint(ep)) : undefined;
      const rtt = path === "direct" && cur?.rttMs !== undefined ? cur.rttMs : p.stats.lastRttMs;
      // Loss on the direct path: path probes answered since the last sample.
      let lossPct: number | undefined;
      if (cur && path === "direct") {
        const prev = this.lossSample.get(p.name);
        const probes = cur.probes - (prev?.probes ?? 0), pongs = cur.pongs - (prev?.pongs ?? 0);
        lossPct = probes >= 5 ? Math.max(0, Math.round((1 - pongs / probes) * 1000) / 10) : prev?.lossPct;
        if (probes >= 5 || !prev) this.lossSample.set(p.name, { probes: cur.probes, pongs: cur.pongs, lossPct });
      }
      // No path, or no session: the last latency is history, not a connection (the console would show it as one).
      const live = path !== "-" && p.state === "connected";
      out.push({ name: p.name, path, state: String(p.state), ...(live && rtt !== undefined ? { rttMs: Math.round(rtt * 100) / 100 } : {}), ...(live && lossPct !== undefined ? { lossPct } : {}) });
    }
    return out;
  }

  /** peers: this.peers() when the caller has it already (each call also advances the loss samples). */
  facts(peers: PeerSnapshot[] = this.peers()): DiagnosisFacts {
    const mesh = this.mesh;
    const id = this.d.identity();
    const now = Date.now();
    const relays = [...(mesh?.relays ?? new Map())].map(([name, r]) => {
      const mr = mesh?.peerMap?.relays.find((x) => x.name === name);
      return { name, host: mr?.host ?? "?", port: mr?.port ?? 443, connected: r.connected, ...(this.relayErrors.has(name) ? { lastError: this.relayErrors.get(name) } : {}) };
    });
    return {
      now, coordUrl: this.d.config.coordUrl, coord: this.coord, relays,
      natType: this.d.candidates?.natType, stunServers: (mesh?.stunServers() ?? []).map((s) => `${s.host}:${s.port}`),
      peers, clock: this.telemetry?.clock,
      certificate: { notBefore: id.notBefore.getTime(), notAfter: id.notAfter.getTime(), ...(now > id.notAfter.getTime() ? { problem: "expired" } : now < id.notBefore.getTime() ? { problem: "not_yet_valid" } : {}) },
      denied: [...this.denied.values()],
      peerVersions: [...this.d.device.peers.values()].flatMap((p) => (p.version ? [{ name: p.name, ...p.version }] : [])),
    };
  }

  problems(): Problem[] {
    return diagnose(this.facts());
  }

  /** `ember whois NAME|ADDRESS`: a peer (or this node) by name, or by an address it was seen or announced at. */
  whois(query: string) {
    const q = query.trim().toLowerCase();
    const self = this.d.identity();
    if (q === self.name) return { name: self.name, self: true, tenant: self.tenant, groups: self.groups, roles: self.roles, identity: self.spiffeId, serial: self.serial, notBefore: self.notBefore.toISOString(), notAfter: self.notAfter.toISOString(), source: "own certificate" };
    const byAddr = (name: string) => {
      const host = q.replace(/^\[|\](:\d+)?$/g, "").replace(/:\d+$/, "");
      const eps = [...(this.d.knownPeer(name) ? this.mesh?.mapPeer(name)?.endpoints ?? [] : []), describeEndpoint(this.d.device.peers.get(name)?.endpoint)];
      return eps.some((e) => e === q || e.replace(/^\[|\](:\d+)?$/g, "").replace(/:\d+$/, "") === host || e.startsWith(`${host}:`));
    };
    const names = [...new Set([...this.d.device.peers.keys(), ...(this.mesh?.peerMap?.peers.map((p) => p.name) ?? [])])];
    const name = names.find((n) => n === q) ?? names.find((n) => byAddr(n));
    if (!name) throw new Error(`no peer named or seen at "${query}" (known: ${names.join(", ") || "none"})`);
    const session = this.d.peerIdentity(name);
    const mp = this.mesh?.mapPeer(name);
    let cert: { serial: string; notBefore: string; notAfter: string } | undefined;
    if (!session && mp?.certPem) {
      try { const x = new X509Certificate(mp.certPem); cert = { serial: x.serialNumber.toLowerCase(), notBefore: new Date(x.validFrom).toISOString(), notAfter: new Date(x.validTo).toISOString() }; } catch { cert = undefined; }
    }
    const peer = this.d.device.peers.get(name);
    return {
      name, self: false, tenant: session?.tenant ?? mp?.tenant ?? "", groups: session?.groups ?? mp?.groups ?? [], roles: session?.roles ?? [],
      identity: session?.spiffeId, serial: session?.serial ?? cert?.serial, notBefore: session?.notBefore.toISOString() ?? cert?.notBefore, notAfter: session?.notAfter.toISOString() ?? cert?.notAfter,
      source: session ? "verified session certificate" : "peer map certificate",
      path: peer?.endpoint ? (peer.endpoint.kind === "relay" ? `relay:${peer.endpoint.relay}` : "direct") : "-", endpoint: describeEndpoint(peer?.endpoint),
      endpoints: mp?.endpoints ?? [], homeRelay: mp?.homeRelay, online: mp?.online, services: mp?.services ?? [],
    };
  }

  registerMethods(methods: ControlMethods): void {
    methods.register("diagnostics", () => ({ problems: this.problems(), facts: this.facts(), telemetry: this.telemetry?.stats }));
    methods.register("whois", (p) => this.whois(String(p.query ?? "")));
    methods.register("logs", (p) => {
      const kind = p.kind === "policy" || p.kind === "connections" ? p.kind : undefined;
      return this.logs(kind, Number(p.after ?? 0) || 0, Math.min(Number(p.limit ?? 100) || 100, RECENT_MAX), Number(p.waitMs ?? 0) || 0);
    });
    // `ember ping`: the path and round trip of one try.
    methods.register("ping-path", async (p) => {
      const name = String(p.name ?? "");
      const t = Number(p.timeoutMs ?? 5_000);
      const rttMs = await this.d.device.ping(name, t);
      const ep = this.d.device.peers.get(name)?.endpoint;
      return { name, rttMs, path: ep?.kind === "relay" ? `relay:${ep.relay}` : ep ? "direct" : "-", endpoint: describeEndpoint(ep) };
    });
  }
}

/** `ember up` failed before the daemon ran: the problem, kept for `ember status` (STATE/diagnostics.json). */
export function saveStartFailure(stateDir: string, failure: { error: string; problems: Problem[] }): void {
  try { writeFileSync(join(stateDir, DIAGNOSTICS_FILE), JSON.stringify({ at: new Date().toISOString(), ...failure }, null, 2) + "\n", { mode: 0o600 }); } catch { /* best effort */ }
}
