// Path selection state (src/nat/paths.ts) driven with a fake clock and a recording host.
import { describe, expect, it } from "vitest";
import { PathManager } from "../../src/nat/paths.js";
import { decodeCandidates, encodeCandidates, isCallMeMaybeAck } from "../../src/nat/call-me-maybe.js";
import { punchDone, quietFor } from "../../src/nat/punch-rules.js";
import type { PathHost, PeerActivity } from "../../src/nat/path-types.js";
import { punchTtlFor } from "../../src/nat/hops.js";
import { HOLD, holdInterval, isHolder, lapsed, newHoldEvidence, survived } from "../../src/nat/hold.js";
import { describeEndpoint, type Endpoint } from "../../src/addr/endpoint.js";

function harness(self = "a", side = { noNat: false }, canSend?: (ep: Endpoint) => boolean) {
  let now = 1_000_000;
  const sent: { peer: string; to: string; inner: string; payload: Uint8Array; at: number }[] = [];
  const punches: { to: string; at: number }[] = [];
  const holds: { to: string; at: number }[] = [];
  const used: string[] = [];
  const shadows: (string | undefined)[] = [];
  // The session layer's view, driven by the test: idle or active, our last send on the path, direct packets heard.
  const act: PeerActivity = { idle: false, lastSentAt: 0, lastDirectRxAt: 0 };
  const session = { up: true, fresh: true };
  const host: PathHost = {
    sendVia: (peer, ep, inner, payload) => { sent.push({ peer, to: describeEndpoint(ep), inner, payload, at: now }); },
    usePath: (_peer, ep, shadow) => { used.push(describeEndpoint(ep)); shadows.push(shadow && describeEndpoint(shadow)); },
    hasSession: () => session.up,
    localCandidates: () => [{ kind: "udp", host: "198.18.1.2", port: 4000 }],
    punch: (ep) => { punches.push({ to: describeEndpoint(ep), at: now }); },
    activity: () => act,
    sessionFresh: () => session.up && session.fresh,
    hold: (ep) => { holds.push({ to: describeEndpoint(ep), at: now }); },
    selfName: self,
    noNat: () => side.noNat,
    canSend,
    log: { info() {}, debug() {} },
    now: () => now,
  };
  const pm = new PathManager(host);
  return {
    pm, sent, punches, holds, used, shadows, act, session,
    advance: (ms: number) => { now += ms; },
    /** Advances in path-tick steps (250 ms), ticking each time. */
    run: (ms: number) => { for (let t = 0; t < ms; t += 250) { now += 250; pm.tick(); } },
    get now() { return now; },
  };
}

/** A probe reply as the peer sends it: the probe's id and the peer's own no-NAT byte. */
function replyTo(probe: Uint8Array, peerNoNat = false): Buffer {
  return Buffer.concat([Buffer.from(probe.subarray(0, 8)), Buffer.from([peerNoNat ? 1 : 0])]);
}

/** Brings b's direct path up: punch, the peer's acknowledgement (it punched too), probe, reply. */
function goDirect(h: ReturnType<typeof harness>, peerNoNat = false): void {
  h.pm.setPeer("b", [pub], relay);
  h.pm.tick(); h.pm.onCallMeMaybe("b", [], true); h.advance(300); h.pm.tick();
  h.pm.onProbeReply("b", pub, replyTo(h.sent.filter((s) => s.inner === "probe").at(-1)!.payload, peerNoNat));
  expect(h.pm.describe("b")!.path).toBe("direct");
}

const relay: Endpoint = { kind: "relay", relay: "relay-1", peer: "b" };
const lan: Endpoint = { kind: "udp", host: "198.19.5.10", port: 5000 };
const pub: Endpoint = { kind: "udp", host: "198.18.5.2", port: 6000 };

