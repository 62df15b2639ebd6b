// The peer map: who sees whom, and the per-node frame sequence (full map, then deltas).
// Visibility is computed per equivalence class of principals (tenant + groups, plus the name when a rule or
// service names it), so a policy change costs classes x classes policy evaluations, not nodes x nodes, and
// a node's endpoint change costs one membership test per connected node plus one small delta per watcher.
import { randomBytes } from "node:crypto";
import { deltaFrame, encodeFrame, encodeFullFrame, encodePeer, MAP_PROTOCOL_VERSION, type DeltaBody, type FullFrame, type MapPeer, type MapRelay, type PeerPatch } from "../wire/coord/map.js";
import { MAX_STREAM_BACKLOG_BYTES, RESUME_GRACE_MS } from "./limits.js";
import { lazyShare, ResumeLog, type SharedDelta } from "./resume-log.js";
import { sameServices, type MapService } from "../wire/coord/services.js";
import { canReach, namedPrincipals, policyDiff, rulesForWire, selectorMatches, type CompiledPolicy, type Principal, type Selector } from "./policy-adapter.js";
import type { NodeRecord, NodeUser } from "./store.js";
import type { EdgeView } from "../wire/coord/edge.js";

export interface HubPeer {
  name: string;
  tenant: string;
  groups: string[];
  certPem: string;
  serial: string;
  enrollmentId: string;
  endpoints: string[];
  homeRelay?: string;
  online: boolean;
  lastSeen?: number;
  /** TUN mode's overlay IPv4 address, from the store (stable for the identity). */
  overlayIp?: string;
  /** Announced in the node's status reports (not stored: a node announces again when it reconnects). */
  services?: MapService[];
  /** The person logged in on the node: its flows are theirs (docs/users.md). */
  user?: NodeUser;
}

/** Who a node is as a target: always the machine. */
export function inboundPrincipal(p: HubPeer): Principal {
  return { name: p.name, tenant: p.tenant, groups: p.groups };
}

/** Who a node's flows come from: the person logged in on it, else the machine. */
export function outboundPrincipal(p: HubPeer): Principal {
  return p.user ? { name: p.user.name, tenant: p.tenant, groups: p.user.groups, kind: "user", device: p.name } : inboundPrincipal(p);
}

/** A stored node as the hub holds it (offline until its stream attaches here). */
export function hubPeerFromNode(n: NodeRecord): HubPeer {
  return {
    name: n.name, tenant: n.tenant, groups: n.groups, certPem: n.certPem, serial: n.serial, enrollmentId: n.enrollmentId,
    endpoints: n.endpoints, homeRelay: n.homeRelay, online: false, lastSeen: n.lastSeen, overlayIp: n.overlayIp,
    ...(n.user ? { user: n.user } : {}),
  };
}

/** Where a session's frames go: an HTTP response in the server, anything with write() in tests/bench. */
export interface FrameSink {
  write(chunk: Buffer): boolean;
  readonly writableLength: number;
  destroy(err?: Error): void;
}

/** A node's map stream, attached or within its grace time. Every field set in the constructor: one shape for all. */
class Session {
  seq = 0;
  /** Deltas sent since the last full map, for a resume. */
  readonly log = new ResumeLog();
  sink: FrameSink | undefined = undefined;
  disconnectedAt: number | undefined = undefined;
  rulesJson = "";
  constructor(readonly name: string) {}
}

/** deltasEncoded: a change to many streams is encoded once (their frames differ only in seq). */
export interface HubStats { framesSent: number; bytesSent: number; deltasEncoded: number }

