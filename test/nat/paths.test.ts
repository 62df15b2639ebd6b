// Path selection state (src/nat/paths.ts) driven with a fake clock and a recording host.
import { describe, expect, it } from "vitest";
import { PathManager, decodeCandidates, encodeCandidates, type PathHost } from "../../src/nat/paths.js";
import { describeEndpoint, type Endpoint } from "../../src/session/endpoint.js";

function harness() {
  let now = 1_000_000;
  const sent: { peer: string; to: string; inner: string; payload: Uint8Array; at: number }[] = [];
  const punches: { to: string; at: number }[] = [];
  const used: string[] = [];
  const host: PathHost = {
    sendVia: (peer, ep, inner, payload) => { sent.push({ peer, to: describeEndpoint(ep), inner, payload, at: now }); },
    usePath: (_peer, ep) => { used.push(describeEndpoint(ep)); },
    hasSession: () => true,
    localCandidates: () => [{ kind: "udp", host: "198.18.1.2", port: 4000 }],
    punch: (ep) => { punches.push({ to: describeEndpoint(ep), at: now }); },
    log: { info() {}, debug() {} },
    now: () => now,
  };
  const pm = new PathManager(host);
  return { pm, sent, punches, used, advance: (ms: number) => { now += ms; }, get now() { return now; } };
}

const relay: Endpoint = { kind: "relay", relay: "relay-1", peer: "b" };
const lan: Endpoint = { kind: "udp", host: "198.19.5.10", port: 5000 };
const pub: Endpoint = { kind: "udp", host: "198.18.5.2", port: 6000 };

describe("path manager", () => {
  it("an unproven direct guess gives way to the relay as soon as the relay is known", () => {
    const h = harness();
    h.pm.setPeer("b", [lan]);
    expect(h.pm.initialPath("b")).toEqual(lan);
    h.pm.setPeer("b", [lan], relay);
    expect(h.pm.initialPath("b")).toEqual(relay);
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
    const probe = h.sent.find((s) => s.inner === "probe")!;
    expect(probe.to).toBe("198.18.5.2:6000");
    h.pm.onProbeReply("b", pub, probe.payload);
    expect(h.pm.describe("b")!.path).toBe("direct");
    expect(h.used.at(-1)).toBe("198.18.5.2:6000");
  });

  it("a pong from another endpoint than the probed one does not prove the path", () => {
    const h = harness();
    h.pm.setPeer("b", [pub], relay);
    h.pm.tick(); h.advance(300); h.pm.tick();
    const probe = h.sent.find((s) => s.inner === "probe")!;
    h.pm.onProbeReply("b", { kind: "udp", host: "198.18.9.9", port: 6000 }, probe.payload);
    expect(h.pm.describe("b")!.path).toBe("relay:relay-1");
  });

  it("falls back to the relay when the direct path stops answering, and returns when it answers again", () => {
    const h = harness();
    h.pm.setPeer("b", [pub], relay);
    h.pm.tick(); h.advance(300); h.pm.tick();
    h.pm.onProbeReply("b", pub, h.sent.filter((s) => s.inner === "probe").at(-1)!.payload);
    expect(h.pm.describe("b")!.path).toBe("direct");
    for (let t = 0; t < 3_500; t += 250) { h.advance(250); h.pm.tick(); } // probes go unanswered
    expect(h.pm.describe("b")!.path).toBe("relay:relay-1");
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
