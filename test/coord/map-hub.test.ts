// MapHub in memory (no sockets): every session's map, rebuilt from its frames, equals what the hub says it
// sees after endpoint changes, online changes and policy changes; and a change reaches only the sessions
// whose view it changes.
import { describe, expect, it } from "vitest";
import { MapHub, type FrameSink, type HubPeer } from "../../src/coord/map-hub.js";
import { encodeFrame, FrameReader, MAP_PROTOCOL_VERSION, type DecodedFrame as MapFrame } from "../../src/wire/coord/map.js";
import { RESUME_LOG_MAX_AGE_MS } from "../../src/coord/limits.js";
import { parsePolicy } from "../../src/coord/policy-adapter.js";

const TEAMS = 6, PER_TEAM = 5;

function policy(extra = "") {
  let s = "version: 1\nrules:\n";
  for (let t = 0; t < TEAMS; t++) s += `  - allow: {source: "@team-${t}", target: "@team-${t}", protocol: any}\n`;
  s += `  - allow: {source: "@team-0", target: "@team-1", protocol: tcp, ports: [443]}\n  - allow: {source: "@team-2", target: "@team-3", protocol: tcp, ports: [22]}\n`;
  const r = parsePolicy(s + extra);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.policy;
}

class View implements FrameSink {
  readonly reader = new FrameReader();
  readonly peers = new Map<string, { endpoints: string[]; online: boolean }>();
  frames = 0;
  fulls = 0;
  seq = 0;
  rules: unknown;
  writableLength = 0;
  write(chunk: Buffer): boolean {
    for (const f of this.reader.push(chunk)) this.apply(f);
    return true;
  }
  destroy(): void {}
  private apply(f: MapFrame): void {
    if (f.t === "ping" || f.t === "unknown") return;
    this.frames++;
    this.seq = f.seq;
    if (f.t === "full") { this.peers.clear(); this.rules = f.rules; this.fulls++; }
    for (const p of (f.t === "full" ? f.peers : f.upsert) ?? []) this.peers.set(p.name, { endpoints: p.endpoints, online: p.online });
    if (f.t === "delta") {
      for (const p of f.patch ?? []) {
        const cur = this.peers.get(p.name)!;
        expect(cur, `patch for unknown ${p.name}`).toBeDefined();
        if (p.endpoints) cur.endpoints = p.endpoints;
        if (p.online !== undefined) cur.online = p.online;
      }
      for (const n of f.remove ?? []) this.peers.delete(n);
      if (f.rules !== undefined) this.rules = f.rules;
    }
  }
}

function setup() {
  const hub = new MapHub(policy());
  const names: string[] = [];
  for (let t = 0; t < TEAMS; t++) for (let i = 0; i < PER_TEAM; i++) {
    const name = `t${t}-n${i}`;
    names.push(name);
    const p: HubPeer = { name, tenant: "acme", groups: [`team-${t}`], certPem: `PEM ${name}`, serial: name, enrollmentId: `e-${name}`, endpoints: [], online: false };
    hub.upsertPeer(p);
  }
  const views = new Map<string, View>();
  // Every node but the last of each team connects.
  for (const n of names) if (!n.endsWith(`-n${PER_TEAM - 1}`)) { const v = new View(); views.set(n, v); hub.attach(n, v); }
  return { hub, names, views };
}

function expectConsistent(hub: MapHub, views: Map<string, View>) {
  for (const [name, v] of views) {
    expect([...v.peers.keys()].sort(), name).toEqual(hub.visibleTo(name));
    for (const [peer, st] of v.peers) expect(st.online, `${name} sees ${peer}`).toBe(hub.isOnline(peer));
  }
}