export class MapHub {
  readonly epoch = randomBytes(8).toString("hex");
  readonly stats: HubStats = { framesSent: 0, bytesSent: 0, deltasEncoded: 0 };
  private readonly peers = new Map<string, HubPeer>();
  private readonly classOf = new Map<string, string>();
  private readonly members = new Map<string, Set<string>>();
  private readonly sessions = new Map<string, Session>();
  private readonly visCache = new Map<string, boolean>();
  private readonly rulesCache = new Map<string, { wire: unknown; json: string }>();
  /** Each peer's wire form, and its msgpack bytes once a full map needed them; dropped when the peer changes. */
  private readonly wireCache = new Map<string, { peer: MapPeer; bytes: Buffer | undefined }>();
  private named = new Set<string>();
  private revocation?: string;
  /**
   * External access (docs/external-access.md): pairs of an edge and a node publishing to it see each other
   * whatever the policy says (an external rule names no machine); each linked name has a class of its own, so
   * the pair test on class representatives is exact. Edges also get their view (publications) in the map.
   */
  private links = new Set<string>();
  private linked = new Set<string>();
  private readonly edgeViews = new Map<string, { view: EdgeView; json: string }>();

  constructor(private policy: CompiledPolicy, private relays: MapRelay[] = []) {
    this.named = namedPrincipals(policy);
  }

  // ---- queries ---------------------------------------------------------------------------------------

  principal(name: string): Principal | undefined {
    const p = this.peers.get(name);
    return p && { name: p.name, tenant: p.tenant, groups: p.groups };
  }

  peer(name: string): HubPeer | undefined {
    return this.peers.get(name);
  }

  allPrincipals(): Principal[] {
    return [...this.peers.values()].map((p) => ({ name: p.name, tenant: p.tenant, groups: p.groups }));
  }

  isOnline(name: string): boolean {
    return this.sessions.get(name)?.sink !== undefined;
  }

  get connectedCount(): number {
    let n = 0;
    for (const s of this.sessions.values()) if (s.sink) n++;
    return n;
  }

  /** Names this node's map holds (for tests and the admin view). */
  visibleTo(name: string): string[] {
    const c = this.classOf.get(name);
    if (!c) return [];
    const out: string[] = [];
    for (const [other, members] of this.members) {
      if (!this.visible(c, other)) continue;
      for (const m of members) if (m !== name) out.push(m);
    }
    return out.sort();
  }

  // ---- changes ---------------------------------------------------------------------------------------

  /** A node enrolled (or re-enrolled, or renewed its certificate, or a person logged in or out on it). */
  upsertPeer(p: HubPeer): void {
    const prev = this.peers.get(p.name);
    const prevClass = this.classOf.get(p.name);
    if (prev && prev.enrollmentId !== p.enrollmentId) {
      // A new enrollment of the name: its old stream belongs to an identity that no longer exists.
      this.dropSession(p.name, "re-enrolled");
    }
    const sameIdentity = prev !== undefined && prev.enrollmentId === p.enrollmentId;
    // Services are announced, not stored: a record read back from the store keeps what the node announced.
    if (sameIdentity && p.services === undefined) p.services = prev.services;
    // A login or logout changes what the node itself may reach: its own map follows (selfView below).
    const userChanged = sameIdentity && prev.user?.certPem !== p.user?.certPem;
    const selfBefore = userChanged && this.sessions.has(p.name) ? new Set(this.visibleTo(p.name)) : undefined;
    p.online = prev?.online ?? false;
    this.peers.set(p.name, p);
    this.wireCache.delete(p.name);
    const cls = this.classKey(p);
    this.setClass(p.name, cls);
    // A re-enrollment under another tenant is another identity, with its own overlay address.
    const patch: PeerPatch = { name: p.name, certPem: p.certPem };
    if (prev && prev.overlayIp !== p.overlayIp && p.overlayIp !== undefined) patch.overlayIp = p.overlayIp;
    if (userChanged) patch.userCertPem = p.user?.certPem ?? "";
    const [added, removed, patched] = [this.lazyDelta(() => ({ upsert: [this.wire(p)] })), this.lazyDelta(() => ({ remove: [p.name] })), this.lazyDelta(() => ({ patch: [patch] }))];
    for (const [sc, s] of this.sessionsOfClasses((sc) => (prevClass !== undefined && this.visible(sc, prevClass)) || this.visible(sc, cls), p.name)) {
      const before = prevClass !== undefined && this.visible(sc, prevClass);
      const after = this.visible(sc, cls);
      if (after && !before) this.push(s, added());
      else if (!after && before) this.push(s, removed());
      else if (after && prev && (prev.certPem !== p.certPem || prev.overlayIp !== p.overlayIp || userChanged)) this.push(s, patched());
    }
    if (selfBefore) this.selfView(p.name, selfBefore, { self: { userCertPem: p.user?.certPem ?? "" } });
  }

