// Flow specs: the accepted shapes and a clear error for each bad one.
import { describe, expect, it } from "vitest";
import { FlowSpecError, parseFlowSpec } from "../../src/policy/index.js";

describe("parseFlowSpec", () => {
  it("accepts NAME:PORT[/PROTOCOL] and NAME/icmp, defaulting to tcp (https to 443)", () => {
    expect(parseFlowSpec("db-1:5432/tcp")).toEqual({ name: "db-1", port: 5432, protocol: "tcp" });
    expect(parseFlowSpec("dashboard-1:443")).toEqual({ name: "dashboard-1", port: 443, protocol: "tcp" });
    expect(parseFlowSpec("dashboard-1:443/https")).toEqual({ name: "dashboard-1", port: 443, protocol: "https" });
    expect(parseFlowSpec("dashboard-1/https")).toEqual({ name: "dashboard-1", port: 443, protocol: "https" });
    expect(parseFlowSpec("dns-1:53/udp")).toEqual({ name: "dns-1", port: 53, protocol: "udp" });
    expect(parseFlowSpec("db-1/icmp")).toEqual({ name: "db-1", protocol: "icmp" });
    expect(parseFlowSpec(" db-1:22/TCP ")).toEqual({ name: "db-1", port: 22, protocol: "tcp" });
  });

  it("names the problem in each bad spec", () => {
    for (const [spec, why] of [
      ["", "no identity name"], [":22", "no identity name"], ["DB_1:22", "not an identity name"], ["db-1", "tcp flow needs a port"],
      ["db-1/udp", "udp flow needs a port"], ["db-1:0", "outside 1-65535"], ["db-1:65536", "outside 1-65535"], ["db-1:http", "not a number"],
      ["db-1:22/sctp", "unknown protocol"], ["db-1:22/any", `not "any"`], ["db-1:7/icmp", "icmp has no ports"], ["db-1:22:23", "not a number"],
      ["db-1:22/tcp/x", "unknown protocol"], ["x".repeat(300), "longer than"], ["db-1:-1", "not a number"], ["db-1:1e3", "not a number"],
    ]) {
      expect(() => parseFlowSpec(spec), spec).toThrow(FlowSpecError);
      expect(() => parseFlowSpec(spec), spec).toThrow(why);
    }
    expect(() => parseFlowSpec(undefined as unknown as string)).toThrow("not a string");
  });
});