describe("path manager", () => {
  it("an unproven direct guess gives way to the relay as soon as the relay is known", () => {
    const h = harness();
    h.pm.setPeer("b", [lan]);
    expect(h.pm.currentPath("b")).toEqual(lan);
    h.pm.setPeer("b", [lan], relay);
    expect(h.pm.currentPath("b")).toEqual(relay);
    expect(h.used.at(-1)).toBe("relay relay-1");
  });

  it("punches with low TTL and asks the peer to punch before the first full-TTL probe, then goes direct on a pong", () => {
    const h = harness();
    h.pm.setPeer("b", [pub], relay);
    h.pm.tick();
    expect(h.punches.map((p) => p.to)).toEqual(["198.18.5.2:6000"]);
    expect(h.sent.filter((s) => s.inner === "call-me-maybe").map((s) => s.to)).toEqual(["relay relay-1"]);
    expect(decodeCandidates(h.sent.find((s) => s.inner === "call-me-maybe")!.payload)).toEqual([{ kind: "udp", host: "198.18.1.2", port: 4000 }]);
    expect(h.sent.filter((s) => s.inner === "probe")).toHaveLength(0); // still inside the punch lead
    h.advance(h.pm.timers.punchLeadMs);
    h.pm.tick();
    // No full-TTL packet before the peer confirms (through the relay) that it punched too.
    expect(h.sent.filter((s) => s.inner === "probe")).toHaveLength(0);
    h.pm.onCallMeMaybe("b", [], true);
    expect(h.sent.filter((s) => s.inner === "call-me-maybe")).toHaveLength(1); // an acknowledgement is not answered
    h.pm.tick();
    const probe = h.sent.find((s) => s.inner === "probe")!;
    expect(probe.to).toBe("198.18.5.2:6000");
    h.pm.onProbeReply("b", pub, probe.payload);
    expect(h.pm.describe("b")!.path).toBe("direct");
    expect(h.used.at(-1)).toBe("198.18.5.2:6000");
  });

  it("says how long the current path has held (ember peers --json paths.sinceMs)", () => {
    const h = harness();
    goDirect(h);
    h.advance(1_500);
    expect(h.pm.describe("b")!.sinceMs).toBe(1_500);
  });

  it("a pong from another endpoint than the probed one does not prove the path", () => {
    const h = harness();
    h.pm.setPeer("b", [pub], relay);
    h.pm.tick(); h.pm.onCallMeMaybe("b", [], true); h.advance(300); h.pm.tick();
    const probe = h.sent.find((s) => s.inner === "probe")!;
    h.pm.onProbeReply("b", { kind: "udp", host: "198.18.9.9", port: 6000 }, probe.payload);
    expect(h.pm.describe("b")!.path).toBe("relay:relay-1");
  });

  it("falls back to the relay when the direct path stops answering, and returns when it answers again", () => {
    const h = harness();
    goDirect(h);
    h.advance(10);
    h.act.lastSentAt = h.now; // we send; nothing comes back (the path was cut)
    h.run(3_500);
    expect(h.pm.describe("b")!.path).toBe("relay:relay-1");
    h.pm.onCallMeMaybe("b", [], true);
    for (let t = 0; t < 1_500; t += 250) { h.advance(250); h.pm.tick(); }
    h.pm.onProbeReply("b", pub, h.sent.filter((s) => s.inner === "probe").at(-1)!.payload);
    expect(h.pm.describe("b")!.path).toBe("direct");
    expect(h.pm.describe("b")!.switches).toBe(3);
  });

  it("call-me-maybe from the peer punches its candidates at once", () => {
    const h = harness();
    h.pm.setPeer("b", [], relay);
    h.pm.onCallMeMaybe("b", decodeCandidates(encodeCandidates([pub, lan])));
    expect(h.punches.map((p) => p.to).sort()).toEqual(["198.18.5.2:6000", "198.19.5.10:5000"]);
    expect(decodeCandidates(Buffer.from("junk,1.2.3.4:99999,:5,[::1]:7"))).toEqual([{ kind: "udp", host: "::1", port: 7 }]);
  });

  it("a new relay path (another relay of the fleet) moves relayed traffic at once, and only becomes the fallback of a proven direct path", () => {
    const h = harness();
    const relay2: Endpoint = { kind: "relay", relay: "relay-2", peer: "b" };
    h.pm.setPeer("b", [pub], relay);
    expect(h.pm.currentPath("b")).toEqual(relay);
    h.pm.setRelay("b", relay2);
    expect(h.pm.currentPath("b")).toEqual(relay2);
    expect(h.used.at(-1)).toBe("relay relay-2");
    const switches = h.pm.describe("b")!.switches;
    h.pm.setRelay("b", relay2); // the same relay again: nothing moves
    expect(h.pm.describe("b")!.switches).toBe(switches);
    goDirect(h);
    const usedBefore = h.used.length;
    h.pm.setRelay("b", relay);
    expect(h.pm.describe("b")!.path).toBe("direct");
    expect(h.used.length).toBe(usedBefore);
    expect(h.pm.peers.get("b")!.relay).toEqual(relay);
  });
});

