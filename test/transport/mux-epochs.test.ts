// The epoch rules on their own (mux-epochs.ts): what a packet's epochs say, and what a restart retires.
import { describe, expect, it } from "vitest";
import { RETIRED_EPOCHS } from "../../src/transport/constants.js";
import { Epochs } from "../../src/transport/mux-epochs.js";

describe("mux epochs", () => {
  it("accepts only a non-zero u32 of ours", () => {
    for (const bad of [0, -1, 1.5, 2 ** 32]) expect(() => new Epochs(bad)).toThrow(RangeError);
    expect(new Epochs(2 ** 32 - 1).mine).toBe(2 ** 32 - 1);
  });

  it("tells stale, first contact, current and restart apart", () => {
    const e = new Epochs(7);
    expect(e.classify(8, 3)).toBe("stale");
    expect(e.classify(0, 3)).toBe("first_contact");
    e.adoptPeer(3);
    expect(e.classify(7, 3)).toBe("current");
    expect(e.classify(0, 3)).toBe("current");
    expect(e.classify(7, 4)).toBe("peer_restarted");
    e.adoptPeer(4);
    // A late packet from before the restart is not another restart.
    expect(e.classify(7, 3)).toBe("retired_peer");
    expect(e.peer).toBe(4);
  });

  it("remembers the last RETIRED_EPOCHS of the peer's epochs, not more", () => {
    const e = new Epochs(7);
    for (let p = 1; p <= RETIRED_EPOCHS + 2; p++) e.adoptPeer(p);
    // Epochs 1 .. RETIRED_EPOCHS + 1 were retired; only the newest RETIRED_EPOCHS of them are remembered.
    expect(e.classify(7, 1)).toBe("peer_restarted");
    for (let p = 2; p <= RETIRED_EPOCHS + 1; p++) expect(e.classify(7, p)).toBe("retired_peer");
  });

  it("after giving up on the peer, has a new epoch of ours and hears the peer as new, retired epochs still dropped", () => {
    const e = new Epochs(7);
    e.adoptPeer(3);
    e.adoptPeer(4);
    e.renew();
    expect(e.mine).not.toBe(0);
    expect(e.peer).toBe(0);
    expect(e.classify(7, 4)).toBe(e.mine === 7 ? "first_contact" : "stale");
    expect(e.classify(0, 4)).toBe("first_contact");
    expect(e.classify(0, 3)).toBe("retired_peer");
  });
});
