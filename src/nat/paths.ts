// Path selection per peer (Tailscale's magicsock idea, explicit state): every peer has a relay path and
// zero or more direct candidates. Probes are PATH_PROBE/PATH_PROBE_REPLY messages sealed in the peer's session, so a path
// is proven by authenticated traffic, never by an address claim. The best answering direct path wins by
// latency; the relay stays warm as fallback; a direct path that stops answering is dropped within seconds.
import { describeEndpoint, endpointKey, sameEndpoint, type Endpoint } from "../session/endpoint.js";

export interface PathTimers {
  /** Probe interval while the peer runs over the relay (looking for a direct path). */
  probeWhileRelayedMs: number;
  /** Probe interval of the chosen direct path and the other candidates while direct. */
  probeWhileDirectMs: number;
  /** A direct path without a pong for this long is dead; traffic returns to the relay. */
  pathTimeoutMs: number;
  /** Resend call-me-maybe through the relay at most this often. */
  callMeMaybeMs: number;
  /**
   * Full-TTL probes to a not-yet-answering candidate start this long after our low-TTL punch (and the
   * call-me-maybe that makes the peer punch too): both NATs must hold their mapping before any packet
   * reaches the other one, or a Linux NAT's conntrack clash remaps the port (docs/nat.md).
   */
  punchLeadMs: number;
  /** Spray (port prediction + random ports) only after the candidates have been silent this long. */
  sprayAfterMs: number;
  /** Probes per spray attempt towards one peer address, and the pause before another attempt. */
  sprayBudget: number;
  sprayEveryMs: number;
}

export const DEFAULT_PATH_TIMERS: PathTimers = {
  probeWhileRelayedMs: 1_000,
  probeWhileDirectMs: 1_000,
  pathTimeoutMs: 3_000,
  callMeMaybeMs: 5_000,
  punchLeadMs: 250,
  sprayAfterMs: 3_000,
  sprayBudget: 256,
  sprayEveryMs: 60_000,
};

/**
 * The bounded spray towards a peer behind an endpoint-dependent NAT (run by the side whose own mapping is
 * endpoint-independent: only its one stable port can match the peer's mapping). Ports next to the peer's
 * reflexive port first (sequential allocators), then random ones, within sprayBudget probes.
 */
export interface SprayState {
  attempts: number;
  probes: number;
  lastAt: number;
  /** The endpoint that answered a spray probe, if any. */
  hit?: string;
}

const SPRAY_NEIGHBOURS = 16;
const SPRAY_PER_TICK = 64;

export interface Candidate {
  endpoint: Endpoint;
  /** Last low-TTL punch towards it (0: never). */
  punchedAt: number;
  lastProbeAt: number;
  lastPongAt: number;
  rttMs?: number;
  probes: number;
  pongs: number;
}

export interface PeerPaths {
  name: string;
  relay?: Endpoint;
  candidates: Map<string, Candidate>;
  /** The path traffic uses now. */
  current?: Endpoint;
  lastCallMeMaybeAt: number;
  /** When the first direct pong arrived, for "time to direct" reporting. */
  directSince?: number;
  switches: number;
  /** When probing began without any direct answer (for the spray trigger). */
  silentSince?: number;
  spray?: SprayState;
  /** Spray probes still to send in this attempt, paced over several ticks. */
  sprayQueue?: Endpoint[];
}

export interface PathHost {
  /** Sends a sealed inner message to the peer over exactly this endpoint (not moving the session). */
  sendVia(peer: string, endpoint: Endpoint, kind: PathMessageKind, payload: Uint8Array): void;
  /** Moves the peer's session traffic to this endpoint. */
  usePath(peer: string, endpoint: Endpoint): void;
  /** Whether a session exists (probes need keys). */
  hasSession(peer: string): boolean;
  /** Our own candidate endpoints, sent in call-me-maybe. */
  localCandidates(): Endpoint[];
  /** Low-TTL punch towards a candidate before full-TTL probes (see docs/nat.md). */
  punch?(endpoint: Endpoint): void;
  /** Our own mapping behaviour (netcheck): only an endpoint-independent side sprays. */
  mapping?(): string | undefined;
  log: { info(o: object, m?: string): void; debug(o: object, m?: string): void };
  now(): number;
}