  /** The node's own view after its principal changed: the peers it gained and lost, its rules, and `extra`. */
  private selfView(name: string, before: Set<string>, extra: DeltaBody): void {
    const s = this.sessions.get(name);
    if (!s) return;
    const after = new Set(this.visibleTo(name));
    const delta: DeltaBody = { ...extra };
    const upsert = [...after].filter((m) => !before.has(m)).map((m) => this.wire(this.peers.get(m)!));
    const remove = [...before].filter((m) => !after.has(m));
    if (upsert.length) delta.upsert = upsert;
    if (remove.length) delta.remove = remove;
    const rules = this.rules(name);
    if (rules.json !== s.rulesJson) { delta.rules = rules.wire; s.rulesJson = rules.json; }
    this.push(s, delta);
  }

  /** A node was revoked: every watcher forgets it, every node gets the new list in the same delta. */
  revoke(name: string, listText: string): void {
    this.revocation = listText;
    const cls = this.classOf.get(name);
    this.dropSession(name, "revoked");
    this.sessions.delete(name);
    const [forWatchers, forOthers] = [this.lazyDelta(() => ({ remove: [name], revocation: listText })), this.lazyDelta(() => ({ revocation: listText }))];
    for (const s of this.sessions.values()) {
      const sc = this.classOf.get(s.name);
      const watched = cls !== undefined && sc !== undefined && this.visible(sc, cls);
      this.push(s, watched ? forWatchers() : forOthers());
    }
    this.peers.delete(name);
    this.wireCache.delete(name);
    if (cls) this.members.get(cls)?.delete(name);
    this.classOf.delete(name);
  }

  setRevocation(listText: string | undefined): void {
    this.revocation = listText;
  }

  /** A new revocation list that revokes no node of the map (e.g. an admin's certificate): pushed to every stream. */
  publishRevocation(listText: string): void {
    this.revocation = listText;
    const shared = this.lazyDelta(() => ({ revocation: listText }));
    for (const s of this.sessions.values()) this.push(s, shared());
  }

  status(name: string, s: { endpoints: string[]; homeRelay?: string; services?: MapService[]; lastSeen: number }): void {
    const p = this.peers.get(name);
    if (!p) return;
    const patch: PeerPatch = { name };
    if (!sameList(p.endpoints, s.endpoints)) { p.endpoints = s.endpoints; patch.endpoints = s.endpoints; }
    if (p.homeRelay !== s.homeRelay) { p.homeRelay = s.homeRelay; patch.homeRelay = s.homeRelay ?? ""; }
    if (s.services !== undefined && !sameServices(p.services, s.services)) { p.services = s.services; patch.services = s.services; }
    p.lastSeen = s.lastSeen;
    if (Object.keys(patch).length === 1) return; // nothing a peer needs changed
    this.wireCache.delete(name);
    this.pushToWatchers(name, { patch: [patch] });
  }