describe("address families this node cannot send on", () => {
  // An IPv6-only host (a cellular site behind NAT64): its IPv4 socket binds, but nothing IPv4 leaves the host.
  const v6Only = (ep: Endpoint) => ep.kind !== "udp" || ep.host.includes(":");
  const v6: Endpoint = { kind: "udp", host: "2001:db8:1:3::10", port: 6000 };

  it("a peer's IPv4 candidates are never punched, probed or sprayed; its IPv6 ones are", () => {
    const h = harness("a", { noNat: false }, v6Only);
    h.pm.setPeer("b", [pub, lan, v6], relay);
    h.run(10_000);
    h.pm.onCallMeMaybe("b", [], false);
    h.run(10_000);
    const touched = [...h.punches.map((p) => p.to), ...h.sent.filter((x) => x.inner === "probe").map((x) => x.to)];
    expect(new Set(touched)).toEqual(new Set(["[2001:db8:1:3::10]:6000"]));
  });

  it("with only IPv4 candidates: no call-me-maybe, no probe, and ember peers says why", () => {
    const h = harness("a", { noNat: false }, v6Only);
    h.pm.setPeer("b", [pub, lan], relay);
    h.run(20_000);
    h.pm.onCallMeMaybe("b", [pub], false);
    h.run(5_000);
    expect(h.punches).toEqual([]);
    expect(h.sent.filter((x) => x.inner === "probe" || (x.inner === "call-me-maybe" && !isCallMeMaybeAck(x.payload)))).toEqual([]);
    expect(h.pm.describe("b")!.notDirect).toBe("no common address family");
  });
});

describe("path choice across families: a candidate is confirmed before it displaces a direct path", () => {
  const v6: Endpoint = { kind: "udp", host: "2001:db8:1:3::10", port: 6000 };
  const [V4, V6] = ["198.18.5.2:6000", "[2001:db8:1:3::10]:6000"];

  /** A round towards b's IPv4 and IPv6 candidates up to the first probes; answer(to) answers the latest probe there. */
  function round() {
    const h = harness();
    h.pm.setPeer("b", [pub, v6], relay);
    h.pm.tick(); h.pm.onCallMeMaybe("b", [], true); h.advance(300); h.pm.tick();
    const answer = (to: string) => {
      const probe = h.sent.filter((x) => x.inner === "probe" && x.to === to).at(-1)!;
      h.pm.onProbeReply("b", to === V6 ? v6 : pub, replyTo(probe.payload));
    };
    return { h, answer };
  }
  const busyPeer = () => new Promise((r) => setTimeout(r, 15));

  it("IPv6 loses a first round on one slow reply, is confirmed by the next answers at once, and wins", async () => {
    const { h, answer } = round();
    answer(V4);
    await busyPeer(); // the IPv6 reply comes late: IPv4 keeps the path on this one sample
    answer(V6);
    expect(h.pm.describe("b")!.endpoint).toBe(V4);
    // Each answer brings the next probe at once (before: the next one 5 s later); quick answers confirm IPv6.
    answer(V6);
    answer(V6);
    expect(h.pm.describe("b")!.endpoint).toBe(V6);
    expect(h.pm.describe("b")!.candidates.find((c) => c.endpoint === V6)!.probes).toBe(3);
  });

  it("an unconfirmed candidate never takes a live direct path's place (no flip-flop on one sample each)", async () => {
    const { h, answer } = round();
    await busyPeer();
    answer(V6); // first answer (15 ms): direct IPv6 at once, from the relay
    answer(V4); // as slow: IPv6 stays
    answer(V4); // quick, but IPv4 has two samples, not three
    expect(h.pm.describe("b")!.endpoint).toBe(V6);
    expect(h.used).not.toContain(V4);
  });
});

