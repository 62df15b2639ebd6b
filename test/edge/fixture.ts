// A public edge on loopback for the fairness and fuzz tests: the real EdgeListener with its public certificate,
// two publications (one open, one behind bearer tokens) and a dialer that stands in for the mesh, each service
// an HTTP server answering every request with its marker.
import { connect, createServer, type Server } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { EdgeListener, type EdgeDialer } from "../../src/edge/listener.js";
import { EDGE_LIMIT_DEFAULTS, type EdgeLimits } from "../../src/edge/limits.js";
import { JwtKey } from "../../src/coord/jwt.js";
import { EDGE_TOKEN_ISSUER, EDGE_TOKEN_TYPE } from "../../src/coord/edge-protocol.js";
import { DialError } from "../../src/access/index.js";
import { tempDir } from "../helpers/pki.js";
import { makeEdgePki } from "./pki.js";

export const OPEN_HOST = "status.example.test";
export const TOKEN_HOST = "billing.example.test";
/** What request() answers when the edge neither answered nor closed within timeoutMs. */
export const TIMED_OUT = "(timed out)";

export interface EdgeFixture {
  edge: EdgeListener;
  port: number;
  /** A bearer token for TOKEN_HOST, signed by the mesh's token key. */
  token: string;
  /** One request over TLS with SNI `host` from `localAddress`: the raw answer ("" when closed without one, TIMED_OUT when we gave up). */
  request(host: string, head: string, o?: { localAddress?: string; timeoutMs?: number }): Promise<string>;
  close(): Promise<void>;
}

export async function startEdge(limits: Partial<EdgeLimits> = {}): Promise<EdgeFixture> {
  const tmp = tempDir("ember-edge-fixture-");
  makeEdgePki(tmp.dir);
  const services: Server[] = [];
  const ports = new Map<string, number>();
  for (const name of ["status-page", "billing"]) {
    const srv = createServer((s) => {
      s.on("error", () => undefined);
      s.once("data", () => {
        const body = `marker:${name}\n`;
        s.end(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      });
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    services.push(srv);
    ports.set(name, (srv.address() as { port: number }).port);
  }
  const dialer: EdgeDialer = {
    async dial(target) {
      const port = ports.get(target.service!);
      if (!port) throw new DialError("refused", `no service ${target.service}`);
      const s = connect(port, "127.0.0.1");
      await new Promise((r, j) => { s.once("connect", r); s.once("error", j); });
      return s;
    },
  };
  const key = JwtKey.generate();
  const edge = new EdgeListener({
    dialer, log: pino({ level: "silent" }), tenant: "acme",
    certs: [{ certPem: readFileSync(join(tmp.dir, "edge.crt"), "utf8"), keyPem: readFileSync(join(tmp.dir, "edge.key"), "utf8") }],
    limits: { ...EDGE_LIMIT_DEFAULTS, ...limits },
  });
  const port = (await edge.listen("127.0.0.1", 0)).port;
  edge.setPublications([
    { hostname: OPEN_HOST, node: "web-1", service: "status-page", port: 443, protocol: "https", clientAuth: "none" },
    { hostname: TOKEN_HOST, node: "web-2", service: "billing", port: 443, protocol: "https", clientAuth: "token" },
  ], key.publicKey.export({ type: "spki", format: "pem" }) as string);
  const now = Math.floor(Date.now() / 1000);
  const token = key.sign(EDGE_TOKEN_TYPE, { iss: EDGE_TOKEN_ISSUER, aud: TOKEN_HOST, sub: "partner", iat: now, exp: now + 3600, jti: "t1" });
  const ca = readFileSync(join(tmp.dir, "pub-ca.crt"));
  return {
    edge, port, token,
    request: (host, head, o = {}) => new Promise((resolve) => {
      const raw = connect({ host: "127.0.0.1", port, localAddress: o.localAddress });
      raw.on("error", () => undefined);
      const s = tlsConnect({ socket: raw, servername: host, ca });
      let got = "";
      let timedOut = false;
      const t = setTimeout(() => { timedOut = true; s.destroy(); }, o.timeoutMs ?? 5_000);
      s.on("secureConnect", () => s.write(head));
      s.on("data", (d) => { got += d; });
      s.on("error", () => undefined);
      s.on("close", () => { clearTimeout(t); resolve(timedOut && !got ? TIMED_OUT : got); });
    }),
    close: async () => {
      await edge.close();
      for (const s of services) s.close();
      tmp.cleanup();
    },
  };
}