  /**
   * `named`: namedPrincipals(policy) when the caller already has it (the policy worker computes it off the event loop).
   * When the classes stay the same (the usual case) the work follows the change, not the mesh: the rules in one
   * policy and not the other (policyDiff) pick the class pairs whose visibility may change and the classes whose
   * rules may change; only those pairs are evaluated again and only sessions of those classes are visited.
   */
  setPolicy(policy: CompiledPolicy, named?: Set<string>): void {
    const newNamed = named ?? namedPrincipals(policy);
    // Only names of nodes give classes of their own: new words in the policy ("tcp", "443") regroup nothing.
    if (changedNames(newNamed, this.named).some((w) => this.peers.has(w))) return this.setPolicyReclassing(policy, newNamed);
    this.named = newNamed;
    const diff = policyDiff(this.policy, policy);
    const classes = [...this.members.keys()];
    const reps = new Map(classes.map((c) => [c, this.representative(c)!]));
    const asSource = (sel: Selector, c: string) => selectorMatches(sel, outboundPrincipal(reps.get(c)!));
    const asTarget = (sel: Selector, c: string) => selectorMatches(sel, inboundPrincipal(reps.get(c)!));
    // The class pairs whose visibility may change: those a changed (source, target) matches, either way round.
    const pairs = new Map<string, [string, string]>();
    for (const t of diff.visibility) {
      const targets = classes.filter((c) => asTarget(t.target, c));
      for (const a of classes.filter((c) => asSource(t.source, c))) for (const b of targets) pairs.set(pairKey(a, b), [a, b]);
    }
    // The classes whose rules may change: those a changed rule concerns.
    const rulesTouched = new Set<string>();
    for (const r of diff.rules) for (const c of classes) if (asSource(r.source, c) || asTarget(r.target, c)) rulesTouched.add(c);
    const before = new Map([...pairs].map(([k, [a, b]]) => [k, this.visible(a, b)]));

    this.policy = policy;
    for (const k of pairs.keys()) this.visCache.delete(k);
    for (const c of rulesTouched) this.rulesCache.delete(c);
    const flipped = new Map<string, string[]>();
    const flip = (a: string, b: string) => { let l = flipped.get(a); if (!l) flipped.set(a, (l = [])); l.push(b); };
    for (const [k, [a, b]] of pairs) {
      if (this.visible(a, b) === before.get(k)) continue;
      flip(a, b);
      if (a !== b) flip(b, a);
    }

    for (const c of new Set([...flipped.keys(), ...rulesTouched])) {
      const others = flipped.get(c) ?? [];
      for (const m of this.members.get(c) ?? []) {
        const s = this.sessions.get(m);
        if (!s) continue;
        const delta: DeltaBody = {};
        const upsert: MapPeer[] = [];
        const remove: string[] = [];
        for (const other of others) {
          const now = this.visible(c, other);
          for (const o of this.members.get(other)!) {
            if (o === m) continue;
            if (now) upsert.push(this.wire(this.peers.get(o)!)); else remove.push(o);
          }
        }
        if (upsert.length) delta.upsert = upsert;
        if (remove.length) delta.remove = remove;
        const rules = this.rules(m);
        if (rules.json !== s.rulesJson) { delta.rules = rules.wire; s.rulesJson = rules.json; }
        if (Object.keys(delta).length) this.push(s, delta);
      }
    }
  }

  /** A policy that names other principals than the last one regroups the classes: every session is compared by name. */
  private setPolicyReclassing(policy: CompiledPolicy, newNamed: Set<string>): void {
    const oldNames = new Map<string, Set<string>>();
    for (const s of this.sessions.values()) if (this.classOf.has(s.name)) oldNames.set(s.name, new Set(this.visibleTo(s.name)));
    this.policy = policy;
    this.named = newNamed;
    this.visCache.clear();
    this.rulesCache.clear();
    for (const p of this.peers.values()) this.setClass(p.name, this.classKey(p));
    for (const s of this.sessions.values()) {
      if (!this.classOf.has(s.name)) continue;
      const delta: DeltaBody = {};
      const before = oldNames.get(s.name)!;
      const after = new Set(this.visibleTo(s.name));
      const upsert: MapPeer[] = [];
      const remove: string[] = [];
      for (const m of after) if (!before.has(m)) upsert.push(this.wire(this.peers.get(m)!));
      for (const m of before) if (!after.has(m)) remove.push(m);
      if (upsert.length) delta.upsert = upsert;
      if (remove.length) delta.remove = remove;
      const rules = this.rules(s.name);
      if (rules.json !== s.rulesJson) { delta.rules = rules.wire; s.rulesJson = rules.json; }
      if (Object.keys(delta).length) this.push(s, delta);
    }
  }

