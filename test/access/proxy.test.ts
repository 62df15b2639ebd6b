// The proxy with real clients: the curl binary through SOCKS5 and HTTP (absolute-form and CONNECT),
// raw SOCKS5 replies for each refusal, and a hand-written SOCKS5 UDP ASSOCIATE client.
import { execFile } from "node:child_process";
import { createSocket } from "node:dgram";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ListenError } from "../../src/access/listen.js";
import { startProxy, type ProxyServer } from "../../src/access/proxy-server.js";
import { DialError } from "../../src/access/types.js";
import { curl, readN, socksRequest } from "./clients.js";
import { DIR, FakeMesh, httpServer, memoryLog, tcpEcho, udpEcho, type MemoryLog, type Running } from "./fake-mesh.js";

const DENY = "denied by policy: default deny (no rule allows laptop-1 -> vault:80/tcp)";

async function open(port: number): Promise<Socket> {
  const s = connect(port, "127.0.0.1");
  s.on("error", () => undefined);
  await new Promise((r) => s.once("connect", r));
  return s;
}

describe("proxy", () => {
  let web: Awaited<ReturnType<typeof httpServer>>;
  let echo: Running;
  let uecho: Running;
  let mesh: FakeMesh;
  let proxy: ProxyServer;
  let log: MemoryLog;

  beforeAll(async () => {
    web = await httpServer("node-a");
    echo = await tcpEcho();
    uecho = await udpEcho();
    mesh = new FakeMesh()
      .route("node-a", "acme", 8080, "tcp", { kind: "local", port: web.port })
      .route("node-a", "acme", 7000, "tcp", { kind: "local", port: echo.port })
      .route("node-a", "acme", 7, "udp", { kind: "local", port: uecho.port })
      .route("vault", "acme", 80, "tcp", { kind: "reject", error: new DialError("denied", DENY) })
      .route("vault", "acme", 443, "tcp", { kind: "reject", error: new DialError("denied", DENY) })
      .route("only-g", "globex", 22, "tcp", { kind: "reject", error: new DialError("unreachable", "only-g: no path (direct or relay) within 5 s") })
      .route("node-b", "acme", 80, "tcp", { kind: "hang" });
    log = memoryLog();
    proxy = await startProxy({ port: 0, dialer: mesh, directory: DIR, log, dialTimeoutMs: 800 });
  });
  afterAll(async () => {
    await proxy.close();
    await web.close();
    await echo.close();
    await uecho.close();
  });

  it("curl --socks5-hostname fetches http://web.node-a/ through the mesh (the service's port wins over 80)", async () => {
    const r = await curl(["--socks5-hostname", `127.0.0.1:${proxy.port}`, "http://web.node-a/index.html"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("hello from node-a: GET /index.html\n");
    expect(mesh.dials.at(-1)).toEqual({ peer: "node-a", tenant: "acme", port: 8080, protocol: "tcp", service: "web" });
    const viaUrl = await curl(["-x", `socks5h://127.0.0.1:${proxy.port}`, "http://web.node-a.ember/x"]);
    expect(viaUrl.stdout).toBe("hello from node-a: GET /x\n");
  });

  it("curl through SOCKS5 to a denied name fails, and the reason is logged", async () => {
    const before = proxy.stats().counters.denied;
    const r = await curl(["--socks5-hostname", `127.0.0.1:${proxy.port}`, "http://vault/"]);
    // curl reports the reply code it got: 2 is "connection not allowed by ruleset".
    expect(r.code).toBe(97);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("Can't complete SOCKS5 connection to vault. (2)");
    expect(proxy.stats().counters.denied).toBe(before + 1);
    const entry = log.entries.find((e) => e.msg === "socks5: connect refused" && e.obj.asked === "vault:80");
    expect(entry?.obj).toMatchObject({ code: "denied", reason: DENY, reply: "0x02 connection not allowed by ruleset" });
  });

  it("answers each refusal with its SOCKS5 reply code (raw socket)", async () => {
    const cases: [string, number, number, number][] = [
      ["vault", 80, 1, 0x02], // denied
      ["nobody", 80, 1, 0x04], // unknown name
      ["only-g", 22, 1, 0x04], // unreachable
      ["db-1", 5432, 1, 0x05], // refused (no service there)
      ["node-b", 80, 1, 0x06], // the dial never answers: our deadline
      ["db_1", 80, 1, 0x01], // bad name syntax
      ["web.node-a", 80, 2, 0x07], // BIND
      ["web.node-a", 80, 9, 0x07], // no such command
    ];
    await Promise.all(cases.map(async ([host, port, cmd, rep]) => {
      const s = await open(proxy.port);
      s.write(Buffer.from([5, 1, 0]));
      expect((await readN(s, 2)).toString("hex")).toBe("0500");
      s.write(socksRequest(cmd, host, port));
      const reply = await readN(s, 10);
      expect(reply.length, host).toBe(10);
      expect([reply[0], reply[1]], `${host}:${port} cmd ${cmd}`).toEqual([5, rep]);
      const closed = await new Promise((r) => { if (s.destroyed || s.readableEnded) r(true); s.once("close", () => r(true)); setTimeout(() => r(false), 3000); });
      expect(closed, host).toBe(true);
    }));
    // IPv4 and IPv6 literals: address type not supported.
    for (const [atyp, addr] of [[1, [127, 0, 0, 1]], [4, new Array(16).fill(0)]] as const) {
      const s = await open(proxy.port);
      s.write(Buffer.from([5, 1, 0]));
      await readN(s, 2);
      s.write(Buffer.from([5, 1, 0, atyp, ...addr, 0, 80]));
      expect((await readN(s, 10))[1]).toBe(0x08);
      s.destroy();
    }
  });

  it("carries bytes both ways on a raw SOCKS5 CONNECT, including data sent with the request", async () => {
    const s = await open(proxy.port);
    s.write(Buffer.concat([Buffer.from([5, 1, 0]), socksRequest(1, "node-a", 7000), Buffer.from("early bytes|")]));
    const got = await readN(s, 2 + 10 + 12);
    expect(got.subarray(0, 2).toString("hex")).toBe("0500");
    expect(got.subarray(2, 4).toString("hex")).toBe("0500");
    expect(got.subarray(12).toString()).toBe("early bytes|");
    s.write("later");
    expect((await readN(s, 5)).toString()).toBe("later");
    s.destroy();
  });

  it("curl -x http:// (absolute-form) reaches node-a:8080, with proxy headers dropped and Connection: close", async () => {
    const r = await curl(["-x", `http://127.0.0.1:${proxy.port}`, "-H", "Proxy-Authorization: Basic Zm9vOmJhcg==", "http://node-a:8080/path?q=1"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("hello from node-a: GET /path?q=1\n");
    const head = web.heads.at(-1)!;
    expect(head.url).toBe("/path?q=1");
    expect(head.headers.host).toBe("node-a:8080");
    expect(head.headers.connection).toBe("close");
    expect(head.headers["proxy-connection"]).toBeUndefined();
    expect(head.headers["proxy-authorization"]).toBeUndefined();
    expect(mesh.dials.at(-1)).toEqual({ peer: "node-a", tenant: "acme", port: 8080, protocol: "tcp" });
  });

  it("curl -x http:// forwards a request body intact", async () => {
    const body = "x".repeat(100_000);
    const r = await curl(["-x", `http://127.0.0.1:${proxy.port}`, "--data-binary", body.slice(0, 100_000), "-H", "Expect:", "http://node-a:8080/post"]);
    expect(r.stdout).toBe("hello from node-a: POST /post (100000 bytes)\n");
  });

  it("curl -p -x http:// (CONNECT) tunnels to node-a:8080", async () => {
    const before = proxy.stats().counters.http_connect;
    const r = await curl(["-p", "-x", `http://127.0.0.1:${proxy.port}`, "http://node-a:8080/tunnelled"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("hello from node-a: GET /tunnelled\n");
    expect(proxy.stats().counters.http_connect).toBe(before + 1);
  });

  it("socat's PROXY address (HTTP CONNECT, as ssh's ProxyCommand would use it) reaches a TCP service by name", async () => {
    const out = await new Promise<string>((resolve) => {
      const child = execFile("/usr/bin/socat", ["-", `PROXY:127.0.0.1:node-a:7000,proxyport=${proxy.port}`], { timeout: 10_000 },
        (_err, stdout, stderr) => resolve(stdout + stderr));
      child.stdin!.end("hello through socat\n");
    });
    expect(out).toBe("hello through socat\n");
  });

  it("a denial answers 403 with the reason in the body and X-Ember-Reason, on both HTTP forms", async () => {
    const r = await curl(["-x", `http://127.0.0.1:${proxy.port}`, "-D", "-", "http://vault/"]);
    expect(r.stdout).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(r.stdout).toContain(`X-Ember-Reason: ${DENY}\r\n`);
    expect(r.stdout).toContain("X-Ember-Code: denied\r\n");
    expect(r.stdout.endsWith(`\r\n\r\n${DENY}\n`)).toBe(true);
    const c = await curl(["-p", "-x", `http://127.0.0.1:${proxy.port}`, "https://vault/"]);
    expect(c.code).toBe(56);
    expect(c.stderr).toContain("403");
  });

  it("an unknown name answers 502 with the reason, a hung dial 504", async () => {
    const r = await curl(["-x", `http://127.0.0.1:${proxy.port}`, "-w", "%{http_code}", "http://nobody/"]);
    expect(r.stdout).toMatch(/^unknown name "nobody": no such peer.*\n502$/s);
    const t = await curl(["-x", `http://127.0.0.1:${proxy.port}`, "-w", "%{http_code}", "http://node-b/"]);
    expect(t.stdout).toMatch(/no answer from node-b within 0\.8 s\n504$/);
    const a = await curl(["-x", `http://127.0.0.1:${proxy.port}`, "-w", "%{http_code}", "http://shared-1:80/"]);
    expect(a.stdout).toMatch(/ambiguous name "shared-1".*\n502$/s);
  });

  it("UDP ASSOCIATE: a hand-written SOCKS5 UDP client gets the echo service's answer through the mesh", async () => {
    const ctl = await open(proxy.port);
    ctl.write(Buffer.from([5, 1, 0]));
    await readN(ctl, 2);
    const client = createSocket("udp4");
    await new Promise<void>((r) => client.bind(0, "127.0.0.1", r));
    const myPort = client.address().port;
    ctl.write(Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, myPort >> 8, myPort & 0xff]));
    const reply = await readN(ctl, 10);
    expect([reply[0], reply[1], reply[3]]).toEqual([5, 0, 1]);
    const relay = { host: [...reply.subarray(4, 8)].join("."), port: reply.readUInt16BE(8) };
    expect(relay.host).toBe("127.0.0.1");

    const ask = (name: string, port: number, payload: string, waitMs = 3000) => new Promise<Buffer>((resolve, reject) => {
      const n = Buffer.from(name);
      const d = Buffer.concat([Buffer.from([0, 0, 0, 3, n.length]), n, Buffer.from([port >> 8, port & 0xff]), Buffer.from(payload)]);
      const t = setTimeout(() => reject(new Error("no UDP reply")), waitMs);
      client.once("message", (m) => { clearTimeout(t); resolve(m); });
      client.send(d, relay.port, relay.host);
    });
    const answer = await ask("echo.node-a", 0, "ping");
    const header = Buffer.concat([Buffer.from([0, 0, 0, 3, 11]), Buffer.from("echo.node-a"), Buffer.from([0, 0])]);
    expect(answer.subarray(0, header.length).equals(header)).toBe(true);
    expect(answer.subarray(header.length).toString()).toBe("echo:ping");
    expect((await ask("echo.node-a", 0, "pong")).subarray(header.length).toString()).toBe("echo:pong");
    expect(mesh.dials.at(-1)).toEqual({ peer: "node-a", tenant: "acme", port: 7, protocol: "udp", service: "echo" });
    const c = proxy.stats().counters;
    expect(c.udp_flows).toBe(1);
    expect(c.udp_datagrams_in).toBe(2);
    expect(c.udp_datagrams_out).toBe(2);

    // Closing the control connection ends the association: the relay port stops answering.
    ctl.destroy();
    await new Promise((r) => setTimeout(r, 100));
    await expect(ask("echo.node-a", 0, "after", 500)).rejects.toThrow("no UDP reply");
    client.close();
  });

  it("UDP ASSOCIATE keeps one flow per (name, port), and idle flows close", async () => {
    const quick = await startProxy({ port: 0, dialer: mesh, directory: DIR, log: memoryLog(), udpIdleMs: 400 });
    const ctl = await open(quick.port);
    const client = createSocket("udp4");
    try {
      ctl.write(Buffer.from([5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
      const relayPort = (await readN(ctl, 12)).readUInt16BE(10);
      await new Promise<void>((r) => client.bind(0, "127.0.0.1", r));
      const ask = (name: string, port: number, payload: string) => new Promise<string>((resolve, reject) => {
        const n = Buffer.from(name);
        const t = setTimeout(() => reject(new Error("no UDP reply")), 3000);
        client.once("message", (m) => { clearTimeout(t); resolve(m.subarray(7 + n.length).toString()); });
        client.send(Buffer.concat([Buffer.from([0, 0, 0, 3, n.length]), n, Buffer.from([port >> 8, port & 0xff]), Buffer.from(payload)]), relayPort, "127.0.0.1");
      });
      expect(await ask("echo.node-a", 0, "a")).toBe("echo:a");
      expect(await ask("echo.node-a", 0, "b")).toBe("echo:b");
      expect(await ask("node-a", 7, "c")).toBe("echo:c"); // another name for the same service: its own flow
      expect(quick.stats().counters).toMatchObject({ udp_flows: 2, udp_datagrams_in: 3, udp_datagrams_out: 3 });
      await new Promise((r) => setTimeout(r, 900));
      expect(quick.stats().counters.udp_flows_idle_closed).toBe(2);
      expect(await ask("echo.node-a", 0, "d")).toBe("echo:d"); // a new flow after the idle one closed
      expect(quick.stats().counters.udp_flows).toBe(3);
    } finally {
      client.close();
      ctl.destroy();
      await quick.close();
    }
  });

  it("listens on loopback only", async () => {
    await expect(startProxy({ port: 0, host: "0.0.0.0", dialer: mesh, directory: DIR, log: memoryLog() })).rejects.toThrow(ListenError);
    await expect(startProxy({ port: 0, host: "192.0.2.1", dialer: mesh, directory: DIR, log: memoryLog() }))
      .rejects.toThrow("listen address 192.0.2.1 is not loopback");
    await expect(startProxy({ port: proxy.port, dialer: mesh, directory: DIR, log: memoryLog() })).rejects.toThrow("is already in use");
    expect(proxy.host).toBe("127.0.0.1");
  });
});
