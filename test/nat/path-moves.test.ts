// Nodes that move (src/nat/path-moves.ts and the path manager acting on it): our own network changes, and a peer
// that moved. Driven with a fake clock and a recording host, as test/nat/paths.test.ts.
import { describe, expect, it } from "vitest";
import { PathManager } from "../../src/nat/paths.js";
import { forgetOwnMappings, peerRoamed, RELAY_RX_DOUBT_MS } from "../../src/nat/path-moves.js";
import { decodeCandidates } from "../../src/nat/call-me-maybe.js";
import type { Candidate, PathHost, PeerActivity, PeerPaths } from "../../src/nat/path-types.js";
import { newHoldEvidence } from "../../src/nat/hold.js";
import { describeEndpoint, type Endpoint } from "../../src/addr/endpoint.js";

const relay: Endpoint = { kind: "relay", relay: "relay-1", peer: "b" };
const pub: Endpoint = { kind: "udp", host: "198.18.5.2", port: 6000 };
const moved: Endpoint = { kind: "udp", host: "198.18.7.2", port: 6100 };

function harness() {
  let now = 1_000_000;
  const sent: { to: string; inner: string; payload: Uint8Array }[] = [];
  const punches: string[] = [];
  const used: { path: string; shadow?: string }[] = [];
  const act: PeerActivity = { idle: false, lastSentAt: 0, lastDirectRxAt: 0 };
  const ready = { punch: true };
  const mine = [{ kind: "udp" as const, host: "198.19.1.10", port: 4000 }];
  const host: PathHost = {
    sendVia: (_peer, ep, inner, payload) => { sent.push({ to: describeEndpoint(ep), inner, payload }); },
    usePath: (_peer, ep, shadow) => { used.push({ path: describeEndpoint(ep), shadow: shadow && describeEndpoint(shadow) }); },
    hasSession: () => true,
    localCandidates: () => mine,
    punch: (ep) => { punches.push(describeEndpoint(ep)); },
    punchReady: () => ready.punch,
    activity: () => act,
    sessionFresh: () => true,
    log: { info() {}, debug() {} },
    now: () => now,
  };
  const pm = new PathManager(host);
  const probes = () => sent.filter((s) => s.inner === "probe");
  return {
    pm, sent, punches, used, act, ready, mine, probes,
    advance: (ms: number) => { now += ms; },
    get now() { return now; },
    /** Answers the last probe sent to `to`, as the peer's reply arriving from there. */
    answer(to: Endpoint) {
      const p = probes().filter((s) => s.to === describeEndpoint(to)).at(-1)!;
      pm.onProbeReply("b", to, Buffer.concat([Buffer.from(p.payload.subarray(0, 8)), Buffer.from([0])]));
    },
  };
}

/** b direct on pub: punch, the peer's acknowledgement, probe, three replies (a confirmed candidate). */
function goDirect(h: ReturnType<typeof harness>): void {
  h.pm.setPeer("b", [pub], relay);
  h.pm.tick(); h.pm.onCallMeMaybe("b", [], true); h.advance(300); h.pm.tick();
  for (let i = 0; i < 3; i++) h.answer(pub);
  expect(h.pm.describe("b")!.path).toBe("direct");
}

function candidate(ep: Endpoint, at: number): Candidate {
  return { endpoint: ep, punchedAt: at, lastProbeAt: at, lastPongAt: at, lastHeardAt: at, probes: 3, pongs: 3, rttMs: 2 };
}

function peerState(cands: Candidate[], over: Partial<PeerPaths> = {}): PeerPaths {
  return {
    name: "b", candidates: new Map(cands.map((c) => [describeEndpoint(c.endpoint), c])), lastCallMeMaybeAt: 5,
    switches: 0, wakes: 0,
    hold: { evidence: newHoldEvidence(), lastAt: 0, holds: 0, indications: 0,
      pending: { firstAt: 1, lastAt: 1, silenceMs: 1, tries: 1 } },
    peerPunchedAt: 7, round: { failed: 3, startedAt: 9, quietUntil: 99, quietSince: 9 }, ...over,
  };
}

describe("nodes that move: the rules", () => {
  it("forgetOwnMappings: nothing our old address proved still counts; the peer's candidates stay", () => {
    const s = peerState([candidate(pub, 100)],
      { revalidateSince: 50, suspectSince: 60, joinUntil: 70, sprayQueue: [pub], silentSince: 80 });
    forgetOwnMappings(s);
    const c = s.candidates.get(describeEndpoint(pub))!;
    expect([c.punchedAt, c.lastProbeAt, c.lastPongAt, c.lastHeardAt]).toEqual([0, 0, 0, 0]);
    expect(c.rttMs).toBe(2);
    expect(s.round).toEqual({ failed: 0, startedAt: 0, quietUntil: 0, quietSince: 0 });
    expect([s.peerPunchedAt, s.lastCallMeMaybeAt, s.hold.pending, s.revalidateSince, s.suspectSince]).toEqual([0, 0, undefined, undefined, undefined]);
    expect([s.joinUntil, s.sprayQueue, s.silentSince]).toEqual([undefined, undefined, undefined]);
  });

  it("peerRoamed: only when the current path is silent since the doubt and the peer's data comes from a candidate that answered", () => {
    const cur = candidate(pub, 100);
    const next = candidate(moved, 250);
    const s = peerState([cur, next], { revalidateSince: 200 });
    const heard = (c: Candidate) => c.lastHeardAt;
    expect(peerRoamed(s, cur, heard, { at: 260, from: moved })).toBe(next);
    // The current path answered after the doubt began: it works, nobody roamed.
    expect(peerRoamed(s, cur, () => 210, { at: 260, from: moved })).toBeUndefined();
    // The peer's latest packet came from the current path, or before the doubt.
    expect(peerRoamed(s, cur, heard, { at: 260, from: pub })).toBeUndefined();
    expect(peerRoamed(s, cur, heard, { at: 150, from: moved })).toBeUndefined();
    // The new address has not answered our probe since the doubt: not proven both ways.
    next.lastPongAt = 150;
    expect(peerRoamed(s, cur, heard, { at: 260, from: moved })).toBeUndefined();
    // No doubt at all: never.
    next.lastPongAt = 250;
    expect(peerRoamed(peerState([cur, next]), cur, heard, { at: 260, from: moved })).toBeUndefined();
  });
});