  /**
   * External access changed: the edge-node pairs that must see each other, and each edge's view. Only the
   * pairs that changed are compared, and only edges whose view changed get it again (publications change
   * rarely; the caches are simply cleared).
   */
  setExternal(links: [string, string][], views: Map<string, EdgeView>): void {
    const next = new Set(links.map(([a, b]) => pairKey(a, b)));
    const changed = [...next].filter((k) => !this.links.has(k)).concat([...this.links].filter((k) => !next.has(k)));
    const pairs = changed.map((k) => k.split("\n") as [string, string]);
    const seen = (a: string, b: string) => {
      const ca = this.classOf.get(a), cb = this.classOf.get(b);
      return ca !== undefined && cb !== undefined && this.visible(ca, cb);
    };
    const before = pairs.map(([a, b]) => seen(a, b));
    this.links = next;
    this.linked = new Set(links.flat());
    this.visCache.clear();
    this.rulesCache.clear();
    for (const p of this.peers.values()) this.setClass(p.name, this.classKey(p));
    pairs.forEach(([a, b], i) => {
      const now = seen(a, b);
      if (now === before[i]) return;
      for (const [self, other] of [[a, b], [b, a]]) {
        const s = this.sessions.get(self);
        const o = this.peers.get(other);
        if (s && o) this.push(s, now ? { upsert: [this.wire(o)] } : { remove: [other] });
      }
    });
    for (const name of [...this.edgeViews.keys()]) if (!views.has(name)) this.edgeViews.delete(name);
    for (const [name, view] of views) {
      const json = JSON.stringify(view);
      if (this.edgeViews.get(name)?.json === json) continue;
      this.edgeViews.set(name, { view, json });
      const s = this.sessions.get(name);
      if (s) this.push(s, { edge: view });
    }
  }

  // ---- streams ---------------------------------------------------------------------------------------

  /** A node opened its map stream. Sends the missing deltas when it can resume, else a full map. */
  attach(name: string, sink: FrameSink, resume?: { epoch: string; seq: number }): { resumed: boolean; frames: number } {
    const p = this.peers.get(name);
    if (!p) throw new Error(`no active node "${name}"`);
    let s = this.sessions.get(name);
    if (s?.sink) s.sink.destroy(new Error("replaced by a newer map stream"));
    if (!s) {
      s = new Session(name);
      this.sessions.set(name, s);
    }
    s.sink = sink;
    s.disconnectedAt = undefined;
    let resumed = false;
    let frames = 0;
    if (resume && resume.epoch === this.epoch && resume.seq <= s.seq && resume.seq >= s.log.oldestSeq - 1) {
      resumed = true;
      for (const f of s.log.framesAfter(resume.seq)) { this.send(s, f); frames++; }
    } else {
      this.sendFull(s);
      frames = 1;
    }
    if (!p.online) {
      p.online = true;
      this.wireCache.delete(name);
      this.pushToWatchers(name, { patch: [{ name, online: true }] });
    }
    return { resumed, frames };
  }

  detach(name: string, sink: FrameSink, now = Date.now()): void {
    const s = this.sessions.get(name);
    if (!s || s.sink !== sink) return;
    s.sink = undefined;
    s.disconnectedAt = now;
    const p = this.peers.get(name);
    if (p) {
      p.online = false;
      p.lastSeen = now;
      this.wireCache.delete(name);
      this.pushToWatchers(name, { patch: [{ name, online: false, lastSeen: new Date(now).toISOString() }] });
    }
  }

