// The enrollment's agent: one TLS connection, unverified for the public bundle, then judged by the verifier the
// bundle made before it carries anything else; a server that fails the verifier never sees the second request.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { withIntermediates, type CaMaterial } from "../../src/pki/index.js";
import { bootstrapAgent, requestJson } from "../../src/pki/mtls-client.js";
import { Verifier } from "../../src/pki/verify.js";
import { COORD_SERVER } from "../../src/wire/coord/names.js";
import { makeCa, makeLeaf, tempDir } from "../helpers/pki.js";

const tmp = tempDir("ember-bootstrap-");
let ca: CaMaterial, other: CaMaterial;
let server: Server;
let url = "";
const seen = { connections: 0, requests: [] as string[] };

beforeAll(async () => {
  ca = await makeCa(tmp.dir);
  other = await makeCa(tmp.dir, "other.internal");
  const leaf = await makeLeaf(ca, COORD_SERVER.name, { roles: [COORD_SERVER.role] });
  server = createServer({ cert: withIntermediates(leaf.pem, ca.bundlePem), key: leaf.keyPem, minVersion: "TLSv1.3" }, (req, res) => {
    seen.requests.push(`${req.method} ${req.url}`);
    // "?close": the server ends the connection after answering, so the next request needs a new one.
    if (req.url?.endsWith("?close")) res.setHeader("connection", "close");
    req.resume().on("end", () => { res.setHeader("content-type", "application/json"); res.end(JSON.stringify({ ok: true })); });
  });
  server.on("connection", () => seen.connections++); // TCP: a client that refuses the server may not finish the handshake
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => { await new Promise((r) => server.close(r)); tmp.cleanup(); });

describe("bootstrapAgent", () => {
  it("carries the bundle request and the verified request over one connection", async () => {
    seen.connections = 0; seen.requests = [];
    const agent = bootstrapAgent(COORD_SERVER);
    try {
      await requestJson(agent, `${url}/bundle`, "GET");
      agent.trust(new Verifier({ bundlePem: ca.bundlePem }));
      await requestJson(agent, `${url}/enroll`, "POST", { token: "secret" });
    } finally { agent.destroy(); }
    expect(seen.requests).toEqual(["GET /bundle", "POST /enroll"]);
    expect(seen.connections).toBe(1);
  });

  it("refuses to send the second request when the connection fails the verifier", async () => {
    seen.connections = 0; seen.requests = [];
    const agent = bootstrapAgent(COORD_SERVER);
    try {
      await requestJson(agent, `${url}/bundle`, "GET");
      agent.trust(new Verifier({ bundlePem: other.bundlePem }));
      await expect(requestJson(agent, `${url}/enroll`, "POST", { token: "secret" })).rejects.toThrow(/coordination server certificate refused/);
    } finally { agent.destroy(); }
    expect(seen.requests).toEqual(["GET /bundle"]);
  });

  it("verifies a new connection too when the first one was closed", async () => {
    seen.connections = 0; seen.requests = [];
    const agent = bootstrapAgent(COORD_SERVER);
    try {
      await requestJson(agent, `${url}/bundle?close`, "GET");
      await new Promise((r) => setTimeout(r, 50));
      agent.trust(new Verifier({ bundlePem: other.bundlePem }));
      await expect(requestJson(agent, `${url}/enroll`, "POST", {})).rejects.toThrow(/certificate refused/);
      agent.trust(new Verifier({ bundlePem: ca.bundlePem }));
      await requestJson(agent, `${url}/enroll`, "POST", {});
    } finally { agent.destroy(); }
    expect(seen.requests).toEqual(["GET /bundle?close", "POST /enroll"]);
    expect(seen.connections).toBe(3);
  });
});
