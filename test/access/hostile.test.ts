// Bad input on the real listener: malformed SOCKS5, garbage HTTP, oversized heads, slowloris, a flood
// of connections beyond the limit, malformed UDP datagrams. Each gets a clean reply or a close and a
// counter, never a crash, and the proxy keeps serving.
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startProxy, type ProxyServer } from "../../src/access/proxy-server.js";
import { DIR, FakeMesh, httpServer, memoryLog, udpEcho, type Running } from "./fake-mesh.js";
import { curl, readN, socksRequest } from "./clients.js";

interface Exchange { data: Buffer; closed: boolean; ms: number }

/** Connects, writes `bytes`, and collects everything until the proxy closes (or waitMs passes). */
function exchange(port: number, bytes: Buffer | string, waitMs = 3000): Promise<Exchange> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = connect(port, "127.0.0.1");
    const parts: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ data: Buffer.concat(parts), closed, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    s.on("data", (c: Buffer) => parts.push(c));
    s.on("error", () => finish(true));
    s.on("end", () => finish(true));
    s.on("close", () => finish(true));
    s.write(bytes);
  });
}

async function eventually(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("proxy under bad input", () => {
  let web: Awaited<ReturnType<typeof httpServer>>;
  let uecho: Running;
  let mesh: FakeMesh;
  let proxy: ProxyServer;
  const c = () => proxy.stats().counters;

  beforeAll(async () => {
    web = await httpServer("node-a");
    uecho = await udpEcho();
    mesh = new FakeMesh()
      .route("node-a", "acme", 8080, "tcp", { kind: "local", port: web.port })
      .route("node-a", "acme", 7, "udp", { kind: "local", port: uecho.port })
      .route("db-1", "acme", 5432, "tcp", { kind: "delay", ms: 300, port: web.port })
      .route("node-b", "acme", 80, "tcp", { kind: "reset" });
    proxy = await startProxy({ port: 0, dialer: mesh, directory: DIR, log: memoryLog(), handshakeTimeoutMs: 3000 });
  });
  afterAll(async () => {
    await proxy.close();
    await web.close();
    await uecho.close();
  });

  it("malformed SOCKS5 greetings: no methods, or none acceptable, get 0xFF and a close", async () => {
    const none = await exchange(proxy.port, Buffer.from([5, 0]));
    expect(none).toMatchObject({ data: Buffer.from([5, 0xff]), closed: true });
    const noAuth = await exchange(proxy.port, Buffer.from([5, 2, 1, 2]));
    expect(noAuth).toMatchObject({ data: Buffer.from([5, 0xff]), closed: true });
    expect(c()).toMatchObject({ socks_bad_greeting: 1, socks_no_acceptable_method: 1 });
  });

  it("bad SOCKS5 requests get a reply code and a close", async () => {
    const ok = [5, 1, 0];
    const cases: [number[], number, string][] = [
      [[...ok, 4, 1, 0, 3, 1, 97, 0, 80], 0x01, "socks_bad_request"], // request version 4
      [[...ok, 5, 1, 0, 9, 1, 2, 3, 4], 0x08, "socks_unsupported_address"], // ATYP 9
      [[...ok, 5, 1, 0, 3, 0, 0, 80], 0x01, "socks_bad_request"], // empty domain
      [[...ok, 5, 2, 0, 3, 1, 97, 0, 80], 0x07, "socks_unsupported_command"], // BIND
    ];
    for (const [bytes, rep, counter] of cases) {
      const before = c()[counter as "socks_bad_request"];
      const r = await exchange(proxy.port, Buffer.from(bytes));
      expect(r.closed).toBe(true);
      expect([...r.data.subarray(0, 4)], counter).toEqual([5, 0, 5, rep]);
      expect(c()[counter as "socks_bad_request"]).toBe(before + 1);
    }
  });

  it("a truncated SOCKS5 request is closed at the handshake deadline, a client that leaves is just gone", async () => {
    const before = c().handshake_timeout;
    const r = await exchange(proxy.port, Buffer.from([5, 1, 0, 5, 1, 0, 3, 10, 97]), 6000);
    expect(r.closed).toBe(true);
    expect(r.ms).toBeGreaterThanOrEqual(2900);
    expect(c().handshake_timeout).toBe(before + 1);
    const s = connect(proxy.port, "127.0.0.1");
    s.write(Buffer.from([5, 1]));
    await new Promise((res) => setTimeout(res, 50));
    s.destroy();
    await eventually(() => proxy.stats().active === 0);
  });

  it("SOCKS4 gets its own rejection reply", async () => {
    const r = await exchange(proxy.port, Buffer.from([4, 1, 0, 80, 127, 0, 0, 1, 0]));
    expect(r).toMatchObject({ data: Buffer.from([0, 0x5b, 0, 0, 0, 0, 0, 0]), closed: true });
    expect(c().socks4_refused).toBe(1);
  });

  it("garbage HTTP gets 400 (or 505) with the reason, at once", async () => {
    const cases: [string | Buffer, number, string][] = [
      ["hello\r\n\r\n", 400, "not an HTTP request line"],
      [Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), 400, "unprintable bytes"],
      ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "this is a proxy"],
      ["GET https://x/ HTTP/1.1\r\n\r\n", 400, "go through CONNECT"],
      ["GET http://x/ HTTP/2.0\r\n", 505, "HTTP/2.0 is not supported"],
      ["CONNECT db-1 HTTP/1.1\r\n\r\n", 400, "CONNECT needs HOST:PORT"],
      ["GET http://x/ HTTP/1.1\r\nno colon here\r\n\r\n", 400, "bad header line"],
      ["GET http://x/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "both Content-Length"],
    ];
    for (const [bytes, status, why] of cases) {
      const r = await exchange(proxy.port, bytes);
      const text = r.data.toString();
      expect(r.closed).toBe(true);
      expect(r.ms).toBeLessThan(2500); // not the deadline
      expect(text.startsWith(`HTTP/1.1 ${status} `), text).toBe(true);
      expect(text, String(bytes)).toContain(why);
    }
    expect(c().http_bad_request).toBe(7);
    expect(c().http_version_not_supported).toBe(1);
  });

  it("a head over 16 KiB gets 431; a big body after a small head is fine", async () => {
    const big = `GET http://node-a:8080/ HTTP/1.1\r\nX-Big: ${"a".repeat(17_000)}\r\n\r\n`;
    const r = await exchange(proxy.port, big);
    expect(r.data.toString()).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    expect(r.data.toString()).toContain("request head over 16384 bytes");
    expect(c().http_header_too_large).toBe(1);
    // The same bytes in one write, but as a body: the head is small, so this is no 431.
    const body = "b".repeat(40_000);
    const post = await exchange(proxy.port, `POST http://node-a:8080/up HTTP/1.1\r\nHost: node-a:8080\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    expect(post.data.toString()).toContain("hello from node-a: POST /up (40000 bytes)");
  });

  it("slowloris, one byte per second, is closed at the handshake deadline (HTTP with 408, SOCKS5 without)", async () => {
    const before = c().handshake_timeout;
    const trickle = (bytes: Buffer) => new Promise<Exchange>((resolve) => {
      const t0 = Date.now();
      const s = connect(proxy.port, "127.0.0.1");
      const parts: Buffer[] = [];
      let i = 0;
      const tick = setInterval(() => { if (i < bytes.length && !s.destroyed) s.write(bytes.subarray(i, ++i)); }, 1000);
      s.write(bytes.subarray(0, ++i));
      s.on("data", (d: Buffer) => parts.push(d));
      s.on("error", () => undefined);
      s.on("close", () => { clearInterval(tick); resolve({ data: Buffer.concat(parts), closed: true, ms: Date.now() - t0 }); });
    });
    const [http, socks] = await Promise.all([
      trickle(Buffer.from("GET http://node-a:8080/ HTTP/1.1\r\nHost: node-a\r\n\r\n")),
      trickle(Buffer.concat([Buffer.from([5, 1, 0]), socksRequest(1, "web.node-a", 80)])),
    ]);
    for (const r of [http, socks]) {
      expect(r.ms).toBeGreaterThanOrEqual(2900);
      expect(r.ms).toBeLessThan(5500);
    }
    expect(http.data.toString()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(socks.data.toString("hex")).toBe("0500"); // the greeting's answer, then nothing
    expect(c().handshake_timeout).toBe(before + 2);
  });

  it("a client that leaves while its dial is in flight leaves no flow behind", async () => {
    const services = mesh.services.length;
    const s = connect(proxy.port, "127.0.0.1");
    s.on("error", () => undefined);
    s.write(Buffer.concat([Buffer.from([5, 1, 0]), socksRequest(1, "db-1", 5432)]));
    await readN(s, 2);
    s.destroy();
    await eventually(() => mesh.services.length === services + 1, 3000);
    const result = await mesh.services[services].done;
    expect(result.toService).toBe(0);
    await eventually(() => proxy.stats().active === 0);
  });

  it("a flow the mesh resets as soon as it opens closes the client, on every front end", async () => {
    const socks = await exchange(proxy.port, Buffer.concat([Buffer.from([5, 1, 0]), socksRequest(1, "node-b", 80)]));
    expect(socks.closed).toBe(true);
    expect(socks.data.subarray(0, 4).toString("hex")).toBe("05000500");
    const http = await exchange(proxy.port, "GET http://node-b/ HTTP/1.1\r\nHost: node-b\r\n\r\n");
    expect(http).toMatchObject({ closed: true, data: Buffer.alloc(0) });
    const tunnel = await exchange(proxy.port, "CONNECT node-b:80 HTTP/1.1\r\n\r\n");
    expect(tunnel.closed).toBe(true);
    await eventually(() => proxy.stats().active === 0);
  });

  it("malformed UDP datagrams are dropped with a counter; the association keeps working", async () => {
    const ctl = connect(proxy.port, "127.0.0.1");
    ctl.write(Buffer.from([5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
    const reply = await readN(ctl, 12);
    expect(reply.subarray(0, 4).toString("hex")).toBe("05000500");
    const relayPort = reply.readUInt16BE(10);
    const client: UdpSocket = createSocket("udp4");
    await new Promise<void>((r) => client.bind(0, "127.0.0.1", r));
    const send = (b: Buffer, from: UdpSocket = client) => from.send(b, relayPort, "127.0.0.1");
    const name = Buffer.from("echo.node-a");
    const good = (payload: string, frag = 0) => Buffer.concat([Buffer.from([0, 0, frag, 3, name.length]), name, Buffer.from([0, 7]), Buffer.from(payload)]);
    // The first good datagram fixes the client's port.
    const first = new Promise<Buffer>((r) => client.once("message", r));
    send(good("first"));
    expect((await first).subarray(7 + name.length).toString()).toBe("echo:first");

    const before = c();
    send(Buffer.from([0, 0, 0, 1, 127]));                                     // too short
    send(Buffer.from([1, 0, 0, 1, 127, 0, 0, 1, 0, 7, 1]));                   // reserved bytes
    send(Buffer.from([0, 0, 0, 3, 50, 97, 98, 99, 100, 101, 102]));           // truncated name
    send(Buffer.from([0, 0, 0, 9, 1, 2, 3, 4, 0, 7, 1]));                     // unknown ATYP
    send(good("frag", 1));                                                    // FRAG != 0
    send(Buffer.from([0, 0, 0, 1, 127, 0, 0, 1, 0, 7, 120]));                 // IPv4 destination
    send(Buffer.concat([Buffer.from([0, 0, 0, 3, 6]), Buffer.from("nobody"), Buffer.from([0, 7, 1])])); // unknown name
    const stranger = createSocket("udp4");
    await new Promise<void>((r) => stranger.bind(0, "127.0.0.1", r));
    send(good("stranger"), stranger);                                         // another source port
    await eventually(() => c().udp_drop_foreign_source > before.udp_drop_foreign_source && c().udp_drop_resolve > before.udp_drop_resolve);
    const after = c();
    expect(after.udp_drop_malformed - before.udp_drop_malformed).toBe(4);
    expect(after.udp_drop_fragment - before.udp_drop_fragment).toBe(1);
    expect(after.udp_drop_address_type - before.udp_drop_address_type).toBe(1);
    expect(after.udp_drop_resolve - before.udp_drop_resolve).toBe(1);
    expect(after.udp_drop_foreign_source - before.udp_drop_foreign_source).toBe(1);

    const again = new Promise<Buffer>((r) => client.once("message", r));
    send(good("still here"));
    expect((await again).subarray(7 + name.length).toString()).toBe("echo:still here");
    client.close();
    stranger.close();
    ctl.destroy();
  });

  it("2,000 connections beyond the limit are each closed at once and counted; memory stays bounded", async () => {
    // The per-source caps lifted: this is about the listener's total (fairness between sources: test/security/fairness-node.test.ts).
    const small = await startProxy({
      port: 0, dialer: mesh, directory: DIR, log: memoryLog(), maxConnections: 1024, maxConnectionsPerSource: 1024, maxHandshakesPerSource: 1024, handshakeTimeoutMs: 30_000,
    });
    const held: Socket[] = [];
    const openBatch = async (n: number) => {
      const batch: Promise<Socket>[] = [];
      for (let i = 0; i < n; i++) {
        batch.push(new Promise((resolve) => {
          const s = connect(small.port, "127.0.0.1");
          s.on("error", () => undefined);
          s.resume(); // read, so the proxy's close is seen
          s.once("connect", () => resolve(s));
        }));
      }
      return Promise.all(batch);
    };
    try {
      for (let i = 0; i < 1024; i += 256) held.push(...await openBatch(256));
      await eventually(() => small.stats().active === 1024);
      global.gc?.();
      const heapBefore = process.memoryUsage().heapUsed;
      const extra: Socket[] = [];
      for (let i = 0; i < 2000; i += 250) {
        const batch = await openBatch(250);
        extra.push(...batch);
        // Each extra connection says a little, as a real client would: nothing of it may be kept.
        for (const s of batch) s.write("GET http://node-a:8080/ HTTP/1.1\r\n");
      }
      await eventually(() => extra.every((s) => s.closed), 10_000);
      expect(small.stats().counters.over_limit).toBe(2000);
      expect(small.stats().counters.accepted).toBe(1024);
      expect(small.stats().active).toBe(1024);
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(64 << 20);
      for (const s of extra) s.destroy();
      // Room again: the proxy serves as soon as the held connections go.
      for (const s of held.splice(0, 10)) s.destroy();
      await eventually(() => small.stats().active <= 1014);
      const r = await curl(["-x", `http://127.0.0.1:${small.port}`, "http://node-a:8080/after-flood"]);
      expect(r.stdout).toBe("hello from node-a: GET /after-flood\n");
    } finally {
      for (const s of held) s.destroy();
      await small.close();
    }
  });
});