describe("MapHub fan-out", () => {
  it("keeps every map equal to the hub's view through status, online and policy changes", () => {
    const { hub, views } = setup();
    expectConsistent(hub, views);
    hub.status("t0-n0", { endpoints: ["198.18.0.1:1"], lastSeen: Date.now() });
    expect(views.get("t1-n0")!.peers.get("t0-n0")!.endpoints).toEqual(["198.18.0.1:1"]);
    hub.detach("t2-n1", [...views.entries()].find(([n]) => n === "t2-n1")![1]);
    views.delete("t2-n1");
    expectConsistent(hub, views);

    // team-4 may now reach team-5; team-2 may no longer reach team-3 (its rule is gone).
    const next = parsePolicy(policy().source.replace(`  - allow: {source: "@team-2", target: "@team-3", protocol: tcp, ports: [22]}\n`, "")
      + `  - allow: {source: "@team-4", target: "@team-5", protocol: udp, ports: [53]}\n`);
    if (!next.ok) throw new Error("policy");
    const before = new Map([...views].map(([n, v]) => [n, v.frames]));
    hub.setPolicy(next.policy);
    expectConsistent(hub, views);
    const touched = [...views].filter(([n, v]) => v.frames !== before.get(n)).map(([n]) => n.split("-")[0]);
    // Only teams 2-5 changed view or rules; teams 0 and 1 got nothing.
    expect(new Set(touched)).toEqual(new Set(["t2", "t3", "t4", "t5"]));
  });

  it("sends an endpoint change only to the mover's watchers", () => {
    const { hub, views } = setup();
    const before = new Map([...views].map(([n, v]) => [n, v.frames]));
    hub.status("t4-n0", { endpoints: ["198.18.0.9:9"], lastSeen: Date.now() });
    const got = [...views].filter(([n, v]) => v.frames !== before.get(n)).map(([n]) => n).sort();
    expect(got).toEqual(hub.visibleTo("t4-n0").filter((n) => views.has(n)));
  });

  it("a policy change that regroups classes (names a node) still converges", () => {
    const { hub, views } = setup();
    const next = parsePolicy(policy().source + `  - allow: {source: "t5-n0", target: "@team-0", protocol: any}\n`);
    if (!next.ok) throw new Error("policy");
    hub.setPolicy(next.policy);
    expectConsistent(hub, views);
    expect(views.get("t5-n0")!.peers.has("t0-n1")).toBe(true);
    expect(views.get("t5-n1")!.peers.has("t0-n1")).toBe(false);
  });

  it("a node back on its stream gets the frames it missed from the log, or a full map once they have aged out", () => {
    const { hub, views } = setup();
    const v = views.get("t0-n0")!;
    const seenSeq = v.seq;
    hub.detach("t0-n0", v);
    hub.status("t0-n1", { endpoints: ["198.18.0.2:2"], lastSeen: Date.now() }); // logged for t0-n0, not sent
    expect(hub.attach("t0-n0", v, { epoch: hub.epoch, seq: seenSeq })).toEqual({ resumed: true, frames: 1 });
    expect(v.fulls).toBe(1);
    expectConsistent(hub, views);

    // Connected, sent one more frame, then at rest past the log's age: the log is dropped at the next tick.
    const beforeChange = v.seq;
    hub.status("t0-n1", { endpoints: ["198.18.0.3:3"], lastSeen: Date.now() });
    hub.tick(Date.now() + RESUME_LOG_MAX_AGE_MS / 2);
    hub.detach("t0-n0", v);
    expect(hub.attach("t0-n0", v, { epoch: hub.epoch, seq: beforeChange })).toEqual({ resumed: true, frames: 1 });
    hub.tick(Date.now() + RESUME_LOG_MAX_AGE_MS + 1_000);
    hub.detach("t0-n0", v);
    // What it had is still enough to resume (nothing to send); a seq before the aged frame is not.
    expect(hub.attach("t0-n0", v, { epoch: hub.epoch, seq: v.seq })).toEqual({ resumed: true, frames: 0 });
    hub.detach("t0-n0", v);
    expect(hub.attach("t0-n0", v, { epoch: hub.epoch, seq: beforeChange })).toEqual({ resumed: false, frames: 1 });
    expect(v.fulls).toBe(2);
    expectConsistent(hub, views);
  });

  it("a change to many streams is encoded once; a resume replays each stream's own frame byte for byte", () => {
    const { hub } = setup();
    /** Keeps the bytes of every write. */
    const recorder = () => ({ chunks: [] as Buffer[], writableLength: 0, write(c: Buffer) { this.chunks.push(Buffer.from(c)); return true; }, destroy() {} });
    const sinks = new Map(["t0-n1", "t0-n2", "t1-n0"].map((n) => [n, recorder()]));
    for (const [n, r] of sinks) hub.attach(n, r); // full maps: the recorders' first frames
    const encoded = hub.stats.deltasEncoded, sent = hub.stats.framesSent;
    hub.status("t0-n0", { endpoints: ["198.18.0.7:7"], lastSeen: Date.now() });
    // One encoding for every watcher (team 0's and, through the team-0 -> team-1 rule, team 1's).
    expect(hub.stats.deltasEncoded - encoded).toBe(1);
    expect(hub.stats.framesSent - sent).toBeGreaterThan(3);
    for (const [n, r] of sinks) {
      const live = r.chunks[1];
      const seq = (new FrameReader().push(live)[0] as { seq: number }).seq;
      expect(live.equals(encodeFrame({ v: MAP_PROTOCOL_VERSION, t: "delta", seq, patch: [{ name: "t0-n0", endpoints: ["198.18.0.7:7"] }] })), n).toBe(true);
      hub.detach(n, r);
      const again = recorder();
      // The change, then the online patches of the streams that came back before this one.
      expect(hub.attach(n, again, { epoch: hub.epoch, seq: seq - 1 }).resumed).toBe(true);
      expect(again.chunks[0].equals(live), n).toBe(true);
    }
  });
});
