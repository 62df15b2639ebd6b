// Issue 14, item 2: request paths the server cannot decode are the client's fault. A malformed percent-escape
// in a path parameter (/v1/admin/nodes/%ZZ/revoke), a request target that is not a URL, or a parameter that
// cannot be a name answers 400 with a reason, never 500 with a URIError stack in the log.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { connect } from "node:tls";
import type { CoordServer } from "../../src/coord/server.js";
import { makeMesh, memoryLogger, portOf, rawRequest, spawnCoord, startInProcess, type Mesh } from "./helpers.js";

let mesh: Mesh;
let server: CoordServer;
let log: ReturnType<typeof memoryLogger>;
let admin: { cert: string; key: string };

beforeAll(async () => {
  mesh = await makeMesh();
  log = memoryLogger();
  server = await startInProcess(mesh, { logger: log.logger });
  admin = { cert: readFileSync(mesh.adminFlags.cert, "utf8"), key: readFileSync(mesh.adminFlags.key, "utf8") };
});
afterAll(async () => { await server?.close(); mesh?.cleanup(); });

/** Writes one raw HTTP/1.1 request (any request target) over TLS and returns the status line and body. */
function rawHttp(target: string, cert?: { cert: string; key: string }, url = server.url): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: portOf(url), rejectUnauthorized: false, ...cert });
    let data = "";
    s.on("secureConnect", () => s.write(`GET ${target} HTTP/1.1\r\nHost: coord\r\nConnection: close\r\n\r\n`));
    s.on("data", (c) => { data += c; });
    s.on("error", reject);
    s.on("close", () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      resolve({ status: m ? Number(m[1]) : 0, body: data.slice(data.indexOf("\r\n\r\n") + 4) });
    });
    s.setTimeout(10_000, () => s.destroy(new Error(`no answer to ${target}`)));
  });
}

describe("path parameters (issue 14.2)", () => {
  it("answers 400 with a reason for a malformed percent-escape in the node name, and logs no internal error", async () => {
    for (const bad of ["%ZZ", "%E0%A4%A", "%", "abc%2", "%C0%AF", "%ED%A0%80"]) {
      const r = await rawRequest(server.url, "POST", `/v1/admin/nodes/${bad}/revoke`, admin);
      expect(r.status, `${bad}: ${r.body}`).toBe(400);
      expect(r.json).toMatchObject({ error: "bad_path" });
      expect(r.json.detail).toMatch(/node name in the path is not valid percent-encoded UTF-8/);
    }
    expect(log.lines().filter((l) => l.event === "internal_error")).toEqual([]);
    expect(JSON.stringify(log.lines())).not.toMatch(/URIError/);
  });

  it("answers 400 for a decoded name that cannot be a node name, and 404 for a well-formed unknown one", async () => {
    for (const bad of ["a%2Fb", "UPPER", "%00", "a".repeat(64), "%2E%2E%2Fx", "x%20y"]) {
      const r = await rawRequest(server.url, "POST", `/v1/admin/nodes/${bad}/revoke`, admin);
      expect(r.status, bad).toBe(400);
      expect(r.json).toMatchObject({ error: "bad_name" });
    }
    const unknown = await rawRequest(server.url, "POST", "/v1/admin/nodes/ghost-1/revoke", admin);
    expect(unknown.status).toBe(404);
    expect(unknown.json).toMatchObject({ error: "unknown_node" });
    const escaped = await rawRequest(server.url, "POST", "/v1/admin/nodes/%67host-2/revoke", admin); // %67 = "g"
    expect(escaped.json).toMatchObject({ error: "unknown_node", detail: 'no node named "ghost-2"' });
  });

  it("answers 400 for a request target that is not a URL, with and without a certificate, and keeps serving", async () => {
    for (const target of ["http://[::1", "http://a:b:c/v1/health", "//[zz]/v1/health"]) {
      for (const cert of [undefined, admin]) {
        const r = await rawHttp(target, cert);
        expect(r.status, `${target}: ${r.body}`).toBeGreaterThanOrEqual(400);
        expect(r.status, `${target}: ${r.body}`).toBeLessThan(500);
      }
    }
    expect((await rawRequest(server.url, "GET", "/v1/health")).status).toBe(200);
    expect(log.lines().filter((l) => l.event === "internal_error")).toEqual([]);
  });

  it("a request target that is not a URL does not crash `ember coord` (it was an unhandled rejection: exit 1)", async () => {
    const other = await makeMesh();
    const child = await spawnCoord(other);
    try {
      const r = await rawHttp("http://[::1", undefined, child.url);
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body)).toMatchObject({ error: "bad_path" });
      expect((await rawRequest(child.url, "GET", "/v1/health")).status).toBe(200);
      expect(child.child.exitCode).toBe(null);
    } finally {
      await child.kill9();
      other.cleanup();
    }
  });

  it("tolerates malformed escapes in query parameters (the map stream's epoch and seq)", async () => {
    const r = await rawRequest(server.url, "GET", "/v1/map?epoch=%ZZ&seq=%E0%A4%A", admin);
    // The admin identity is not an enrolled node: refused as such, not as a server error.
    expect(r.status).toBe(403);
    expect(r.json).toMatchObject({ error: "not_enrolled" });
  });
});
