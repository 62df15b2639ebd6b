// The node's side of the coordination protocol: enrollment with a token, the long-lived peer-map stream
// (full map, then deltas; resumes by sequence number), status reports, automatic certificate renewal and
// revocation lists. Everything here survives a coordination outage: errors are events, never throws.
import { coordOrigins } from "./origins.js";
import { acrossReplicas } from "./failover.js";
import { FAIL_BACK_DEFAULTS, FAIL_BACK_ENV, parseFailBack, PreferredReplicaWatch, type FailBackTiming } from "./fail-back.js";
import { EventEmitter } from "node:events";
import { randomInt } from "node:crypto";
import type { Agent } from "node:https";
import { request } from "node:https";
import type { ClientRequest } from "node:http";
import {
  createCsr, generateEd25519, parseCertificate, pemBlocks, privateKeyToPem, Verifier, withIntermediates, LEAF_BACKDATE_MS,
} from "../pki/index.js";
import { FrameError, FrameReader, STREAM_IDLE_MS, type DeltaFrame, type FullFrame, type DecodedFrame, type MapPeer, type MapRelay, type MapSelf } from "../wire/coord/map.js";
import { PATHS, STATUS_MIN_INTERVAL_MS, type EnrollAnswer, type EnrollRequest, type StatusReport } from "../wire/coord/api.js";
import { PROTOCOL_VERSION, VERSION_HEADERS, announcedProtocol, announcedSoftware, describeVersion } from "../wire/protocol.js";
import { UnknownTally } from "../wire/unknown.js";
import { RELEASE } from "../release.js";

/** What every status report says of this node's version (api.ts StatusReport). */
const ANNOUNCED_VERSION = { protocol: PROTOCOL_VERSION, version: RELEASE.version };
import { installCredentials, installEnrollment, readCredentials, STATE_FILES, writeAtomic } from "./state-files.js";
import { bootstrapAgent, RequestError, requestJson, verifiedAgent } from "../pki/mtls-client.js";
import { COORD_SERVER } from "../wire/coord/names.js";
import { parseToken, rootPin, type ParsedToken } from "../wire/coord/token.js";
import type { CompiledRule } from "../policy/types.js";
import { rulesFromWire } from "../policy/wire.js";
import { checkEdgeView, type EdgeView } from "../wire/coord/edge.js";

export type { MapPeer, MapRelay } from "../wire/coord/map.js";
export { readCredentials, STATE_FILES } from "./state-files.js";
export { RequestError } from "../pki/mtls-client.js";

export interface PeerMap {
  seq: number;
  self: MapSelf;
  peers: MapPeer[];
  /**
   * The policy rules that concern this node, checked field by field (src/policy/wire.ts). Rules that fail
   * the check are replaced by none at all: the node then denies every flow (fail closed) and says why.
   */
  rules: CompiledRule[];
  relays: MapRelay[];
  revocation?: string;
  /** For a node with role edge: the publications it serves (checked; a bad view serves nothing). */
  edge?: EdgeView;
}

export interface EnrollResult { certPem: string; bundlePem: string; notAfter: string; certTtlMs: number; tenant: string; groups: string[] }


/**
 * Enrolls this node: fetches the trust bundle, checks its root against the token's pin, then (over a
 * connection whose server certificate the bundle verifies) sends a CSR with the token. The key is made here
 * and never leaves. Writes stateDir/key.pem (0600), cert.pem, bundle.pem, revocation.json.
 */
export async function enroll(opts: { coordUrl: string; token: string; name: string; stateDir: string }): Promise<EnrollResult> {
  const origins = coordOrigins(opts.coordUrl);
  const token = parseToken(opts.token);
  // Replicas in order: the first that answers enrolls us (a one-time token is single-use across all of them, so
  // a token a failed replica consumed is refused by the next as token_used, never used twice). A 503 (that
  // replica cannot reach its store) goes on to the next; a server this token's pin does not trust ends it.
  return acrossReplicas(origins, (origin) => enrollAt(origin, token, opts), { idempotent: true, final: (err) => err instanceof UntrustedServer });
}

/** The server's bundle fails the token's pin, or its answer is unusable: no other replica is tried. */
class UntrustedServer extends Error {}