describe("nodes that move: the path manager", () => {
  it("our network changed: a direct path moves to the relay at once, then is punched again (never probed first) once netcheck is done", () => {
    const h = harness();
    goDirect(h);
    h.advance(1_000);
    h.ready.punch = false; // LocalCandidates.networkChanged: no round before netcheck has measured the new network
    h.pm.networkChanged();
    expect(h.pm.describe("b")!.path).toBe("relay:relay-1");
    expect(h.used.at(-1)).toEqual({ path: "relay relay-1", shadow: undefined });
    const [punches, probes, sent] = [h.punches.length, h.probes().length, h.sent.length];
    h.advance(250); h.pm.tick();
    expect([h.punches.length, h.probes().length, h.sent.length]).toEqual([punches, probes, sent]); // nothing from the old view
    h.mine[0] = { kind: "udp", host: "198.19.9.10", port: 4000 };
    h.ready.punch = true;
    h.advance(250); h.pm.tick();
    // A low-TTL punch first and our new candidates to the peer through the relay; no full-TTL probe yet.
    expect(h.punches.slice(punches)).toEqual(["198.18.5.2:6000"]);
    const cmm = h.sent.slice(sent).filter((s) => s.inner === "call-me-maybe");
    expect(cmm.map((s) => s.to)).toEqual(["relay relay-1"]);
    expect(decodeCandidates(cmm[0].payload)).toEqual([h.mine[0]]);
    expect(h.probes()).toHaveLength(probes);
    h.pm.onCallMeMaybe("b", [], true); h.advance(300); h.pm.tick();
    expect(h.probes().length).toBe(probes + 1);
    h.answer(pub);
    expect(h.pm.describe("b")!.path).toBe("direct");
  });

  it("a resting peer's direct path moves to the relay too, and nothing is sent until it wakes", () => {
    const h = harness();
    goDirect(h);
    h.act.idle = true;
    h.advance(60_000);
    const sent = h.sent.length;
    h.pm.networkChanged();
    for (let i = 0; i < 20; i++) { h.advance(250); h.pm.tick(); }
    expect(h.pm.describe("b")!.path).toBe("relay:relay-1");
    expect(h.sent.length).toBe(sent);
  });

  it("the peer sends over the relay while we are direct: the direct path is revalidated (data over the relay too) unless just heard", () => {
    const h = harness();
    goDirect(h);
    h.act.lastDirectRxAt = h.now; h.act.lastDirectRxFrom = pub;
    h.advance(RELAY_RX_DOUBT_MS - 100);
    h.pm.onRelayRx("b");
    expect(h.pm.describe("b")!.revalidating).toBe(false);
    h.advance(200);
    const probes = h.probes().length;
    h.pm.onRelayRx("b");
    expect(h.pm.describe("b")!.revalidating).toBe(true);
    expect(h.used.at(-1)).toEqual({ path: "198.18.5.2:6000", shadow: "relay relay-1" });
    expect(h.probes().slice(probes).map((p) => p.to)).toEqual(["198.18.5.2:6000"]);
    // The direct path answers: the copy over the relay stops.
    h.answer(pub);
    expect(h.pm.describe("b")!.revalidating).toBe(false);
    expect(h.used.at(-1)).toEqual({ path: "198.18.5.2:6000", shadow: undefined });
    // A peer that keeps sending over the relay costs one probe a heartbeat, not one a packet.
    const afterFirst = h.probes().length;
    for (let i = 0; i < 25; i++) { h.advance(RELAY_RX_DOUBT_MS); h.pm.onRelayRx("b"); h.answer(pub); }
    const heartbeats = Math.floor((25 * RELAY_RX_DOUBT_MS) / h.pm.timers.heartbeatMs);
    expect(h.probes().length - afterFirst).toBeLessThanOrEqual(heartbeats);
    expect(h.probes().length - afterFirst).toBeGreaterThan(0);
  });

  it("the peer moved to a new address: its probe from there is answered and probed back, and the path follows it before the path timeout", () => {
    const h = harness();
    goDirect(h);
    h.advance(2_000);
    h.pm.onRelayRx("b"); // its data came over the relay first (it moved; its direct path is being found again)
    const t0 = h.now;
    h.advance(100);
    // Its probe from the new address: answered there, learned as peer-reflexive, and probed back at once.
    h.pm.onProbe("b", moved, Buffer.alloc(9));
    h.act.lastDirectRxAt = h.now; h.act.lastDirectRxFrom = moved;
    expect(h.sent.filter((s) => s.inner === "probe-reply").at(-1)!.to).toBe("198.18.7.2:6100");
    expect(h.probes().at(-1)!.to).toBe("198.18.7.2:6100");
    h.advance(5);
    h.answer(moved);
    expect(h.pm.describe("b")!.path).toBe("direct");
    expect(h.pm.currentPath("b")).toEqual(moved);
    expect(h.now - t0).toBeLessThan(h.pm.timers.pathTimeoutMs);
  });
});
