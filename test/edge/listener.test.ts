// The public edge's listener on loopback, with real TLS and curl as the outside client and a dialer that stands
// in for the mesh (each "service" is a local TCP server answering with its own marker): SNI routing, a name
// that is not published, client certificates, bearer tokens, unpublishing under a live connection, and the
// per-source limits. The whole path over a real mesh and NATs is test/natlab/edge.test.ts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { connect, createServer, type Server } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { EdgeListener, type EdgeDialer } from "../../src/edge/listener.js";
import { EDGE_LIMIT_DEFAULTS } from "../../src/edge/limits.js";
import { JwtKey } from "../../src/crypto/jwt.js";
import { EDGE_TOKEN_ISSUER, EDGE_TOKEN_TYPE, type MapPublication } from "../../src/wire/coord/edge.js";
import { DialError } from "../../src/access/index.js";
import { tempDir } from "../helpers/pki.js";
import { makeEdgePki } from "./pki.js";

function curl(args: string[], timeoutS = 10): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn("curl", ["-sS", "--max-time", String(timeoutS), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    c.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("public edge listener", () => {
  let tmp: ReturnType<typeof tempDir>;
  let edge: EdgeListener;
  let port = 0;
  const services = new Map<string, Server>();
  const servicePorts = new Map<string, number>();
  const key = JwtKey.generate();
  const tokenKeyPem = key.publicKey.export({ type: "spki", format: "pem" }) as string;
  const dials: string[] = [];
  let pubs: MapPublication[] = [];

  const dialer: EdgeDialer = {
    async dial(target, opts) {
      dials.push(`${target.service}.${target.peer}<-${opts.external.source}`);
      const port = servicePorts.get(target.service!);
      if (!port) throw new DialError("refused", `no service ${target.service}`);
      const s = connect(port, "127.0.0.1");
      await new Promise((r) => s.once("connect", r));
      return s;
    },
  };

  const resolve = (host: string) => ["--resolve", `${host}:${port}:127.0.0.1`, "--cacert", join(tmp.dir, "pub-ca.crt")];
  const url = (host: string) => `https://${host}:${port}/`;

  beforeAll(async () => {
    tmp = tempDir("ember-edge-listener-");
    makeEdgePki(tmp.dir);
    for (const name of ["status-page", "secret-admin", "partner-api", "billing"]) {
      // An HTTP server that answers every request with its marker (and the Authorization it saw, if any).
      const srv = createServer((s) => {
        s.on("error", () => undefined);
        s.once("data", (d: Buffer) => {
          const sawAuth = /\r\nauthorization:/i.test(d.toString("latin1"));
          const body = `marker:${name}${sawAuth ? " (saw authorization)" : ""}\n`;
          s.end(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
        });
      });
      await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
      services.set(name, srv);
      servicePorts.set(name, (srv.address() as { port: number }).port);
    }
    edge = new EdgeListener({
      dialer, log: pino({ level: "silent" }), tenant: "acme",
      certs: [{ certPem: readFileSync(join(tmp.dir, "edge.crt"), "utf8"), keyPem: readFileSync(join(tmp.dir, "edge.key"), "utf8") }],
      limits: { ...EDGE_LIMIT_DEFAULTS, ratePerSource: 1_000, burstPerSource: 1_000 },
    });
    port = (await edge.listen("127.0.0.1", 0)).port;
    pubs = [
      { hostname: "status.example.test", node: "web-1", service: "status-page", port: 443, protocol: "https", clientAuth: "none" },
      { hostname: "partner.example.test", node: "web-1", service: "partner-api", port: 8443, protocol: "https", clientAuth: "cert", clientCaPem: readFileSync(join(tmp.dir, "client-ca.crt"), "utf8") },
      { hostname: "billing.example.test", node: "web-2", service: "billing", port: 443, protocol: "https", clientAuth: "token" },
    ];
    edge.setPublications(pubs, tokenKeyPem);
  }, 60_000);

  afterAll(async () => {
    await edge?.close();
    for (const s of services.values()) s.close();
    tmp?.cleanup();
  });

  it("routes by SNI to the published service and nothing else", async () => {
    const r = await curl([...resolve("status.example.test"), url("status.example.test")]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("marker:status-page\n");
    expect(dials.at(-1)).toMatch(/^status-page\.web-1<-127\.0\.0\.1:\d+$/);
  });

  it("gives a hostname that is not published no handshake and no bytes", async () => {
    const before = dials.length;
    const r = await curl([...resolve("admin.example.test"), url("admin.example.test")]);
    expect(r.code).not.toBe(0);
    console.log(`unpublished hostname: curl says ${r.stderr.trim()}`);
    expect(r.stdout).not.toMatch(/marker:/);
    expect(dials.length).toBe(before);
    // No SNI at all (an IP address): the handshake may finish, but the connection closes without a byte.
    const bytes = await new Promise<string>((res) => {
      const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false });
      let got = "";
      s.on("data", (d) => (got += d));
      s.on("secureConnect", () => s.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      s.on("error", () => undefined);
      s.on("close", () => res(got));
    });
    expect(bytes).toBe("");
    expect(dials.length).toBe(before);
  });

  it("requires a client certificate from the publication's CA where the service asks for one", async () => {
    const none = await curl([...resolve("partner.example.test"), url("partner.example.test")]);
    expect(none.code).not.toBe(0);
    expect(none.stdout).not.toMatch(/marker:/);
    expect(none.stderr).toMatch(/alert|certificate|SSL/i);
    console.log(`no client certificate: curl says ${none.stderr.trim()}`);
    const stranger = await curl([...resolve("partner.example.test"), "--cert", join(tmp.dir, "stranger.crt"), "--key", join(tmp.dir, "stranger.key"), url("partner.example.test")]);
    expect(stranger.stdout).not.toMatch(/marker:/);
    const ok = await curl([...resolve("partner.example.test"), "--cert", join(tmp.dir, "client.crt"), "--key", join(tmp.dir, "client.key"), url("partner.example.test")]);
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toBe("marker:partner-api\n");
    // A service without client auth never asks for a certificate (a browser is not prompted).
    const plain = await curl([...resolve("status.example.test"), "--cert", join(tmp.dir, "client.crt"), "--key", join(tmp.dir, "client.key"), url("status.example.test")]);
    expect(plain.stdout).toBe("marker:status-page\n");
  });

  it("answers 401 without a valid bearer token, and passes the request on (without the token) with one", async () => {
    const none = await curl([...resolve("billing.example.test"), "-i", url("billing.example.test")]);
    expect(none.stdout).toMatch(/^HTTP\/1.1 401 Unauthorized/);
    expect(none.stdout).not.toMatch(/marker:/);
    const now = Math.floor(Date.now() / 1000);
    const token = (aud: string, exp = now + 60) => key.sign(EDGE_TOKEN_TYPE, { iss: EDGE_TOKEN_ISSUER, aud, sub: "billing.web-2", iat: now, exp, jti: "t1" });
    const other = await curl([...resolve("billing.example.test"), "-i", "-H", `Authorization: Bearer ${token("status.example.test")}`, url("billing.example.test")]);
    expect(other.stdout).toMatch(/^HTTP\/1.1 401/);
    const forged = JwtKey.generate().sign(EDGE_TOKEN_TYPE, { iss: EDGE_TOKEN_ISSUER, aud: "billing.example.test", sub: "x", iat: now, exp: now + 60, jti: "t2" });
    expect((await curl([...resolve("billing.example.test"), "-i", "-H", `Authorization: Bearer ${forged}`, url("billing.example.test")])).stdout).toMatch(/^HTTP\/1.1 401/);
    const expired = await curl([...resolve("billing.example.test"), "-i", "-H", `Authorization: Bearer ${token("billing.example.test", now - 60)}`, url("billing.example.test")]);
    expect(expired.stdout).toMatch(/^HTTP\/1.1 401/);
    const ok = await curl([...resolve("billing.example.test"), "-H", `Authorization: Bearer ${token("billing.example.test")}`, url("billing.example.test")]);
    expect(ok.stdout).toBe("marker:billing\n");
  });

  it("closes a live connection within 1 s of the publication going, and refuses the hostname after", async () => {
    const s = tlsConnect({ host: "127.0.0.1", port, servername: "status.example.test", ca: readFileSync(join(tmp.dir, "pub-ca.crt")) });
    s.on("error", () => undefined);
    await new Promise((r) => s.once("secureConnect", r));
    // Wait until the edge spliced it to the service (the service answers only after a request, so nothing yet).
    for (let i = 0; i < 50 && edge.stats().accepted < 6; i++) await new Promise((r) => setTimeout(r, 20));
    const closed = new Promise<number>((r) => s.once("close", () => r(Date.now())));
    const t0 = Date.now();
    edge.setPublications(pubs.filter((p) => p.hostname !== "status.example.test"), tokenKeyPem);
    const ms = (await closed) - t0;
    expect(ms).toBeLessThan(1_000);
    console.log(`live connection closed ${ms} ms after unpublishing`);
    const again = await curl([...resolve("status.example.test"), url("status.example.test")]);
    expect(again.code).not.toBe(0);
    expect(again.stdout).not.toMatch(/marker:/);
    edge.setPublications(pubs, tokenKeyPem);
  });

  it("refuses a source past its rate before any TLS work, and counts it", async () => {
    const limited = new EdgeListener({
      dialer, log: pino({ level: "silent" }), tenant: "acme",
      certs: [{ certPem: readFileSync(join(tmp.dir, "edge.crt"), "utf8"), keyPem: readFileSync(join(tmp.dir, "edge.key"), "utf8") }],
      limits: { ...EDGE_LIMIT_DEFAULTS, ratePerSource: 5, burstPerSource: 10 },
    });
    const p = (await limited.listen("127.0.0.1", 0)).port;
    limited.setPublications(pubs, tokenKeyPem);
    const attempts = 200;
    await Promise.all(Array.from({ length: attempts }, () => new Promise<void>((res) => {
      const s = connect(p, "127.0.0.1");
      s.on("error", () => res());
      s.on("close", () => res());
      setTimeout(() => s.destroy(), 300);
    })));
    const st = limited.stats();
    console.log(`rate limit: ${attempts} attempts, ${st.refusedBy.rate} refused by rate, ${st.admitted} admitted`);
    expect(st.admitted).toBeLessThanOrEqual(12);
    expect(st.refusedBy.rate).toBeGreaterThanOrEqual(attempts - 12);
    await limited.close();
  });
});
