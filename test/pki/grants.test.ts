// The grants extension codec: exact DER, and a strict decoder.
import { describe, expect, it } from "vitest";
import { decodeGrants, encodeGrants } from "../../src/pki/grants.js";

describe("grants DER", () => {
  it("encodes a SEQUENCE OF UTF8String in a fixed order and round-trips", () => {
    const der = encodeGrants({ tenant: "acme", groups: ["eng"], roles: ["admin"] });
    const expected = Buffer.concat([
      Buffer.from([0x30, 36]),
      Buffer.from([0x0c, 11]), Buffer.from("tenant:acme"),
      Buffer.from([0x0c, 9]), Buffer.from("group:eng"),
      Buffer.from([0x0c, 10]), Buffer.from("role:admin"),
    ]);
    expect(Buffer.from(der).equals(expected)).toBe(true);
    expect(decodeGrants(der)).toEqual({ tenant: "acme", groups: ["eng"], roles: ["admin"] });
  });
  it("uses long-form lengths above 127 bytes", () => {
    const groups = Array.from({ length: 20 }, (_, i) => `group-number-${i}`);
    const der = encodeGrants({ tenant: "acme", groups, roles: [] });
    expect(der[1]).toBe(0x82);
    expect(decodeGrants(der).groups).toEqual(groups);
  });
  it("rejects non-canonical and hostile encodings", () => {
    const bad = [
      [0x31, 0x00], // SET, not SEQUENCE
      [0x30, 0x81, 0x05, 0x0c, 0x03, 0x61, 0x3a, 0x62], // non-minimal length
      [0x30, 0x05, 0x04, 0x03, 0x61, 0x62, 0x63], // OCTET STRING member
      [0x30, 0x0a, 0x0c], // truncated
      [0x30, 0x00, 0x00], // trailing
      [0x30, 0x00], // no tenant
    ];
    for (const b of bad) expect(() => decodeGrants(Uint8Array.from(b))).toThrow();
    const twoTenants = encodeGrants({ tenant: "a", groups: [], roles: [] });
    const dup = Uint8Array.from([0x30, (twoTenants.length - 2) * 2, ...twoTenants.subarray(2), ...twoTenants.subarray(2)]);
    expect(() => decodeGrants(dup)).toThrow(/more than one tenant/);
    expect(() => encodeGrants({ tenant: "ACME", groups: [], roles: [] })).toThrow(/invalid tenant/);
  });
});
