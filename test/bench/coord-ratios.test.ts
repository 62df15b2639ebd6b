// The judge of bench:coord's figures against the floor (issue 30): ratios, targets, met or not.
import { describe, expect, it } from "vitest";
import { COORD_TARGETS, coordRatios, formatRatios } from "../../bench/coord-ratios.js";

const floor = { enrollCpuMs: 0.67, streamCpuMs: 1.28, kibPerConnection: 75.7 };

describe("coordRatios", () => {
  it("divides each figure by its floor and judges it against its target", () => {
    const rows = coordRatios({ serverCpuMsPerEnroll: 1.48, serverCpuMsPerStream: 2.5, kibPerNode: 104.8 }, floor);
    expect(rows.map((r) => r.what)).toEqual([
      "server CPU per enrollment / floor", "server CPU per map stream / floor", "server memory per node / floor",
    ]);
    expect(rows[0].ratio).toBeCloseTo(2.209, 3);
    expect(rows[0].met).toBe(false);
    expect(rows[1].ratio).toBeCloseTo(1.953, 3);
    expect(rows[1].met).toBe(true);
    expect(rows[2].ratio).toBeCloseTo(1.384, 3);
    expect(rows[2].target).toBe(COORD_TARGETS.memory);
    expect(rows[2].met).toBe(false);
  });

  it("meets a target it equals, and adds the foreign-enrollment row only for replicas", () => {
    const rows = coordRatios({ serverCpuMsPerEnroll: 1.34, serverCpuMsPerStream: 1, kibPerNode: 1, foreignShare: 0.3 }, floor);
    expect(rows[0].met).toBe(true); // exactly 2x
    expect(rows).toHaveLength(4);
    expect(rows[3]).toMatchObject({ what: "foreign enrollment / own (CPU)", target: 0.25, met: false });
  });

  it("prints one aligned line per ratio", () => {
    const lines = formatRatios(coordRatios({ serverCpuMsPerEnroll: 1, serverCpuMsPerStream: 1, kibPerNode: 70 }, floor));
    expect(lines[2]).toMatch(/^ {2}server memory per node \/ floor {5}0\.92x {2}target <= 1\.25x {2}met$/);
    expect(new Set(lines.map((l) => l.indexOf("x  target"))).size).toBe(1);
  });
});
