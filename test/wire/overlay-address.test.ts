import { describe, expect, it } from "vitest";
import { isOverlayAddress } from "../../src/wire/constants.js";

describe("isOverlayAddress", () => {
  it("is true exactly for 100.64.0.0/10", () => {
    for (const a of ["100.64.0.1", "100.113.76.65", "100.127.255.254"]) expect(isOverlayAddress(a), a).toBe(true);
    for (const a of ["100.63.255.255", "100.128.0.1", "198.18.4.2", "10.100.64.1", "127.0.0.1", "::1", "relay-1", ""]) expect(isOverlayAddress(a), a).toBe(false);
  });
});
