// Interop with tools nobody here wrote: openssl accepts our chain, node:tls carries an mTLS session
// between two issued leaves and refuses clients without a valid certificate.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect, createServer, type Server, type TLSSocket } from "node:tls";
import type { AddressInfo } from "node:net";
import { toPem, Verifier, tlsContextOptions, verifyTlsPeer, withIntermediates, type CaMaterial } from "../../src/pki/index.js";
import { makeCa, makeLeaf, tempDir, type TestLeaf } from "../helpers/pki.js";

let tmp: ReturnType<typeof tempDir>;
let ca: CaMaterial;
let other: CaMaterial;
let server: TestLeaf;

beforeAll(async () => {
  tmp = tempDir();
  ca = await makeCa(tmp.dir);
  other = await makeCa(tmp.dir);
  server = await makeLeaf(ca, "coord");
});
afterAll(() => tmp.cleanup());

describe("openssl", () => {
  it("verify accepts an issued leaf against root + intermediate", async () => {
    const leaf = await makeLeaf(ca, "web-1");
    const f = (n: string, pem: string) => { const p = join(tmp.dir, n); writeFileSync(p, pem); return p; };
    const out = execFileSync("openssl", ["verify", "-CAfile", f("root.pem", toPem(ca.rootDer, "CERTIFICATE")),
      "-untrusted", f("int.pem", toPem(ca.intermediateDer, "CERTIFICATE")), f("leaf.pem", leaf.pem)]).toString();
    expect(out).toMatch(/leaf\.pem: OK/);
    // and refuses a leaf of another CA (non-zero exit)
    const foreign = await makeLeaf(other, "web-2");
    expect(() => execFileSync("openssl", ["verify", "-CAfile", join(tmp.dir, "root.pem"), "-untrusted", join(tmp.dir, "int.pem"),
      f("foreign.pem", foreign.pem)], { stdio: "pipe" })).toThrow();
  });

  it("x509 -text shows the URI SAN, the grants extension and the usages", async () => {
    const leaf = await makeLeaf(ca, "web-1", { groups: ["edge-dashboard"] });
    const text = execFileSync("openssl", ["x509", "-noout", "-text"], { input: leaf.pem }).toString();
    expect(text).toContain("URI:spiffe://acme.internal/acme/web-1");
    expect(text).toContain("1.3.6.1.4.1.59999.1.1");
    expect(text).toContain("group:edge-dashboard");
    expect(text).toMatch(/TLS Web Server Authentication, TLS Web Client Authentication/);
    expect(text).toMatch(/CA:FALSE/);
    expect(text).toMatch(/Signature Algorithm: ED25519/);
  });
});

describe("node:tls mTLS between issued leaves", () => {
  let tls: Server;
  let port = 0;
  const verdicts: string[] = [];

  beforeAll(async () => {
    const verifier = new Verifier({ bundlePem: ca.bundlePem });
    tls = createServer({ ...tlsContextOptions({ certChainPem: withIntermediates(server.pem, ca.bundlePem), keyPem: server.keyPem, bundlePem: ca.bundlePem }) }, (s) => {
      const r = verifyTlsPeer(s, verifier);
      verdicts.push(r.ok ? `ok:${r.identity.name}` : r.reason);
      if (r.ok) s.end(`hello ${r.identity.name}\n`);
      else s.destroy();
    });
    await new Promise<void>((res) => tls.listen(0, "127.0.0.1", res));
    port = (tls.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((res) => tls.close(() => res())));

  function dial(client?: TestLeaf, caForClient = ca): Promise<{ reply: string; serverOk: boolean; protocol: string | null }> {
    const clientVerifier = new Verifier({ bundlePem: ca.bundlePem });
    return new Promise((resolve) => {
      const s: TLSSocket = connect({
        host: "127.0.0.1", port, servername: "coord", minVersion: "TLSv1.3", rejectUnauthorized: false, ca: ca.bundlePem,
        ...(client ? { cert: withIntermediates(client.pem, caForClient.bundlePem), key: client.keyPem } : {}),
      });
      let reply = "";
      let serverOk = false;
      let protocol: string | null = null;
      s.on("secureConnect", () => {
        protocol = s.getProtocol();
        const r = verifyTlsPeer(s, clientVerifier);
        serverOk = r.ok && r.identity.name === "coord";
      });
      s.on("data", (d) => (reply += d));
      s.on("error", () => undefined);
      s.on("close", () => resolve({ reply, serverOk, protocol }));
    });
  }

  it("two issued leaves connect over TLS 1.3 and each verifies the other", async () => {
    const r = await dial(await makeLeaf(ca, "node-a"));
    expect(r.protocol).toBe("TLSv1.3");
    expect(r.serverOk).toBe(true);
    expect(r.reply).toBe("hello node-a\n");
  });

  it("refuses a client with no certificate, an expired one, or one from another CA", async () => {
    verdicts.length = 0;
    expect((await dial()).reply).toBe("");
    expect((await dial(await makeLeaf(ca, "late", { ttlMs: 3_600_000, now: new Date(Date.now() - 7_200_000) }))).reply).toBe("");
    expect((await dial(await makeLeaf(other, "spy"), other)).reply).toBe("");
    expect(verdicts).toEqual(["malformed", "expired", "unknown_ca"]);
  });
});