/** The sealed messages path discovery sends; each is its own inner kind (src/wire/constants.ts INNER). */
export type PathMessageKind = "probe" | "probe-reply" | "call-me-maybe";

/** A probe's payload: 8 bytes naming it (pid, sequence), echoed by the reply. */
const PROBE_ID_BYTES = 8;

export class PathManager {
  readonly peers = new Map<string, PeerPaths>();
  private probeSeq = 0;
  private readonly outstanding = new Map<string, { peer: string; key: string; sentAt: number; spray?: Endpoint }>();

  constructor(private readonly host: PathHost, readonly timers: PathTimers = DEFAULT_PATH_TIMERS) {}

  private state(name: string): PeerPaths {
    let s = this.peers.get(name);
    if (!s) {
      s = { name, candidates: new Map(), lastCallMeMaybeAt: 0, switches: 0 };
      this.peers.set(name, s);
    }
    return s;
  }

  /** From the peer map: the peer's direct candidates and its home relay. */
  setPeer(name: string, candidates: Endpoint[], relay?: Endpoint): void {
    const s = this.state(name);
    s.relay = relay;
    this.mergeCandidates(s, candidates, false);
    // Until a direct path has answered, the relay (which always works) is the path; a guessed direct
    // candidate is only a stopgap while no relay is known, and gives way as soon as one is.
    if (!this.provenDirect(s)) {
      const next = relay ?? s.current ?? candidates[0];
      if (next && !sameEndpoint(next, s.current)) {
        s.current = next;
        this.host.usePath(name, next);
      }
    }
  }

  private provenDirect(s: PeerPaths): boolean {
    if (s.current?.kind !== "udp") return false;
    const c = s.candidates.get(endpointKey(s.current));
    return !!c && this.host.now() - c.lastPongAt <= this.timers.pathTimeoutMs;
  }

  removePeer(name: string): void {
    this.peers.delete(name);
  }

  private mergeCandidates(s: PeerPaths, candidates: Endpoint[], punchNow: boolean): void {
    for (const ep of candidates) {
      if (ep.kind !== "udp") continue;
      const key = endpointKey(ep);
      if (!s.candidates.has(key)) {
        s.candidates.set(key, { endpoint: ep, punchedAt: 0, lastProbeAt: 0, lastPongAt: 0, probes: 0, pongs: 0 });
        if (punchNow) this.probe(s, key);
      }
    }
  }

  /** The first path to try for a new session: the relay when known (always works), else a direct candidate. */
  initialPath(name: string): Endpoint | undefined {
    const s = this.peers.get(name);
    return s?.current ?? s?.relay ?? s?.candidates.values().next().value?.endpoint;
  }

  private probe(s: PeerPaths, key: string): void {
    const c = s.candidates.get(key);
    if (!c) return;
    const now = this.host.now();
    const answering = now - c.lastPongAt <= this.timers.pathTimeoutMs;
    if (!answering && this.host.punch) {
      // Not (or no longer) answering: punch with a low TTL first, ask the peer to punch too, probe later.
      if (now - c.punchedAt >= this.timers.probeWhileRelayedMs) {
        c.punchedAt = now;
        this.host.punch(c.endpoint);
        this.callMeMaybe(s, now);
      }
      if (now - c.punchedAt < this.timers.punchLeadMs) return;
    }
    const id = this.probeId();
    c.lastProbeAt = now;
    c.probes++;
    this.outstanding.set(id.toString("hex"), { peer: s.name, key, sentAt: performance.now() });
    if (this.outstanding.size > 4096) this.outstanding.delete(this.outstanding.keys().next().value!);
    this.host.sendVia(s.name, c.endpoint, "probe", id);
  }

  private probeId(): Buffer {
    const id = Buffer.allocUnsafe(PROBE_ID_BYTES);
    id.writeUInt32BE(process.pid >>> 0, 0);
    id.writeUInt32BE(++this.probeSeq >>> 0, 4);
    return id;
  }

  private callMeMaybe(s: PeerPaths, now: number): void {
    if (!s.relay || now - s.lastCallMeMaybeAt < this.timers.punchLeadMs) return;
    const mine = this.host.localCandidates();
    if (!mine.length) return;
    s.lastCallMeMaybeAt = now;
    this.host.sendVia(s.name, s.relay, "call-me-maybe", encodeCandidates(mine));
  }