  /**
   * Sends a keepalive frame on every open stream, forgets sessions disconnected past the grace time, and drops
   * logged frames past their age: a mesh at rest holds no resume log.
   */
  tick(now = Date.now()): void {
    const ping = encodeFrame({ v: MAP_PROTOCOL_VERSION, t: "ping" });
    for (const [name, s] of this.sessions) {
      if (s.sink) this.send(s, ping);
      else if (s.disconnectedAt !== undefined && now - s.disconnectedAt > RESUME_GRACE_MS) { this.sessions.delete(name); continue; }
      s.log.age(now);
    }
  }

  dropSession(name: string, why: string): void {
    const s = this.sessions.get(name);
    if (s?.sink) s.sink.destroy(new Error(why));
  }

  closeAll(): void {
    for (const s of this.sessions.values()) s.sink?.destroy(new Error("server shutting down"));
  }

  // ---- internals -------------------------------------------------------------------------------------

  private sendFull(s: Session): void {
    const c = this.classOf.get(s.name)!;
    const self = this.peers.get(s.name)!;
    const peers: Buffer[] = [];
    for (const [other, members] of this.members) {
      if (!this.visible(c, other)) continue;
      for (const m of members) if (m !== s.name) peers.push(this.wireBytes(this.peers.get(m)!));
    }
    const rules = this.rules(s.name);
    s.rulesJson = rules.json;
    s.seq += 1;
    s.log.reset(s.seq);
    const frame: Omit<FullFrame, "peers"> = {
      v: MAP_PROTOCOL_VERSION, t: "full", seq: s.seq, epoch: this.epoch,
      self: {
        name: self.name, tenant: self.tenant, groups: self.groups, ...(self.overlayIp ? { overlayIp: self.overlayIp } : {}),
        ...(self.user ? { userCertPem: self.user.certPem } : {}),
      },
      rules: rules.wire, relays: this.relays,
      ...(this.revocation ? { revocation: this.revocation } : {}),
      ...(this.edgeViews.has(s.name) ? { edge: this.edgeViews.get(s.name)!.view } : {}),
    };
    this.send(s, encodeFullFrame(frame, peers));
  }

  private pushToWatchers(name: string, delta: DeltaBody): void {
    const cls = this.classOf.get(name);
    if (!cls) return;
    const shared = this.lazyDelta(() => delta);
    for (const [, s] of this.sessionsOfClasses((sc) => this.visible(sc, cls), name)) this.push(s, shared());
  }

  /**
   * The sessions (with their class) of every class `want` picks, skipping `except`'s own: a change's fan-out
   * costs one test per class plus one visit per watcher, not one per session of the mesh.
   */
  private *sessionsOfClasses(want: (cls: string) => boolean, except?: string): Generator<[string, Session]> {
    for (const [cls, members] of this.members) {
      if (!want(cls)) continue;
      for (const m of members) {
        if (m === except) continue;
        const s = this.sessions.get(m);
        if (s) yield [cls, s];
      }
    }
  }

  /** A delta made and encoded on first use, once for every stream of a fan-out. */
  private lazyDelta(make: () => DeltaBody): () => SharedDelta {
    return lazyShare(() => { this.stats.deltasEncoded++; return make(); });
  }

  /** A delta to one stream: logged for a resume, sent when attached. Fan-outs pass one SharedDelta to every stream. */
  private push(s: Session, delta: DeltaBody | SharedDelta): void {
    const d = "encoded" in delta ? delta : this.lazyDelta(() => delta)();
    s.seq += 1;
    s.log.append(d, s.seq);
    if (s.sink) this.send(s, deltaFrame(d.encoded, s.seq));
  }

  private send(s: Session, bytes: Buffer): void {
    const sink = s.sink!;
    if (sink.writableLength > MAX_STREAM_BACKLOG_BYTES) {
      // A reader this far behind resumes from its last seq (or gets a full map) when it reconnects.
      sink.destroy(new Error("map stream backlog over the limit"));
      return;
    }
    sink.write(bytes);
    this.stats.framesSent++;
    this.stats.bytesSent += bytes.length;
  }

