// Name resolution: every accepted form, case, trailing dot, .ember, tenants, and a clear reason for each failure.
import { describe, expect, it } from "vitest";
import { describeResolution, resolveName } from "../../src/access/names.js";
import { DIR } from "./fake-mesh.js";

const ok = (host: string, port: number | undefined, protocol: "tcp" | "udp" = "tcp") => {
  const r = resolveName(host, port, protocol, DIR);
  if (!r.ok) throw new Error(`${host}: ${r.reason}`);
  return r;
};
const no = (host: string, port: number | undefined, protocol: "tcp" | "udp" = "tcp") => {
  const r = resolveName(host, port, protocol, DIR);
  if (r.ok) throw new Error(`${host} resolved to ${JSON.stringify(r.target)}`);
  return r;
};

describe("resolveName", () => {
  it("NAME: a peer of this node's tenant first, with the client's port", () => {
    const r = ok("node-a", 8080);
    expect(r.target).toEqual({ peer: "node-a", tenant: "acme", port: 8080, protocol: "tcp" });
    expect(r.why).toContain("this node's tenant acme");
    expect(ok("db-1", 5432, "udp").target).toEqual({ peer: "db-1", tenant: "acme", port: 5432, protocol: "udp" });
  });

  it("NAME: a unique match across tenants, and the ambiguous case lists the tenants", () => {
    const r = ok("only-g", 22);
    expect(r.target).toEqual({ peer: "only-g", tenant: "globex", port: 22, protocol: "tcp" });
    expect(r.why).toContain("the only peer named only-g (tenant globex)");
    const a = no("shared-1", 80);
    expect(a.code).toBe("unknown_name");
    expect(a.reason).toContain("ambiguous");
    expect(a.reason).toContain("globex, initech");
    expect(a.reason).toContain("shared-1.globex or shared-1.initech");
    expect(ok("shared-1.initech", 80).target.tenant).toBe("initech");
  });

  it("NAME.TENANT picks the tenant", () => {
    expect(ok("node-a.globex", 1).target).toEqual({ peer: "node-a", tenant: "globex", port: 1, protocol: "tcp" });
    expect(ok("node-a.acme", 2).target.tenant).toBe("acme");
    expect(no("db-1.globex", 1).reason).toBe("no peer db-1 in tenant globex; db-1 is in tenant acme");
    expect(no("nobody.globex", 1).reason).toBe("no peer named nobody in tenant globex");
  });

  it("SERVICE.NAME and SERVICE.NAME.TENANT take port and protocol from the service, which wins over the client's port", () => {
    const r = ok("web.node-a", 80);
    expect(r.target).toEqual({ peer: "node-a", tenant: "acme", port: 8080, protocol: "tcp", service: "web" });
    expect(r.why).toContain("the client asked for port 80, the service's port 8080 wins");
    expect(ok("web.node-a", 8080).why).not.toContain("wins");
    expect(ok("web.node-a", undefined).target.port).toBe(8080);
    expect(ok("web.node-a.globex", 80).target).toEqual({ peer: "node-a", tenant: "globex", port: 9090, protocol: "tcp", service: "web" });
    expect(ok("echo.node-a", 9, "udp").target).toEqual({ peer: "node-a", tenant: "acme", port: 7, protocol: "udp", service: "echo" });
    const https = ok("api.node-a", 443);
    expect(https.target.protocol).toBe("tcp");
    expect(https.why).toContain("https, carried as tcp");
    expect(ok("postgres.db-1.acme", 0).target.port).toBe(5432);
  });

  it("is case-insensitive and ignores a trailing dot and the .ember pseudo-TLD", () => {
    const want = { peer: "node-a", tenant: "acme", port: 8080, protocol: "tcp", service: "web" };
    for (const h of ["WEB.Node-A", "web.node-a.", "web.node-a.ember", "web.node-a.EMBER.", "Web.Node-A.Acme.Ember"]) {
      expect(ok(h, 80).target, h).toEqual(want);
    }
    expect(ok("db-1.ember", 5432).target.peer).toBe("db-1");
  });

  it("resolves NAME.TENANT over SERVICE.NAME when both exist, and says so", () => {
    const r = ok("web.node-b", 80);
    expect(r.target).toEqual({ peer: "web", tenant: "node-b", port: 80, protocol: "tcp" });
    expect(r.why).toContain("NAME.TENANT wins");
    expect(ok("web.node-b.acme", 1).target).toEqual({ peer: "node-b", tenant: "acme", port: 80, protocol: "tcp", service: "web" });
  });

  it("names the problem in each failure", () => {
    const cases: [string, number | undefined, "tcp" | "udp", string, string][] = [
      ["nobody", 80, "tcp", "unknown_name", `unknown name "nobody": no such peer`],
      ["laptop-1", 80, "tcp", "unknown_name", "this node itself"],
      ["ftp.node-a", 21, "tcp", "unknown_name", `node-a (tenant acme) has no service "ftp"; its services: web (8080/tcp), echo (7/udp), api (443/https)`],
      ["x.lonely", 1, "tcp", "unknown_name", "it announces no services"],
      ["x.nowhere", 1, "tcp", "unknown_name", "no tenant nowhere and no peer nowhere"],
      ["a.b.c.d", 1, "tcp", "bad_request", "4 labels; expected NAME, NAME.TENANT, SERVICE.NAME or SERVICE.NAME.TENANT"],
      ["db_1", 1, "tcp", "bad_request", `"db_1" is not a valid label`],
      ["-db", 1, "tcp", "bad_request", "not a valid label"],
      ["db..x", 1, "tcp", "bad_request", "empty label"],
      ["", 1, "tcp", "bad_request", "empty"],
      [".ember", 1, "tcp", "bad_request", "empty label"],
      ["x".repeat(300), 1, "tcp", "bad_request", "longer than 253"],
      ["127.0.0.1", 80, "tcp", "bad_request", "an IP address"],
      ["[::1]", 80, "tcp", "bad_request", "an IP address"],
      ["db-1", undefined, "tcp", "bad_request", "db-1 is a peer, not a service: give a port or name one of its services: postgres.db-1"],
      ["db-1", 0, "tcp", "bad_request", "give a port"],
      ["db-1", 70000, "tcp", "bad_request", "outside 1-65535"],
      ["web.node-a", 80, "udp", "bad_request", "service web of node-a is tcp, not udp"],
      ["node-a.mars", 80, "tcp", "unknown_name", "no tenant mars and no peer mars in this node's peer map; peer node-a is in tenant acme, globex"],
      ["db\u0000", 1, "tcp", "bad_request", `"db?" is not a valid label`],
    ];
    for (const [host, port, proto, code, reason] of cases) {
      const r = no(host, port, proto);
      expect(r.code, host).toBe(code);
      expect(r.reason, host).toContain(reason);
    }
    expect(resolveName(42 as unknown as string, 1, "tcp", DIR)).toMatchObject({ ok: false, reason: "bad name: not a string" });
  });
});