  /** A probe from the peer arrived (authenticated) on `from`: answer on the same path, learn the path. */
  onProbe(peer: string, from: Endpoint, payload: Uint8Array): void {
    const s = this.state(peer);
    if (from.kind === "udp") this.mergeCandidates(s, [from], false);
    if (payload.length !== PROBE_ID_BYTES) return;
    this.host.sendVia(peer, from, "probe-reply", payload);
  }

  onProbeReply(peer: string, from: Endpoint, payload: Uint8Array): void {
    const key = Buffer.from(payload).toString("hex");
    const o = this.outstanding.get(key);
    if (!o || o.peer !== peer) return;
    this.outstanding.delete(key);
    const s = this.state(peer);
    if (o.spray) {
      // A sprayed port answered: it becomes a proven candidate.
      if (!sameEndpoint(o.spray, from)) return;
      if (s.spray) s.spray.hit = describeEndpoint(from);
      this.host.log.info({ peer, endpoint: describeEndpoint(from), probes: s.spray?.probes }, "spray hit: direct path through an endpoint-dependent NAT");
      const k = endpointKey(from);
      s.candidates.set(k, { endpoint: from, punchedAt: 0, lastProbeAt: this.host.now(), lastPongAt: this.host.now(), probes: 1, pongs: 1, rttMs: performance.now() - o.sentAt });
      s.sprayQueue = undefined;
      this.choose(s);
      return;
    }
    const c = s.candidates.get(o.key);
    if (!c || !sameEndpoint(c.endpoint, from)) return;
    c.lastPongAt = this.host.now();
    c.pongs++;
    c.rttMs = performance.now() - o.sentAt;
    this.choose(s);
  }

  /** The peer told us (through the relay) where it can be reached: punch there now, probe after the lead. */
  onCallMeMaybe(peer: string, candidates: Endpoint[]): void {
    const s = this.state(peer);
    this.mergeCandidates(s, candidates, false);
    const now = this.host.now();
    for (const c of s.candidates.values()) {
      if (now - c.lastPongAt <= this.timers.pathTimeoutMs) continue;
      c.punchedAt = now;
      this.host.punch?.(c.endpoint);
    }
  }

  private choose(s: PeerPaths): void {
    const now = this.host.now();
    let best: Candidate | undefined;
    for (const c of s.candidates.values()) {
      if (now - c.lastPongAt > this.timers.pathTimeoutMs || c.rttMs === undefined) continue;
      if (!best || c.rttMs < best.rttMs! * 0.8 || (sameEndpoint(c.endpoint, s.current) && c.rttMs < best.rttMs! * 1.25)) best = c;
    }
    const next = best?.endpoint ?? s.relay;
    if (!next || sameEndpoint(next, s.current)) return;
    this.host.log.info({ peer: s.name, from: describeEndpoint(s.current), to: describeEndpoint(next), rttMs: best?.rttMs }, best ? "path: direct" : "path: relay");
    if (best && s.directSince === undefined) s.directSince = now;
    if (!best) s.directSince = undefined;
    s.current = next;
    s.switches++;
    this.host.usePath(s.name, next);
  }

  tick(): void {
    const now = this.host.now();
    for (const s of this.peers.values()) {
      if (!this.host.hasSession(s.name)) continue;
      const direct = s.current?.kind === "udp" && s.current !== s.relay;
      const interval = direct ? this.timers.probeWhileDirectMs : this.timers.probeWhileRelayedMs;
      for (const [key, c] of s.candidates) {
        // A candidate punched but not yet probed gets its first probe as soon as the lead has passed.
        const firstAfterPunch = c.punchedAt > c.lastProbeAt && now - c.punchedAt >= this.timers.punchLeadMs;
        if (firstAfterPunch || now - c.lastProbeAt >= interval) this.probe(s, key);
      }
      if (!direct && s.relay && now - s.lastCallMeMaybeAt >= this.timers.callMeMaybeMs) this.callMeMaybe(s, now);
      this.choose(s);
      this.sprayTick(s, now);
    }
  }