async function enrollAt(origin: string, token: ParsedToken, opts: { token: string; name: string; stateDir: string }): Promise<EnrollResult> {
  // One connection for both requests: unverified for the bundle on purpose (what comes back is checked against
  // the pin before it is trusted), then verified by that bundle before it carries the token.
  const agent = bootstrapAgent(COORD_SERVER);
  let r: EnrollAnswer, bundlePem: string, verifier: Verifier, keys: ReturnType<typeof generateEd25519>;
  try {
    const b = await requestJson(agent, origin + PATHS.bundle, "GET");
    bundlePem = typeof b?.bundlePem === "string" ? b.bundlePem : "";
    let rootDer: Uint8Array;
    try { rootDer = pemBlocks(bundlePem, "CERTIFICATE", "trust bundle")[0]; } catch (err) {
      throw new UntrustedServer(`${origin} sent no usable trust bundle: ${(err as Error).message}`);
    }
    const pin = rootPin(rootDer);
    if (pin !== token.pin) {
      throw new UntrustedServer(`the server's root CA (sha256 ${pin}) does not match the token's pin (${token.pin}): wrong server, a token of another mesh, or an interception`);
    }
    verifier = new Verifier({ bundlePem });
    agent.trust(verifier);
    keys = generateEd25519();
    const csr = await createCsr(keys, opts.name);
    const request: EnrollRequest = { token: opts.token.trim(), name: opts.name, csr };
    r = await requestJson(agent, origin + PATHS.enroll, "POST", request);
  } finally { agent.destroy(); }
  const certPem: string = r.certPem;
  const v = verifier.verifyPem(withIntermediates(certPem, bundlePem));
  if (!v.ok || v.identity.name !== opts.name) throw new UntrustedServer(`the server returned a certificate this node cannot use: ${v.ok ? `for "${v.identity.name}"` : v.detail}`);
  await installEnrollment(opts.stateDir, {
    bundlePem, revocation: typeof r.revocation === "string" ? r.revocation : undefined, keyPem: privateKeyToPem(keys.privateKey), certPem,
  });
  return { certPem, bundlePem, notAfter: r.notAfter, certTtlMs: r.certTtlMs, tenant: r.tenant, groups: r.groups };
}

export interface CoordClientOptions {
  /** One URL, or several replicas separated by commas (coordOrigins). */
  coordUrl: string;
  stateDir: string;
  log?: (msg: string, fields?: object) => void;
  /** Reconnect backoff bounds (ms); defaults 500 ms .. 30 s. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Source address for the connections to the coordination server (a host with several). */
  localAddress?: string;
  /**
   * Moving back to the first replica once it is healthy again (fail-back.ts): timing, or false for never. Default:
   * from EMBER_COORD_FAILBACK, else FAIL_BACK_DEFAULTS (60 s healthy, then up to 30 s of jitter).
   */
  failBack?: Partial<FailBackTiming> | false;
}

const RENEW_FRACTION = 2 / 3;
const RENEW_JITTER = 0.05;

export class CoordClient extends EventEmitter {
  /** Counters for operators and tests: full maps received, deltas applied, stream connections opened. */
  /** Map frames of kinds this node does not know (a newer server's), by kind. */
  readonly unknownFrames = new UnknownTally();
  /** The version the serving replica announced on the map stream (protocol 1 when it announced nothing). */
  serverVersion = describeVersion(1);
  readonly stats = { fullMaps: 0, deltas: 0, connects: 0, renewals: 0, bytes: 0, frames: 0, statusReports: 0, statusBytes: 0, failBacks: 0 };
  /** The replicas, and which one this client uses now (it moves on when the map stream fails). */
  private readonly origins: string[];
  private originIndex = 0;
  /** A reconnect this client asked for (renewal, fail-back), to this replica: not a failure, so no move on. */
  private reconnectTo?: number;
  /** Watches the first (preferred) replica while the stream is on another; undefined with one replica or none wanted. */
  private readonly failBack?: PreferredReplicaWatch;
  private readonly log: (msg: string, fields?: object) => void;
  private verifier!: Verifier;
  private agent?: Agent;
  private certPem = "";
  private stopped = true;
  private current?: ClientRequest;
  private state?: { map: PeerMap; peers: Map<string, MapPeer>; epoch: string };
  private backoff: number;
  private renewTimer?: NodeJS.Timeout;
  private reconnectTimer?: NodeJS.Timeout;
  private loop?: Promise<void>;
  private wake?: () => void;
  private pendingStatus?: StatusReport;
  private lastStatus?: StatusReport;
  private inFlightStatus?: StatusReport;
  private statusInFlight = false;
  private statusTimer?: NodeJS.Timeout;
  private lastStatusAt = 0;