describe("bounded spray towards an endpoint-dependent peer", () => {
  function sprayHarness(mapping: string) {
    const h = harness();
    const pm = new PathManager({ ...(h.pm as any).host, mapping: () => mapping });
    return { ...h, pm };
  }

  it("an endpoint-independent side sprays within the budget after the candidates stay silent, and a hit goes direct", () => {
    const h = sprayHarness("endpoint-independent");
    h.pm.setPeer("b", [pub], relay);
    for (let t = 0; t < 2_000; t += 250) { h.advance(250); h.pm.tick(); }
    expect(h.pm.describe("b")!.spray).toBeUndefined(); // not before sprayAfterMs of silence
    for (let t = 0; t < 3_000; t += 250) { h.advance(250); h.pm.tick(); }
    const spray = h.pm.describe("b")!.spray!;
    expect(spray.attempts).toBe(1);
    expect(spray.probes).toBe(h.pm.timers.sprayBudget);
    const sprayed = h.sent.filter((s) => s.inner === "probe" && s.to !== "198.18.5.2:6000");
    expect(sprayed.length).toBe(h.pm.timers.sprayBudget);
    expect(sprayed.slice(0, 2).map((s) => s.to)).toEqual(["198.18.5.2:6001", "198.18.5.2:5999"]); // neighbours first
    // The peer's NAT happened to map port 6001 for us: its reply proves the path.
    h.pm.onProbeReply("b", { kind: "udp", host: "198.18.5.2", port: 6001 }, sprayed[0].payload);
    expect(h.pm.describe("b")!.path).toBe("direct");
    expect(h.pm.describe("b")!.spray!.hit).toBe("198.18.5.2:6001");
    // While the direct path keeps answering, nothing more is sprayed.
    const hitEp: Endpoint = { kind: "udp", host: "198.18.5.2", port: 6001 };
    for (let t = 0; t < 120_000; t += 1_000) {
      h.advance(1_000); h.pm.tick();
      const last = h.sent.filter((x) => x.inner === "probe" && x.to === "198.18.5.2:6001").at(-1);
      if (last) h.pm.onProbeReply("b", hitEp, last.payload);
    }
    expect(h.pm.describe("b")!.path).toBe("direct");
    expect(h.pm.describe("b")!.spray!.attempts).toBe(1);
  });

  it("an endpoint-dependent side does not spray (its own mapping cannot be matched)", () => {
    const h = sprayHarness("endpoint-dependent");
    h.pm.setPeer("b", [pub], relay);
    for (let t = 0; t < 10_000; t += 250) { h.advance(250); h.pm.tick(); }
    expect(h.pm.describe("b")!.spray).toBeUndefined();
  });
});

describe("an active direct path", () => {
  it("is not probed while the peer's own packets keep arriving; a send left unanswered is probed after 1 s and dropped after 3 s", () => {
    const h = harness();
    goDirect(h);
    const probesTo = () => h.sent.filter((s) => s.inner === "probe" && s.to === "198.18.5.2:6000").length;
    const before = probesTo();
    // Two-way traffic for 10 s: we send, the peer's packets come back on the direct path.
    for (let t = 0; t < 10_000; t += 250) {
      h.advance(250);
      h.act.lastSentAt = h.now;
      h.act.lastDirectRxAt = h.now + 1; h.act.lastDirectRxFrom = pub;
      h.pm.tick();
    }
    expect(probesTo()).toBe(before);
    // The path is cut: sends go unanswered.
    const cutAt = h.now;
    let probedAt = 0, relayAt = 0;
    for (let t = 0; t < 4_000; t += 250) {
      h.advance(250);
      h.act.lastSentAt = h.now;
      h.pm.tick();
      if (!probedAt && probesTo() > before) probedAt = h.now - cutAt;
      if (!relayAt && h.pm.describe("b")!.path !== "direct") relayAt = h.now - cutAt;
    }
    expect(probedAt).toBeGreaterThanOrEqual(1_000);
    expect(probedAt).toBeLessThanOrEqual(1_500);
    expect(relayAt).toBeGreaterThanOrEqual(3_000);
    expect(relayAt).toBeLessThanOrEqual(3_500);
  });
});

