// The console's own listener behind the admission guard (issue 28.2): a connection that shows a valid session
// is authenticated and outlives the deadline for anonymous connections; one that never does is closed at it.
// (The guard against a flood from one address: test/security/fairness-coord.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type TLSSocket } from "node:tls";
import { join } from "node:path";
import { CoordServer } from "../../src/coord/server.js";
import { silentLogger } from "../../src/coord/log.js";
import { makeMesh, type Mesh } from "./helpers.js";

const PASSWORD = "correct horse battery staple";
const DEADLINE_MS = 1_000;
let mesh: Mesh;
let server: CoordServer;
let consolePort = 0;

beforeAll(async () => {
  mesh = await makeMesh();
  server = new CoordServer({
    dataDir: join(mesh.dir, "data"), caDir: mesh.ca.dir, host: "127.0.0.1", port: 0, logger: silentLogger(), minCertTtlMs: 1_000,
    console: { host: "127.0.0.1", port: 0, limits: { anonymousTimeoutMs: DEADLINE_MS } },
  });
  (mesh as any).setUrl(await server.start());
  consolePort = Number(new URL(server.consoleUrl!).port);
  await mesh.admin().putUser("alice", PASSWORD);
}, 30_000);

afterAll(async () => {
  await server?.close();
  mesh?.cleanup();
});

/** A keep-alive HTTP/1.1 connection over TLS: one request at a time, answers read by Content-Length (bytes). */
function connection(): Promise<{ s: TLSSocket; ask: (head: string, body?: string) => Promise<{ status: number; headers: string; body: string }>; closed: () => boolean }> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port: consolePort, rejectUnauthorized: false });
    let buf = Buffer.alloc(0);
    let waiter: (() => void) | undefined;
    let closed = false;
    s.on("data", (d: Buffer) => { buf = Buffer.concat([buf, d]); waiter?.(); });
    s.on("error", () => {});
    s.on("close", () => { closed = true; waiter?.(); });
    const ask = (head: string, body = "") => new Promise<{ status: number; headers: string; body: string }>((res, rej) => {
      s.write(`${head}\r\nHost: console\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      waiter = () => {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) { if (closed) rej(new Error("closed")); return; }
        const headers = buf.subarray(0, end).toString("latin1");
        const len = Number(/content-length: (\d+)/i.exec(headers)?.[1] ?? 0);
        if (buf.length < end + 4 + len) { if (closed) rej(new Error("closed")); return; }
        const answer = { status: Number(headers.slice(9, 12)), headers, body: buf.subarray(end + 4, end + 4 + len).toString("utf8") };
        buf = buf.subarray(end + 4 + len);
        waiter = undefined;
        res(answer);
      };
    });
    s.once("secureConnect", () => resolve({ s, ask, closed: () => closed }));
  });
}

describe("console listener admission (issue 28.2)", () => {
  it("a connection with a session outlives the anonymous deadline; an anonymous one is closed at it", async () => {
    const a = await connection();
    const login = await a.ask("POST /ui/api/login HTTP/1.1\r\nContent-Type: application/json\r\nX-Ember-Console: 1", JSON.stringify({ username: "alice", password: PASSWORD }));
    expect(login.status, login.body).toBe(200);
    const cookie = /set-cookie: (ember_session=[^;]+)/i.exec(login.headers)![1];
    expect((await a.ask(`GET /ui/api/session HTTP/1.1\r\nCookie: ${cookie}`)).status).toBe(200);
    const b = await connection();
    expect((await b.ask("GET /ui/login HTTP/1.1")).status).toBe(200);
    expect(server.consoleGuard!.snapshot()).toMatchObject({ authenticated: 1, pending: 1 });
    await new Promise((r) => setTimeout(r, DEADLINE_MS + 700));
    expect(b.closed(), "the anonymous connection is closed at the deadline").toBe(true);
    expect(a.closed()).toBe(false);
    expect((await a.ask(`GET /ui/api/session HTTP/1.1\r\nCookie: ${cookie}`)).status).toBe(200);
    expect(server.consoleGuard!.snapshot().dropped.deadline).toBeGreaterThanOrEqual(1);
    a.s.destroy();
  }, 20_000);
});