  constructor(private readonly opts: CoordClientOptions) {
    super();
    this.origins = coordOrigins(opts.coordUrl);
    this.log = opts.log ?? (() => {});
    const timing = opts.failBack === undefined ? parseFailBack(process.env[FAIL_BACK_ENV]) : opts.failBack && { ...FAIL_BACK_DEFAULTS, ...opts.failBack };
    if (timing && this.origins.length > 1) this.failBack = new PreferredReplicaWatch(timing, () => this.probePreferred(), () => this.moveToPreferred());
    this.backoff = opts.minBackoffMs ?? 500;
    // "error" events are informational here; do not crash a daemon that has no listener for them.
    this.on("error", () => {});
  }

  /** The replica in use. */
  get origin(): string {
    return this.origins[this.originIndex];
  }

  get map(): PeerMap | undefined {
    return this.state?.map;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loadCredentials();
    this.scheduleRenewal();
    this.loop = this.runStream();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.failBack?.stop();
    clearTimeout(this.renewTimer);
    clearTimeout(this.statusTimer);
    clearTimeout(this.reconnectTimer);
    this.wake?.();
    this.current?.destroy();
    await this.loop;
    this.agent?.destroy();
  }

  /**
   * Reports this node's status (candidates, home relay, NAT type, services); a report equal to the last one
   * sent or queued is not sent again, so a node whose status does not change sends nothing (at rest).
   */
  reportStatus(s: StatusReport): void {
    const latest = this.pendingStatus ?? this.inFlightStatus ?? this.lastStatus;
    if (latest && JSON.stringify(latest) === JSON.stringify(s)) return;
    this.pendingStatus = s;
    this.flushStatusSoon();
  }

  /**
   * Our network changed (docs/networks.md "Nodes that move"): the map stream and the pooled connections belong to
   * the old network (a TCP connection from an address the host no longer has waits out its timeouts). Both are
   * dropped, the stream opens again at once on the same replica (it resumes by sequence number), and the next
   * status report goes over a new connection.
   */
  networkChanged(): void {
    if (this.stopped) return;
    this.loadCredentials();
    this.reconnect(this.originIndex);
  }

  // ---- credentials and renewal ------------------------------------------------------------------------

  private loadCredentials(): void {
    const c = readCredentials(this.opts.stateDir);
    if (!this.verifier) {
      this.verifier = new Verifier({ bundlePem: c.bundlePem });
      if (c.revocation) this.verifier.applyRevocationList(c.revocation);
    }
    this.certPem = c.certPem;
    this.agent?.destroy();
    this.agent = verifiedAgent({ verifier: this.verifier, expect: COORD_SERVER, certChainPem: withIntermediates(c.certPem, c.bundlePem), keyPem: c.keyPem, keepAlive: true, maxSockets: 2, localAddress: this.opts.localAddress });
  }

  private certTimes(): { issuedAt: number; notAfter: number } {
    const [der] = pemBlocks(this.certPem, "CERTIFICATE", "node certificate");
    const c = parseCertificate(der);
    return { issuedAt: c.notBefore.getTime() + LEAF_BACKDATE_MS, notAfter: c.notAfter.getTime() };
  }

  /** One request to the coordination server over this node's mTLS connection (logins: src/node/login-control.ts). */
  async post(path: string, body: unknown): Promise<any> {
    if (!this.agent) throw new Error("not connected to the coordination server yet");
    return requestJson(this.agent, this.origin + path, "POST", body);
  }