describe("at rest (docs/nat.md)", () => {
  it("an idle peer on the relay costs nothing: no probe, punch, call-me-maybe or spray", () => {
    const h = harness();
    h.pm.setPeer("b", [pub], relay);
    h.act.idle = true;
    h.run(120_000);
    expect(h.sent).toHaveLength(0);
    expect(h.punches).toHaveLength(0);
    expect(h.holds).toHaveLength(0);
  });

  it("a direct path at rest: only the holder sends, one hold per interval, growing while the peer answers", () => {
    const h = harness("a"); // "a" < "b": a holds
    goDirect(h);
    h.act.lastSentAt = h.now;
    h.act.idle = true;
    const start = h.sent.length;
    const holdsAt: number[] = [];
    for (let t = 0; t < 300_000; t += 250) {
      h.advance(250); h.pm.tick();
      const last = h.sent.at(-1);
      if (h.sent.length > start + holdsAt.length && last?.inner === "probe") {
        holdsAt.push(h.now);
        h.pm.onProbeReply("b", pub, last.payload); // the peer answers every hold
      }
    }
    expect(h.sent.slice(start).every((s) => s.inner === "probe" && s.to === "198.18.5.2:6000")).toBe(true);
    const gaps = holdsAt.map((at, i) => at - (i ? holdsAt[i - 1] : holdsAt[0] - HOLD.minMs));
    // 25 s first (nothing measured yet: 25 s * 1.5 would be the first try, proven minimum is 25 s), then growing by 1.5.
    expect(gaps[0]).toBeGreaterThanOrEqual(HOLD.minMs);
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]).toBeGreaterThan(gaps[i - 1] * 1.4);
    expect(h.pm.describe("b")!.path).toBe("direct");
    expect(h.pm.describe("b")!.activity).toBe("idle");

    const other = harness("c"); // "c" > "b": the peer holds, we send nothing
    goDirect(other);
    other.act.idle = true;
    const n = other.sent.length;
    other.run(300_000);
    expect(other.sent.length).toBe(n);
    expect(other.holds).toHaveLength(0);
  });

  it("a hold left unanswered is retried, then counts as a lapse: relay, a recovery round, and shorter holds after", () => {
    const h = harness("a");
    goDirect(h);
    h.act.lastSentAt = h.now;
    h.act.idle = true;
    h.run(HOLD.minMs * 1.5 + 250);
    const holds = () => h.sent.filter((s) => s.inner === "probe");
    const n = holds().length;
    h.run(2_750); // retries, nobody answers
    expect(holds().length).toBeGreaterThanOrEqual(n + 2);
    expect(h.pm.describe("b")!.path).toBe("relay:relay-1");
    expect(h.pm.describe("b")!.hold.lapsedS).toBeGreaterThan(0);
    // Recovery: punch and call-me-maybe at once, even at rest.
    h.run(500);
    expect(h.punches.length).toBeGreaterThan(1);
    expect(h.sent.some((s) => s.inner === "call-me-maybe")).toBe(true);
  });

  it("with stale keys a hold is a STUN indication at the longest proven interval", () => {
    const h = harness("a");
    goDirect(h);
    h.act.lastSentAt = h.now;
    h.act.idle = true;
    h.session.fresh = false;
    const n = h.sent.length;
    h.run(100_000);
    expect(h.sent.length).toBe(n);
    expect(h.holds.length).toBe(4); // every 25 s: nothing longer was proven
    expect(h.holds.every((x) => x.to === "198.18.5.2:6000")).toBe(true);
  });

  it("wake-up on a direct path: data keeps going direct with a copy over the relay until the path answers", () => {
    const h = harness("c"); // the peer holds the path during the rest
    goDirect(h);
    h.act.idle = true;
    h.run(60_000);
    h.act.idle = false;
    h.pm.onWake("b");
    expect(h.used.at(-1)).toBe("198.18.5.2:6000");
    expect(h.shadows.at(-1)).toBe("relay relay-1");
    const probe = h.sent.at(-1)!;
    expect(probe.inner).toBe("probe");
    h.advance(5);
    h.pm.onProbeReply("b", pub, probe.payload);
    expect(h.shadows.at(-1)).toBeUndefined();
    expect(h.pm.describe("b")!.path).toBe("direct");
  });

  it("wake-up on a lapsed direct path: the relay takes over within 3 s", () => {
    const h = harness("c");
    goDirect(h);
    h.act.idle = true;
    h.run(60_000);
    h.act.idle = false;
    h.session.up = false; // keys expired at rest: the handshake goes out on the direct path, nothing answers
    h.pm.onWake("b");
    h.run(2_750);
    expect(h.pm.describe("b")!.path).toBe("direct");
    h.run(500);
    expect(h.pm.describe("b")!.path).toBe("relay:relay-1");
    expect(h.shadows.at(-1)).toBeUndefined();
  });
});