  /**
   * Starts or continues a bounded spray when every direct candidate has been silent for sprayAfterMs,
   * we sit on the relay, and our own mapping is endpoint-independent.
   */
  private sprayTick(s: PeerPaths, now: number): void {
    const onRelay = s.current?.kind === "relay";
    const anyAnswer = [...s.candidates.values()].some((c) => now - c.lastPongAt <= this.timers.pathTimeoutMs);
    if (!onRelay || anyAnswer) { s.silentSince = undefined; s.sprayQueue = undefined; return; }
    s.silentSince ??= now;
    if (s.sprayQueue?.length) return this.sendSprayBatch(s);
    if (this.host.mapping?.() !== "endpoint-independent" || now - s.silentSince < this.timers.sprayAfterMs) return;
    if (s.spray && now - s.spray.lastAt < this.timers.sprayEveryMs) return;
    // Targets: every direct candidate of the peer (its reflexive address among them), budget split evenly.
    const targets = [...s.candidates.values()].map((c) => c.endpoint).filter((e): e is Endpoint & { kind: "udp" } => e.kind === "udp");
    if (!targets.length) return;
    const queue: Endpoint[] = [];
    const seen = new Set(targets.map(endpointKey));
    const per = Math.max(1, Math.floor(this.timers.sprayBudget / targets.length));
    for (const t of targets) {
      const add = (port: number): void => {
        const ep: Endpoint = { kind: "udp", host: t.host, port };
        if (port > 0 && port < 65536 && !seen.has(endpointKey(ep))) { seen.add(endpointKey(ep)); queue.push(ep); }
      };
      const start = queue.length;
      for (let d = 1; d <= SPRAY_NEIGHBOURS && queue.length - start < per; d++) { add(t.port + d); if (queue.length - start < per) add(t.port - d); }
      for (let tries = 0; queue.length - start < per && tries < per * 4; tries++) add(1024 + Math.floor(Math.random() * (65536 - 1024)));
    }
    s.spray = { attempts: (s.spray?.attempts ?? 0) + 1, probes: s.spray?.probes ?? 0, lastAt: now, hit: s.spray?.hit };
    s.sprayQueue = queue;
    this.host.log.info({ peer: s.name, probes: queue.length, targets: targets.map(describeEndpoint) }, "spray: bounded port prediction towards an unanswering peer");
    this.sendSprayBatch(s);
  }

  private sendSprayBatch(s: PeerPaths): void {
    const batch = s.sprayQueue!.splice(0, SPRAY_PER_TICK);
    for (const ep of batch) {
      const id = this.probeId();
      this.outstanding.set(id.toString("hex"), { peer: s.name, key: endpointKey(ep), sentAt: performance.now(), spray: ep });
      if (this.outstanding.size > 8192) this.outstanding.delete(this.outstanding.keys().next().value!);
      this.host.sendVia(s.name, ep, "probe", id);
      s.spray!.probes++;
    }
  }

  describe(name: string) {
    const s = this.peers.get(name);
    if (!s) return undefined;
    return {
      path: s.current ? (s.current.kind === "relay" ? `relay:${s.current.relay}` : "direct") : "-",
      endpoint: describeEndpoint(s.current),
      candidates: [...s.candidates.values()].map((c) => ({ endpoint: describeEndpoint(c.endpoint), rttMs: c.rttMs, alive: this.host.now() - c.lastPongAt <= this.timers.pathTimeoutMs, probes: c.probes, pongs: c.pongs })),
      switches: s.switches,
      spray: s.spray ? { attempts: s.spray.attempts, probes: s.spray.probes, hit: s.spray.hit ?? null } : undefined,
    };
  }
}

/** Candidates in call-me-maybe: "host:port" strings, comma-separated UTF-8 (small, sealed in the session). */
export function encodeCandidates(eps: Endpoint[]): Uint8Array {
  return Buffer.from(eps.filter((e) => e.kind === "udp").map((e) => describeEndpoint(e)).join(","), "utf8");
}

export function decodeCandidates(payload: Uint8Array): Endpoint[] {
  const out: Endpoint[] = [];
  for (const part of Buffer.from(payload).toString("utf8").split(",").slice(0, 32)) {
    const m = /^\[?([0-9a-fA-F:.]+)\]?:(\d{1,5})$/.exec(part.trim());
    if (!m) continue;
    const port = Number(m[2]);
    if (port > 0 && port < 65536) out.push({ kind: "udp", host: m[1], port });
  }
  return out;
}
