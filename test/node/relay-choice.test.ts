// The relay fleet's two pure choices (src/node/mesh.ts): our home relay, and the relay a peer is reached through.
import { describe, expect, it } from "vitest";
import { chooseHomeRelay, chooseRelayFor } from "../../src/node/mesh.js";

const relays = (up: Record<string, boolean>) => Object.entries(up).map(([name, connected]) => ({ name, connected }));

describe("home relay", () => {
  it("keeps the current home unless another is clearly faster, and leaves a dead one at once", () => {
    const r = [{ name: "r1", connected: true, rttMs: 20 }, { name: "r2", connected: true, rttMs: 17 }];
    expect(chooseHomeRelay(undefined, r)).toBe("r2");
    expect(chooseHomeRelay("r1", r)).toBe("r1"); // 3 ms faster is jitter
    expect(chooseHomeRelay("r1", [{ ...r[0], rttMs: 40 }, r[1]])).toBe("r2");
    expect(chooseHomeRelay("r1", [{ ...r[0], connected: false }, r[1]])).toBe("r2");
    expect(chooseHomeRelay("r1", [{ ...r[0], connected: false }, { ...r[1], connected: false }])).toBe("r1"); // nothing better
  });

  it("a preferred relay is home while it is connected, and only then", () => {
    const r = [{ name: "r1", connected: true, rttMs: 2 }, { name: "r2", connected: true, rttMs: 50 }];
    expect(chooseHomeRelay("r1", r, "r2")).toBe("r2");
    expect(chooseHomeRelay("r2", [r[0], { ...r[1], connected: false }], "r2")).toBe("r1");
    expect(chooseHomeRelay(undefined, [r[0]], "r9")).toBe("r1");
  });
});

describe("relay path to a peer", () => {
  it("the peer's home relay while we hold a connection there", () => {
    expect(chooseRelayFor({ homeRelay: "r2", heardVia: "r1" }, relays({ r1: true, r2: true }), "r1")).toBe("r2");
  });

  it("its home relay died: the relay its packets came in on, else ours, else any we hold", () => {
    expect(chooseRelayFor({ homeRelay: "r2", heardVia: "r3" }, relays({ r1: true, r2: false, r3: true }), "r1")).toBe("r3");
    expect(chooseRelayFor({ homeRelay: "r2" }, relays({ r1: true, r2: false, r3: true }), "r1")).toBe("r1");
    expect(chooseRelayFor({ homeRelay: "r2" }, relays({ r1: false, r2: false, r3: true }), "r1")).toBe("r3");
    expect(chooseRelayFor({ homeRelay: "r2" }, relays({ r1: false, r2: false }), "r1")).toBeUndefined();
  });

  it("skips a relay that said the peer is not there, unless every relay said so", () => {
    expect(chooseRelayFor({ homeRelay: "r2", absent: new Set(["r2"]) }, relays({ r1: true, r2: true }), "r1")).toBe("r1");
    expect(chooseRelayFor({ homeRelay: "r2", absent: new Set(["r1", "r2"]) }, relays({ r1: true, r2: true }), "r1")).toBe("r2");
    // A peer that is starting (no home relay reported yet, not connected anywhere): our home, not nothing.
    expect(chooseRelayFor({ absent: new Set(["r1", "r2"]) }, relays({ r1: true, r2: true }), "r1")).toBe("r1");
  });

  it("a peer with no home relay in the map (not reported yet) goes through ours", () => {
    expect(chooseRelayFor({}, relays({ r1: true, r2: true }), "r2")).toBe("r2");
  });
});