describe("describeResolution (ember resolve)", () => {
  it("shows a peer without a port, with its services", () => {
    const d = describeResolution("db-1", DIR);
    expect(d.ok).toBe(true);
    expect(d.json).toEqual({
      query: "db-1", ok: true, peer: "db-1", tenant: "acme", why: "peer db-1 in this node's tenant acme",
      services: [{ name: "postgres", port: 5432, protocol: "tcp" }],
    });
    expect(d.text).toBe("db-1 -> db-1 (tenant acme), any port\n  why: peer db-1 in this node's tenant acme\n  services of db-1: postgres (5432/tcp)");
  });

  it("shows the exact target for a service or a port", () => {
    const d = describeResolution("API.node-a.ember", DIR);
    expect(d.json).toMatchObject({ ok: true, peer: "node-a", tenant: "acme", service: "api", port: 443, protocol: "tcp" });
    expect(d.text.split("\n")[0]).toBe("API.node-a.ember -> node-a (tenant acme) port 443/tcp, service api");
    expect(describeResolution("db-1", DIR, { port: 5432, protocol: "udp" }).json).toMatchObject({ port: 5432, protocol: "udp" });
  });

  it("reports a failure with its code and reason", () => {
    const d = describeResolution("shared-1", DIR);
    expect(d.ok).toBe(false);
    expect(d.json).toMatchObject({ query: "shared-1", ok: false, code: "unknown_name" });
    expect(d.text).toMatch(/^shared-1: cannot resolve \(unknown_name\): ambiguous name/);
    expect(JSON.parse(JSON.stringify(d.json))).toEqual(d.json);
  });
});
