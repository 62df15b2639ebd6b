// ember forward: TCP byte-exact through the fake mesh, UDP request/response per client, and refusals
// that close the client and log the reason.
import { createHash, randomBytes } from "node:crypto";
import { connect, createServer, type AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ForwardError, parseForwardTarget, startForward } from "../../src/access/forward.js";
import { DialError } from "../../src/access/types.js";
import { DIR, FakeMesh, memoryLog, tcpEcho, udpClient, udpEcho, type Running } from "./fake-mesh.js";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const DENY = "denied by policy: default deny (no rule allows laptop-1 -> vault:8200/tcp)";

describe("forward", () => {
  let echo: Running;
  let uecho: Running;
  let mesh: FakeMesh;
  beforeAll(async () => {
    echo = await tcpEcho();
    uecho = await udpEcho();
    mesh = new FakeMesh()
      .route("node-a", "acme", 7000, "tcp", { kind: "local", port: echo.port })
      .route("node-a", "acme", 7, "udp", { kind: "local", port: uecho.port })
      .route("vault", "acme", 8200, "tcp", { kind: "reject", error: new DialError("denied", DENY) })
      .route("vault", "acme", 53, "udp", { kind: "reject", error: new DialError("denied", DENY.replace("8200/tcp", "53/udp")) });
  });
  afterAll(async () => { await echo.close(); await uecho.close(); });

  it("tcp: 1 MB byte-exact through the mesh to an echo service (sha256)", async () => {
    const log = memoryLog();
    const fwd = await startForward({ listenPort: 0, host: "node-a", port: 7000, protocol: "tcp", dialer: mesh, directory: DIR, log });
    try {
      const data = randomBytes(1 << 20);
      const c = connect(fwd.port, "127.0.0.1");
      const parts: Buffer[] = [];
      c.on("data", (d: Buffer) => parts.push(d));
      c.end(data);
      await new Promise((r) => c.on("end", r));
      expect(sha(Buffer.concat(parts))).toBe(sha(data));
      expect(mesh.dials.at(-1)).toEqual({ peer: "node-a", tenant: "acme", port: 7000, protocol: "tcp" });
      expect(fwd.stats().counters).toMatchObject({ accepted: 1, dialled: 1, denied: 0 });
    } finally {
      await fwd.close();
    }
  });

  it("tcp: a denied dial resets the client and logs the reason with the deciding rule", async () => {
    const log = memoryLog();
    const fwd = await startForward({ listenPort: 0, host: "vault", port: 8200, protocol: "tcp", dialer: mesh, directory: DIR, log });
    try {
      const c = connect(fwd.port, "127.0.0.1");
      const got: Buffer[] = [];
      c.on("data", (d: Buffer) => got.push(d));
      const err = await new Promise<NodeJS.ErrnoException | null>((r) => { c.once("error", r); c.once("close", () => r(null)); });
      expect(err?.code).toBe("ECONNRESET");
      expect(got).toEqual([]);
      const warn = log.entries.find((e) => e.level === "warn" && e.msg?.includes("dial refused"));
      expect(warn?.obj).toMatchObject({ code: "denied", reason: DENY });
      expect(fwd.stats().counters.denied).toBe(1);
    } finally {
      await fwd.close();
    }
  });

  it("tcp: an unknown name closes the client too, and the forward starts anyway with a warning", async () => {
    const log = memoryLog();
    const fwd = await startForward({ listenPort: 0, host: "not-yet", port: 1, protocol: "tcp", dialer: mesh, directory: DIR, log });
    try {
      expect(log.text()).toContain("does not resolve yet");
      const c = connect(fwd.port, "127.0.0.1");
      await new Promise((r) => { c.once("error", r); c.once("close", r); });
      expect(fwd.stats().counters.unknown_name).toBe(1);
    } finally {
      await fwd.close();
    }
  });

  it("udp: each client gets its own flow and its own replies", async () => {
    const log = memoryLog();
    const fwd = await startForward({ listenPort: 0, host: "echo.node-a", protocol: "udp", dialer: mesh, directory: DIR, log });
    const a = await udpClient();
    const b = await udpClient();
    try {
      expect(await a.ask(fwd.port, "ping-a")).toBe("echo:ping-a");
      expect(await b.ask(fwd.port, "ping-b")).toBe("echo:ping-b");
      expect(await a.ask(fwd.port, "again")).toBe("echo:again");
      const s = fwd.stats();
      expect(s.active).toBe(2);
      expect(s.counters).toMatchObject({ udp_flows: 2, udp_datagrams_in: 3, udp_datagrams_out: 3, dialled: 2 });
    } finally {
      a.close();
      b.close();
      await fwd.close();
    }
  });

  it("udp: idle flows close, and the flow limit drops further clients with a counter", async () => {
    const fwd = await startForward({ listenPort: 0, host: "echo.node-a", protocol: "udp", dialer: mesh, directory: DIR, log: memoryLog(), idleMs: 300, maxFlows: 1 });
    const a = await udpClient();
    const b = await udpClient();
    try {
      expect(await a.ask(fwd.port, "1")).toBe("echo:1");
      expect(await b.ask(fwd.port, "2", 300)).toBeNull();
      expect(fwd.stats().counters.udp_drop_flow_limit).toBe(1);
      await new Promise((r) => setTimeout(r, 600));
      expect(fwd.stats().active).toBe(0);
      expect(fwd.stats().counters.udp_flows_idle_closed).toBe(1);
      expect(await b.ask(fwd.port, "3")).toBe("echo:3");
    } finally {
      a.close();
      b.close();
      await fwd.close();
    }
  });

  it("udp: a denied flow drops the datagrams, logs the reason and does not re-dial per datagram", async () => {
    const log = memoryLog();
    const fwd = await startForward({ listenPort: 0, host: "vault", port: 53, protocol: "udp", dialer: mesh, directory: DIR, log });
    const a = await udpClient();
    try {
      const before = mesh.dials.length;
      expect(await a.ask(fwd.port, "q1", 200)).toBeNull();
      expect(await a.ask(fwd.port, "q2", 200)).toBeNull();
      expect(mesh.dials.length - before).toBe(1);
      expect(fwd.stats().counters).toMatchObject({ denied: 1, udp_drop_dial_failed: 1 });
      expect(log.entries.find((e) => e.level === "warn")?.obj.reason).toContain("default deny");
    } finally {
      a.close();
      await fwd.close();
    }
  });

  it("refuses bad settings with a clear error", async () => {
    const base = { listenPort: 0, port: 1, protocol: "tcp" as const, dialer: mesh, directory: DIR, log: memoryLog() };
    await expect(startForward({ ...base, host: "bad_name" })).rejects.toThrow(`"bad_name" is not a valid label`);
    await expect(startForward({ ...base, host: "db-1", port: undefined })).rejects.toThrow("give a port");
    await expect(startForward({ ...base, host: "db-1", listenHost: "0.0.0.0" })).rejects.toThrow("is not loopback");
    await expect(startForward({ ...base, host: "db-1", listenPort: 70000 })).rejects.toThrow("outside 0-65535");
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    const port = (busy.address() as AddressInfo).port;
    await expect(startForward({ ...base, host: "db-1", listenPort: port })).rejects.toThrow(ForwardError);
    await expect(startForward({ ...base, host: "db-1", listenPort: port })).rejects.toThrow(`127.0.0.1:${port} is already in use`);
    busy.close();
  });

  it("parses the CLI target NAME[:PORT][/tcp|/udp]", () => {
    expect(parseForwardTarget("db-1:5432")).toEqual({ host: "db-1", port: 5432, protocol: "tcp" });
    expect(parseForwardTarget("dns.db-1/udp")).toEqual({ host: "dns.db-1", protocol: "udp" });
    expect(parseForwardTarget("db-1.acme:53/UDP")).toEqual({ host: "db-1.acme", port: 53, protocol: "udp" });
    expect(() => parseForwardTarget("db-1:0")).toThrow("is not 1-65535");
    expect(() => parseForwardTarget("db-1:5432/sctp")).toThrow(`"sctp" is not tcp or udp`);
    expect(() => parseForwardTarget("db 1")).toThrow("expected NAME[:PORT]");
    expect(() => parseForwardTarget("DB_1:22")).toThrow("not a valid label");
  });
});