  private scheduleRenewal(retryInMs?: number): void {
    clearTimeout(this.renewTimer);
    if (this.stopped) return;
    let delay = retryInMs;
    if (delay === undefined) {
      const { issuedAt, notAfter } = this.certTimes();
      const life = Math.max(1, notAfter - issuedAt);
      const jitter = (Math.random() * 2 - 1) * RENEW_JITTER * life;
      delay = Math.max(0, issuedAt + life * RENEW_FRACTION + jitter - Date.now());
    }
    this.renewTimer = setTimeout(() => void this.renew(), delay);
    this.renewTimer.unref();
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    const { notAfter } = this.certTimes();
    try {
      const keys = generateEd25519();
      const name = this.state?.map.self.name ?? parseCertificate(pemBlocks(this.certPem, "CERTIFICATE", "cert")[0]).commonName!;
      const csr = await createCsr(keys, name);
      // The stream's replica first; one that is down or without its store (503) hands the renewal to the next.
      const r = await acrossReplicas(this.origins, (origin) => requestJson(this.agent, origin + PATHS.renew, "POST", { csr }),
        { idempotent: true, start: this.originIndex, passes: 1 });
      if (this.stopped) return;
      // The old pair stays in place until the new one is on disk; then both swap in by rename.
      installCredentials(this.opts.stateDir, privateKeyToPem(keys.privateKey), r.certPem);
      const oldExpiry = new Date(notAfter).toISOString();
      this.loadCredentials();
      this.log("certificate renewed", { name, notAfter: r.notAfter, previousNotAfter: oldExpiry });
      this.stats.renewals++;
      this.emit("renewed", { certPem: r.certPem as string, notAfter: r.notAfter as string });
      this.scheduleRenewal();
      // Reopen the stream under the new certificate, on the same replica (it resumes by seq; no full map needed).
      this.reconnect(this.originIndex);
    } catch (err) {
      const left = notAfter - Date.now();
      const retry = Math.min(30_000, Math.max(1_000, left / 10));
      this.log("certificate renewal failed; will retry", { error: (err as Error).message, retryInMs: retry, expiresInMs: left });
      this.emit("error", new Error(`renewal failed: ${(err as Error).message}`));
      this.scheduleRenewal(retry);
    }
  }

  // ---- status ----------------------------------------------------------------------------------------

  private flushStatusSoon(): void {
    if (this.statusInFlight || this.statusTimer || this.stopped || !this.pendingStatus) return;
    const wait = Math.max(0, this.lastStatusAt + STATUS_MIN_INTERVAL_MS - Date.now());
    this.statusTimer = setTimeout(() => { this.statusTimer = undefined; void this.sendStatus(); }, wait);
    this.statusTimer.unref();
  }

  private async sendStatus(): Promise<void> {
    const s = this.pendingStatus;
    if (!s || this.stopped) return;
    this.pendingStatus = undefined;
    this.inFlightStatus = s;
    this.statusInFlight = true;
    this.lastStatusAt = Date.now();
    this.stats.statusReports++;
    this.stats.statusBytes += JSON.stringify(s).length;
    try {
      await requestJson(this.agent, this.origin + PATHS.status, "POST", { ...s, ...ANNOUNCED_VERSION });
      this.lastStatus = s;
    } catch (err) {
      this.pendingStatus ??= s; // retried on the next change or reconnect
      this.emit("error", new Error(`status report failed: ${(err as Error).message}`));
    } finally {
      this.statusInFlight = false;
      this.inFlightStatus = undefined;
    }
    if (this.pendingStatus && !(this.pendingStatus === s)) this.flushStatusSoon();
  }

  // ---- replicas -------------------------------------------------------------------------------------

  /** Drops the stream and opens it again on replica `index` at once (the reconnect is not counted as a failure). */
  private reconnect(index: number): void {
    this.reconnectTo = index;
    this.current?.destroy();
    this.wake?.();
  }

  /** One fail-back probe: the preferred replica's health, over this node's own verified connection pool. */
  private probePreferred(): Promise<unknown> {
    return requestJson(this.agent, this.origins[0] + PATHS.health, "GET", undefined, { timeoutMs: 5_000 });
  }

  private moveToPreferred(): void {
    if (this.stopped || this.originIndex === 0) return;
    this.log("moving back to the preferred coordination replica", { from: this.origin, to: this.origins[0], healthyForMs: this.failBack!.timing.healthyForMs });
    this.stats.failBacks++;
    this.reconnect(0);
  }

  // ---- map stream ------------------------------------------------------------------------------------

