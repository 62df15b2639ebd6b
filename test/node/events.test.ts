// The node's typed event bus (src/node/events.ts): listeners in order, unsubscribe, a throwing listener reported
// and the others still called.
import { describe, expect, it } from "vitest";
import { NodeEvents } from "../../src/node/events.js";

describe("NodeEvents", () => {
  it("delivers each event to its listeners in order, and stops after unsubscribe", () => {
    const bus = new NodeEvents();
    const seen: string[] = [];
    const off = bus.on("relay_lost", (e) => seen.push(`a:${e.relay}:${e.why}`));
    bus.on("relay_lost", (e) => seen.push(`b:${e.relay}`));
    bus.on("relay_connected", (e) => seen.push(`c:${e.relay}`));
    bus.emit("relay_lost", { relay: "relay-1", why: "closed" });
    off();
    bus.emit("relay_lost", { relay: "relay-2", why: "reset" });
    expect(seen).toEqual(["a:relay-1:closed", "b:relay-1", "b:relay-2"]);
  });

  it("a listener that throws is reported with the event's name; the next listener still runs", () => {
    const errors: string[] = [];
    const bus = new NodeEvents((event, err) => errors.push(`${event}: ${err.message}`));
    let after = 0;
    bus.on("rules", () => { throw new Error("boom"); });
    bus.on("rules", () => { after++; });
    bus.emit("rules", {});
    expect(errors).toEqual(["rules: boom"]);
    expect(after).toBe(1);
  });
});