describe("who holds a pair (src/nat/hold.ts isHolder)", () => {
  it("no NAT on a side: it never holds; two such sides hold nothing; two NAT sides (or unknown): the first name", () => {
    expect(isHolder({ name: "a", noNat: true }, { name: "b", noNat: true })).toBe(false);
    expect(isHolder({ name: "b", noNat: true }, { name: "a", noNat: true })).toBe(false);
    expect(isHolder({ name: "a", noNat: true }, { name: "b", noNat: false })).toBe(false);
    expect(isHolder({ name: "b", noNat: false }, { name: "a", noNat: true })).toBe(true);
    expect(isHolder({ name: "a", noNat: false }, { name: "b", noNat: false })).toBe(true);
    expect(isHolder({ name: "b", noNat: false }, { name: "a", noNat: false })).toBe(false);
    expect(isHolder({ name: "a" }, { name: "b" })).toBe(true);
    expect(isHolder({ name: "b" }, { name: "a" })).toBe(false);
  });

  it("probes and replies carry the sender's side; a node with no NAT sends nothing at rest, and a NAT side with such a peer holds", () => {
    // Our side has no NAT: every probe says so, and no hold goes out though "a" sorts first.
    const pub1 = harness("a", { noNat: true });
    goDirect(pub1, true);
    expect(pub1.sent.filter((s) => s.inner === "probe").every((s) => s.payload.length === 9 && s.payload[8] === 1)).toBe(true);
    pub1.act.idle = true;
    const n = pub1.sent.length;
    pub1.run(600_000);
    expect(pub1.sent.length).toBe(n);
    expect(pub1.holds).toHaveLength(0);
    expect(pub1.pm.describe("b")!.hold.holder).toBe(false);
    expect(pub1.pm.describe("b")!.path).toBe("direct");
    // Our side is behind NAT and sorts second ("c" > "b"), but the peer said it has none: we hold.
    const natted = harness("c", { noNat: false });
    goDirect(natted, true);
    expect(natted.sent.filter((s) => s.inner === "probe").every((s) => s.payload[8] === 0)).toBe(true);
    natted.act.idle = true;
    const m = natted.sent.length;
    natted.run(60_000);
    expect(natted.pm.describe("b")!.hold.holder).toBe(true);
    expect(natted.sent.slice(m).filter((s) => s.inner === "probe").length).toBeGreaterThanOrEqual(1);
    // A probe from the peer answers with our own byte after its id, and teaches us the peer's.
    const answering = harness("c", { noNat: true });
    answering.pm.setPeer("b", [pub], relay);
    answering.pm.onProbe("b", pub, Buffer.from([9, 9, 9, 9, 9, 9, 9, 9, 0]));
    const reply = answering.sent.find((s) => s.inner === "probe-reply")!;
    expect([...reply.payload]).toEqual([9, 9, 9, 9, 9, 9, 9, 9, 1]);
    // Malformed lengths are ignored (the byte is part of the message).
    answering.pm.onProbe("b", pub, Buffer.alloc(8, 7));
    expect(answering.sent.filter((s) => s.inner === "probe-reply")).toHaveLength(1);
    // A longer probe is a newer release's (src/wire/probe.ts): read as its first 9 bytes, answered in our 9.
    answering.pm.onProbe("b", pub, Buffer.from([5, 5, 5, 5, 5, 5, 5, 5, 1, 0xaa, 0xbb]));
    const replies = answering.sent.filter((s) => s.inner === "probe-reply");
    expect(replies).toHaveLength(2);
    expect([...replies[1].payload]).toEqual([5, 5, 5, 5, 5, 5, 5, 5, 1]);
  });
});

describe("hold intervals (src/nat/hold.ts)", () => {
  it("start at 25 s, grow by 1.5 with each answered hold, stay below 80% of a lapse, and never go under 25 s", () => {
    let e = newHoldEvidence();
    expect(holdInterval(e, false)).toBe(25_000);
    expect(holdInterval(e, true)).toBe(37_500);
    e = survived(e, 37_500);
    expect(holdInterval(e, true)).toBe(56_250);
    expect(holdInterval(e, false)).toBe(37_500);
    e = lapsed(survived(e, 84_000), 126_000); // Linux conntrack: 120 s for a two-way UDP flow
    expect(holdInterval(e, true)).toBeCloseTo(100_800);
    expect(holdInterval(e, false)).toBeCloseTo(84_000);
    expect(holdInterval(lapsed(e, 20_000), true)).toBe(25_000);
    expect(holdInterval(survived(newHoldEvidence(), 3_600_000), true)).toBe(HOLD.maxMs);
  });
});

