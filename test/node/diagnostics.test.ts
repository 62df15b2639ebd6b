// diagnose() from facts to named problems with their fixes, and the nearest rule to a denied flow: pure
// functions, so each rule is checked here with edge values; the NAT lab provokes the real failures
// (test/natlab/diagnostics.test.ts).
import { describe, expect, it } from "vitest";
import { diagnose, DIAG, fmtOffset, type DiagnosisFacts } from "../../src/node/diagnostics.js";
import { nearestRule, parsePolicy } from "../../src/policy/index.js";

const base = (o: Partial<DiagnosisFacts> = {}): DiagnosisFacts => ({
  now: 1_000_000, coordUrl: "https://198.18.1.2:443", coord: { connected: true }, relays: [{ name: "relay-1", host: "198.18.2.2", port: 443, connected: true }],
  natType: "endpoint-independent", stunServers: ["198.18.2.2:3478"], peers: [], denied: [], ...o,
});
const codes = (f: DiagnosisFacts) => diagnose(f).map((p) => p.code);

describe("diagnose", () => {
  it("a healthy node has no problem", () => {
    expect(diagnose(base({ peers: [{ name: "b", path: "direct", rttMs: DIAG.highLatencyMs, lossPct: DIAG.highLossPct }], clock: { offsetMs: 4_999, measuredAt: 1, via: "x" } }))).toEqual([]);
  });

  it("coordination and relays unreachable by network errors: outbound 443 blocked, naming every host:port to allow", () => {
    const [p] = diagnose(base({ coord: { connected: false, lastError: "connect ETIMEDOUT 198.18.1.2:443" }, relays: [{ name: "relay-1", host: "198.18.2.2", port: 443, connected: false }] }));
    expect(p.code).toBe("coord_unreachable");
    expect(p.summary).toMatch(/outbound TCP 443 looks blocked: /);
    expect(p.fix).toBe("allow outbound TCP to 198.18.1.2:443, 198.18.2.2:443 in the host and network firewalls (or the HTTPS proxy); then the node reconnects by itself");
    // Refused by every server alike: a rejecting firewall, or none of them runs; both are named.
    const [r] = diagnose(base({ coord: { connected: false, lastError: "connect ECONNREFUSED 198.18.1.2:443" }, relays: [{ name: "relay-1", host: "198.18.2.2", port: 443, connected: false }] }));
    expect(r.summary).toMatch(/^outbound TCP 443 looks blocked, or none of the servers runs: /);
    expect(r.fix).toMatch(/^check that the servers run .*allow outbound TCP to 198\.18\.1\.2:443, 198\.18\.2\.2:443/);
    // Relays up: only the coordination server is down.
    expect(diagnose(base({ coord: { connected: false, lastError: "read ETIMEDOUT" } }))[0].summary).toMatch(/while relays answer/);
    // Refused by the server (not the network): its reason.
    expect(diagnose(base({ coord: { connected: false, lastError: "revoked: certificate revoked" } }))[0].summary).toMatch(/refuses this node: revoked/);
    expect(diagnose(base({ coord: { connected: false, lastError: "revoked: certificate revoked" } }))[0].code).toBe("coord_refused");
  });

  it("the coordination server simply not running (ECONNREFUSED) is named first, not called a blocked network", () => {
    // No relay in the mesh (a LAN or loopback mesh): nothing else to compare with. A refusal is a server that does not
    // run, or a firewall that rejects with a reset: the server comes first, the firewall second.
    const [p] = diagnose(base({ coordUrl: "https://127.0.0.1:8443", coord: { connected: false, lastError: "connect ECONNREFUSED 127.0.0.1:8443" }, relays: [] }));
    expect(p.code).toBe("coord_unreachable");
    expect(p.summary).toMatch(/^the coordination server is not running or refusing at 127\.0\.0\.1:8443 \(connection refused/);
    expect(p.summary).not.toMatch(/blocked/);
    expect(p.summary).toMatch(/nothing listens on that port, or a firewall rejects it/);
    expect(p.fix).toMatch(/^start it, or check the port in the URL/);
    // Relays answer: the same diagnosis, said so.
    expect(diagnose(base({ coord: { connected: false, lastError: "connect ECONNREFUSED 198.18.1.2:443" } }))[0].summary).toMatch(/not running or refusing at 198\.18\.1\.2:443 .* while relays answer/);
    // A name that does not resolve, and a TLS failure, each named as such.
    expect(diagnose(base({ coordUrl: "https://coord.example:443", coord: { connected: false, lastError: "getaddrinfo ENOTFOUND coord.example" }, relays: [] }))[0].summary).toMatch(/the name coord\.example of the coordination server does not resolve/);
    expect(diagnose(base({ coord: { connected: false, lastError: "write EPROTO ... wrong version number" }, relays: [] }))[0].summary).toMatch(/^TLS with the coordination server at 198\.18\.1\.2:443 failed/);
  });

  it("UDP blocked, high latency and high loss, each with its fix", () => {
    const ps = diagnose(base({ natType: "udp-blocked", peers: [{ name: "b", path: "relay:relay-1", rttMs: 420 }, { name: "c", path: "direct", rttMs: 20, lossPct: 12.5 }] }));
    expect(ps.map((p) => p.code)).toEqual(["udp_blocked", "high_latency", "high_loss"]);
    expect(ps[0].summary).toMatch(/every peer goes through a relay .*\(1 now\)/);
    expect(ps[1].fix).toMatch(/relay relay-1: allow UDP/);
    expect(ps[2].summary).toBe("packet loss to c: 12.5% on direct (threshold 5%)");
  });

  it("clock skew: a warning above 5 s, an error above the 30 s certificate allowance, with the measured offset; it explains TLS failures", () => {
    expect(diagnose(base({ clock: { offsetMs: 6_000, measuredAt: 0, via: "x" } }))[0]).toMatchObject({ code: "clock_skew", severity: "warning" });
    const ps = diagnose(base({ clock: { offsetMs: -600_400, measuredAt: 0, via: "GET /v1/health" }, coord: { connected: false, lastError: "certificate refused (not_yet_valid)" }, certificate: { notBefore: 0, notAfter: 0, problem: "not_yet_valid" } }));
    expect(ps.map((p) => p.code)).toEqual(["clock_skew"]);
    expect(ps[0].summary).toMatch(/10\.0 min \(600\.4 s\) behind the coordination server.s .*; certificates look not yet valid by this clock$/);
    expect(ps[0].detail).toMatchObject({ offsetMs: -600_400 });
    expect(fmtOffset(90_000)).toBe("90.0 s ahead of");
  });

  it("denied flows within the window, with the nearest rule; older ones are forgotten", () => {
    const nearest = { rule: { index: 2, line: 4, text: "allow: {source: a, target: b, ports: [22]}" }, differences: ["port: the rule allows 22, the flow is to 5432"] };
    const d = { flow: "a.t -> b.t:5432/tcp", from: "a", to: "b", port: 5432, protocol: "tcp", reason: "default deny", side: "sender", count: 3, nearest };
    const ps = diagnose(base({ denied: [{ ...d, at: 1_000_000 - 1_000 }, { ...d, flow: "old", at: 1_000_000 - DIAG.deniedWindowMs - 1 }] }));
    expect(ps).toHaveLength(1);
    expect(ps[0].summary).toBe("flow a.t -> b.t:5432/tcp denied by policy (default deny, 3x, sender side); nearest rule 2 (line 4) allow: {source: a, target: b, ports: [22]}: port: the rule allows 22, the flow is to 5432");
    expect(ps[0].fix).toBe("add or widen a rule allowing a -> b on tcp 5432, then: ember policy check --from a --to b:5432/tcp");
  });
});

describe("nearestRule", () => {
  const r = parsePolicy(`version: 1
rules:
  - allow: {source: "@eng", target: "@db", protocol: tcp, ports: [5433]}
  - allow: {source: "@ops", target: "@db", protocol: tcp, ports: [5432]}
  - allow: {source: "@eng", target: "@web", protocol: https, ports: [443]}
`);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const eng = { name: "laptop-1", tenant: "acme", groups: ["eng"] };
  const db = { name: "db-1", tenant: "acme", groups: ["db"] };

  it("prefers the rule for the right target, then the fewest differences, and says what differs", () => {
    const n = nearestRule(r.policy, eng, db, 5432, "tcp")!;
    expect(n.rule.index).toBe(1); // source and target match; only the port differs (rule 2: the source)
    expect(n.differences).toEqual(["port: the rule allows 5433, the flow is to 5432"]);
    const cross = nearestRule(r.policy, { ...eng, tenant: "globex" }, db, 5433, "tcp")!;
    expect(cross.differences).toEqual([expect.stringMatching(/^tenants: the flow crosses from globex to acme/)]);
    expect(nearestRule({ rules: [] }, eng, db, 1, "tcp")).toBeUndefined();
    // A flow the policy allows has no "nearest miss" among the rules that allow it.
    expect(nearestRule(r.policy, eng, db, 5433, "tcp")?.rule.index).not.toBe(1);
  });
});