  private async runStream(): Promise<void> {
    const min = this.opts.minBackoffMs ?? 500;
    const max = this.opts.maxBackoffMs ?? 30_000;
    while (!this.stopped) {
      if (this.reconnectTo !== undefined) {
        this.originIndex = this.reconnectTo;
        this.reconnectTo = undefined;
      }
      let gotFrames = false;
      try {
        gotFrames = await this.streamOnce();
      } catch (err) {
        if (!this.stopped) this.emit("error", err as Error);
      }
      if (this.stopped) break;
      this.emit("disconnected");
      if (gotFrames) this.backoff = min;
      // With replicas, a failed stream moves to the next one at once (its map stream resumes or sends a full
      // map); the backoff grows only once every replica has failed in a row.
      let quick = false;
      if (this.reconnectTo !== undefined) {
        quick = true; // taken at the loop's top
      } else if (this.origins.length > 1) {
        const from = this.origin;
        this.originIndex = (this.originIndex + 1) % this.origins.length;
        this.log("coordination replica failed; trying the next", { from, to: this.origin });
        quick = this.originIndex !== 0 || gotFrames;
      }
      const wait = quick ? randomInt(50, 250) : this.backoff / 2 + randomInt(Math.max(1, Math.floor(this.backoff / 2)));
      if (!quick) this.backoff = Math.min(max, this.backoff * 2);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.reconnectTimer = setTimeout(resolve, wait);
      });
    }
  }

  /** One stream connection; resolves true when at least one frame arrived, false on a clean close before. */
  private streamOnce(): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const q = this.state ? `?epoch=${this.state.epoch}&seq=${this.state.map.seq}` : "";
      const req = request(this.origin + PATHS.map + q, { method: "GET", agent: this.agent, headers: {
        accept: "application/vnd.embernet.map+msgpack",
        // Which frames this node reads (src/wire/protocol.ts): a server sends a node no frame kind it does not know.
        [VERSION_HEADERS.protocol]: String(PROTOCOL_VERSION), [VERSION_HEADERS.software]: RELEASE.version,
      } });
      this.current = req;
      let got = false;
      let idle: NodeJS.Timeout | undefined;
      const armIdle = () => {
        clearTimeout(idle);
        idle = setTimeout(() => { this.emit("error", new Error(`map stream silent for ${STREAM_IDLE_MS} ms`)); req.destroy(); }, STREAM_IDLE_MS);
        idle.unref();
      };
      const done = (err?: Error) => {
        clearTimeout(idle);
        if (this.current === req) this.current = undefined;
        if (err && !got) reject(err); else { if (err) this.emit("error", err); resolve(got); }
      };
      req.on("error", (err) => done(err));
      req.on("response", (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => { if (chunks.length < 16) chunks.push(c); });
          res.on("end", () => {
            let body: any;
            try { body = JSON.parse(Buffer.concat(chunks).toString("utf8")); } catch { body = {}; }
            done(new RequestError(res.statusCode ?? 0, body.error ?? `http_${res.statusCode}`, body.detail ?? "map stream refused"));
          });
          return;
        }
        this.stats.connects++;
        this.serverVersion = describeVersion(announcedProtocol(res.headers[VERSION_HEADERS.protocol]), announcedSoftware(res.headers[VERSION_HEADERS.software]));
        if (this.originIndex === 0) this.failBack?.stop(); else this.failBack?.start();
        this.emit("connected");
        // Sent again on every connect (the server may be another replica); a report that failed while the
        // server was away goes now, not with the next change.
        this.pendingStatus ??= this.lastStatus;
        this.flushStatusSoon();
        armIdle();
        const reader = new FrameReader();
        res.on("data", (chunk: Buffer) => {
          this.stats.bytes += chunk.length;
          armIdle();
          try {
            for (const f of reader.push(chunk)) { this.stats.frames++; this.apply(f); got = true; }
          } catch (err) {
            // Junk or a sequence gap: drop this connection; the reconnect resumes or fetches a full map.
            // (Reported here, not via destroy(err): a socket error after the response has no listener.)
            this.log("map stream dropped", { error: (err as Error).message });
            this.emit("error", err as Error);
            res.removeAllListeners("data");
            req.destroy();
          }
        });
        res.on("end", () => done());
        res.on("error", (err) => done(err));
        res.on("close", () => done());
      });
      req.end();
    });
  }

  private apply(f: DecodedFrame): void {
    if (f.t === "ping") return;
    if (f.t === "unknown") {
      const n = this.unknownFrames.note(this.origin, f.kind, Date.now());
      if (n.log) this.log("map frame of a kind this node does not know: skipped", { kind: f.kind, count: n.count, server: this.origin, serverVersion: this.serverVersion });
      return;
    }
    if (f.t === "full") return this.applyFull(f);
    const st = this.state;
    if (!st) throw new FrameError(`delta ${f.seq} before any full map`);
    if (f.seq <= st.map.seq) return; // already applied (duplicate after a resume)
    if (f.seq !== st.map.seq + 1) throw new FrameError(`delta ${f.seq} does not follow ${st.map.seq}`);
    this.applyDelta(st, f);
  }

  private applyFull(f: FullFrame): void {
    const peers = new Map<string, MapPeer>();
    for (const p of f.peers) peers.set(p.name, p);
    const map: PeerMap = { seq: f.seq, self: f.self, peers: f.peers, rules: this.checkRules(f.rules), relays: f.relays, revocation: this.state?.map.revocation };
    if (f.edge !== undefined) map.edge = this.checkEdge(f.edge);
    this.state = { map, peers, epoch: f.epoch };
    this.stats.fullMaps++;
    if (f.revocation) this.acceptRevocation(f.revocation);
    this.emit("map", map);
  }

  private applyDelta(st: NonNullable<CoordClient["state"]>, f: DeltaFrame): void {
    for (const n of f.remove ?? []) st.peers.delete(n);
    for (const p of f.upsert ?? []) st.peers.set(p.name, p);
    for (const p of f.patch ?? []) {
      const cur = st.peers.get(p.name);
      if (!cur) continue;
      const next: MapPeer = { ...cur, ...p };
      if (p.homeRelay === "") delete next.homeRelay;
      if (p.userCertPem === "") delete next.userCertPem;
      st.peers.set(p.name, next);
    }
    let self = st.map.self;
    if (f.self?.userCertPem !== undefined) {
      self = { ...self, userCertPem: f.self.userCertPem };
      if (f.self.userCertPem === "") delete self.userCertPem;
    }
    const map: PeerMap = {
      ...st.map, seq: f.seq, self, peers: [...st.peers.values()],
      ...(f.rules !== undefined ? { rules: this.checkRules(f.rules) } : {}), ...(f.relays ? { relays: f.relays } : {}),
      ...(f.edge !== undefined ? { edge: this.checkEdge(f.edge) } : {}),
    };
    st.map = map;
    this.stats.deltas++;
    if (f.revocation) this.acceptRevocation(f.revocation);
    this.emit("map", map);
  }

  private checkRules(wire: unknown): CompiledRule[] {
    try {
      return rulesFromWire(wire);
    } catch (err) {
      this.log("policy rules in the map refused: denying every flow until valid rules arrive", { error: (err as Error).message });
      this.emit("error", new Error(`policy rules refused: ${(err as Error).message}`));
      return [];
    }
  }

  /** An edge view that fails its check publishes nothing (fail closed) until a good one arrives. */
  private checkEdge(wire: unknown): EdgeView {
    try {
      return checkEdgeView(wire);
    } catch (err) {
      this.log("edge publications in the map refused: serving none until a valid view arrives", { error: (err as Error).message });
      this.emit("error", new Error(`edge view refused: ${(err as Error).message}`));
      return { tokenKeyPem: "", publications: [] };
    }
  }

  /** One request to the coordination server over this node's mTLS connection (e.g. `ember expose`). */
  request(path: string, method: "GET" | "POST", body?: unknown): Promise<any> {
    if (!this.agent) return Promise.reject(new Error("not connected to the coordination server yet"));
    return requestJson(this.agent, this.origin + path, method, body);
  }

  private acceptRevocation(text: string): void {
    const r = this.verifier.applyRevocationList(text);
    if (!r.ok) {
      if (r.reason !== "stale_list") this.emit("error", new Error(`revocation list refused: ${r.detail}`));
      return;
    }
    if (this.state) this.state.map.revocation = text;
    try { writeAtomic(this.opts.stateDir, STATE_FILES.revocation, text); } catch (err) {
      this.emit("error", new Error(`cannot store revocation list: ${(err as Error).message}`));
    }
    this.log("revocation list received", { number: this.verifier.revocation.number });
    this.emit("revocation", text);
  }
}