describe("issue 10: peer-reflexive candidates, punch rounds, punch TTL", () => {
  it("an authenticated probe from an unadvertised address is answered, learned and probed back (both directions go direct)", () => {
    const h = harness();
    h.pm.setPeer("b", [pub], relay);
    const remapped: Endpoint = { kind: "udp", host: "198.18.5.2", port: 6123 };
    h.pm.onProbe("b", remapped, Buffer.from([1, 1, 1, 1, 1, 1, 1, 1, 0]));
    expect(h.sent.filter((s) => s.inner === "probe-reply").map((s) => s.to)).toEqual(["198.18.5.2:6123"]);
    const back = h.sent.filter((s) => s.inner === "probe" && s.to === "198.18.5.2:6123");
    expect(back).toHaveLength(1); // no punch needed: the peer's packet came in by it
    expect(h.pm.describe("b")!.candidates.find((c) => c.endpoint === "198.18.5.2:6123")?.prflx).toBe(true);
    h.pm.onProbeReply("b", remapped, back[0].payload);
    expect(h.pm.describe("b")!.path).toBe("direct");
  });

  it("a round unanswered after both punched ends in a quiet past conntrack's UNREPLIED timeout, then punches again", () => {
    const h = harness();
    h.pm.setPeer("b", [pub], relay);
    h.pm.tick();
    h.pm.onCallMeMaybe("b", [], true);
    h.run(4_500);
    const d = h.pm.describe("b")!;
    expect(d.round.failed).toBe(1);
    expect(d.notDirect).toBe("mapping clash suspected");
    const before = h.punches.length + h.sent.filter((s) => s.inner === "probe").length;
    h.run(30_000);
    expect(h.punches.length + h.sent.filter((s) => s.inner === "probe").length).toBe(before); // silent
    h.run(6_000);
    expect(h.punches.length).toBeGreaterThan(0);
    expect(h.punches.at(-1)!.at).toBeGreaterThan(h.now - 6_000);
  });

  it("a direct path cut and restored: probed without punch or quiet while its NAT entries are alive", () => {
    const h = harness();
    goDirect(h);
    h.advance(10);
    h.act.lastSentAt = h.now; // sends go unanswered: the path was cut
    h.run(3_500);
    expect(h.pm.describe("b")!.path).toBe("relay:relay-1");
    // A round may fail meanwhile (the peer acknowledged, nothing answered)...
    h.pm.onCallMeMaybe("b", [], true);
    h.run(5_000);
    // ...but the path answered 9 s ago: it is still probed, with full TTL, and no punch.
    const punches = h.punches.length;
    const probes = h.sent.filter((s) => s.inner === "probe" && s.to === describeEndpoint(pub)).length;
    h.run(3_000);
    expect(h.sent.filter((s) => s.inner === "probe" && s.to === describeEndpoint(pub)).length).toBeGreaterThan(probes);
    expect(h.punches.length).toBe(punches);
    h.pm.onProbeReply("b", pub, h.sent.filter((s) => s.inner === "probe").at(-1)!.payload);
    expect(h.pm.describe("b")!.path).toBe("direct");
  });

  it("without the peer's acknowledgement no full-TTL probe goes, and the round ends without a quiet", () => {
    const h = harness();
    h.pm.setPeer("b", [pub], relay);
    h.run(4_500);
    expect(h.sent.filter((s) => s.inner === "probe")).toHaveLength(0);
    expect(h.pm.describe("b")!.round.failed).toBe(0);
  });

  it("pure helpers: punchDone, quietFor, punchTtlFor", () => {
    const t = { punchLeadMs: 250, roundMs: 4_000, quietMs: 35_000, quietMaxMs: 140_000 };
    expect(punchDone(1_000, 0, true, 2_000, t)).toBe(false);
    expect(punchDone(1_000, 1_100, true, 1_200, t)).toBe(false); // inside the lead
    expect(punchDone(1_000, 1_100, true, 1_300, t)).toBe(true);
    expect(punchDone(1_000, 0, false, 1_300, t)).toBe(true); // no relay to coordinate through
    expect([0, 1, 2, 3].map((n) => quietFor(n, t))).toEqual([35_000, 70_000, 140_000, 140_000]);
    expect([undefined, 2, 3, 4, 12].map(punchTtlFor)).toEqual([2, 2, 2, 3, 4]);
  });
});