  private rules(name: string): { wire: unknown; json: string } {
    const c = this.classOf.get(name)!;
    let r = this.rulesCache.get(c);
    if (!r) {
      const p = this.peers.get(name)!;
      const wire = rulesForWire(this.policy, outboundPrincipal(p), inboundPrincipal(p));
      r = { wire, json: JSON.stringify(wire) };
      this.rulesCache.set(c, r);
    }
    return r;
  }

  private wire(p: HubPeer): MapPeer {
    return this.wireEntry(p).peer;
  }

  private wireBytes(p: HubPeer): Buffer {
    const e = this.wireEntry(p);
    return (e.bytes ??= encodePeer(e.peer));
  }

  private wireEntry(p: HubPeer): { peer: MapPeer; bytes: Buffer | undefined } {
    let e = this.wireCache.get(p.name);
    if (!e) {
      const w: MapPeer = {
        name: p.name, tenant: p.tenant, groups: p.groups, certPem: p.certPem, endpoints: p.endpoints, online: p.online,
        ...(p.homeRelay ? { homeRelay: p.homeRelay } : {}),
        ...(p.overlayIp ? { overlayIp: p.overlayIp } : {}),
        ...(p.services?.length ? { services: p.services } : {}),
        ...(p.user ? { userCertPem: p.user.certPem } : {}),
        ...(p.lastSeen !== undefined ? { lastSeen: new Date(p.lastSeen).toISOString() } : {}),
      };
      e = { peer: w, bytes: undefined }; // both fields from the start: one shape, no property array added later
      this.wireCache.set(p.name, e);
    }
    return e;
  }

  private classKey(p: HubPeer): string {
    const base = `${p.tenant}|${[...p.groups].sort().join(",")}`;
    const machine = this.named.has(p.name) || this.linked.has(p.name) ? `${base}|${p.name}` : base;
    if (!p.user) return machine;
    // A node with a person logged in reaches what they may: its class is the machine's and the person's.
    const u = p.user;
    return `${machine}#user|${[...u.groups].sort().join(",")}${this.named.has(u.name) ? `|${u.name}` : ""}`;
  }

  private setClass(name: string, cls: string): void {
    const prev = this.classOf.get(name);
    if (prev === cls) return;
    if (prev !== undefined) {
      const m = this.members.get(prev)!;
      m.delete(name);
      if (m.size === 0) this.members.delete(prev);
    }
    this.classOf.set(name, cls);
    let m = this.members.get(cls);
    if (!m) this.members.set(cls, (m = new Set()));
    m.add(name);
  }

  /** Either direction allowed by policy means the two nodes must know each other. */
  private visible(a: string, b: string): boolean {
    const key = pairKey(a, b);
    let v = this.visCache.get(key);
    if (v === undefined) {
      const pa = this.representative(a);
      const pb = this.representative(b);
      if (pa === undefined || pb === undefined) return false; // an empty class: nothing to cache yet
      v = canReach(this.policy, outboundPrincipal(pa), inboundPrincipal(pb)) || canReach(this.policy, outboundPrincipal(pb), inboundPrincipal(pa))
        || this.links.has(pairKey(pa.name, pb.name));
      this.visCache.set(key, v);
    }
    return v;
  }

  private representative(cls: string): HubPeer | undefined {
    const m = this.members.get(cls);
    if (!m || m.size === 0) return undefined;
    return this.peers.get(m.values().next().value!);
  }
}

/** visCache's key of a class pair (visibility is symmetric). */
function pairKey(a: string, b: string): string {
  return a < b ? `${a}\n${b}` : `${b}\n${a}`;
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The words in one set and not the other. */
function changedNames(a: Set<string>, b: Set<string>): string[] {
  const out: string[] = [];
  for (const x of a) if (!b.has(x)) out.push(x);
  for (const x of b) if (!a.has(x)) out.push(x);
  return out;
}
