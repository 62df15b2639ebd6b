// The receiving side: a mesh stream joined to a real local TCP or UDP service.
import { createHash, randomBytes } from "node:crypto";
import { createServer, type AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DatagramDecoder, encodeDatagram } from "../../src/access/datagram-framing.js";
import { connectService } from "../../src/access/service-connector.js";
import { memoryLog, streamPair, tcpEcho, udpEcho, type Running } from "./fake-mesh.js";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

function readAll(s: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on("data", (c: Buffer) => parts.push(c));
    s.on("end", () => resolve(Buffer.concat(parts)));
    s.on("error", reject);
  });
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe("connectService", () => {
  let echo: Running;
  let uecho: Running;
  beforeAll(async () => { echo = await tcpEcho(); uecho = await udpEcho(); });
  afterAll(async () => { await echo.close(); await uecho.close(); });

  it("tcp: 1 MB through to a local echo and back byte-exact, half-close included", async () => {
    const [near, far] = streamPair();
    const conn = connectService(far, { host: "127.0.0.1", port: echo.port }, "tcp", memoryLog());
    const data = randomBytes(1 << 20);
    const back = readAll(near);
    near.end(data);
    expect(sha(await back)).toBe(sha(data));
    expect(await conn.done).toEqual({ toService: 1 << 20, fromService: 1 << 20 });
  });

  it("tcp: a slow reader pauses the writer (nothing buffers without bound)", async () => {
    const [near, far] = streamPair();
    connectService(far, { host: "127.0.0.1", port: echo.port }, "tcp", memoryLog());
    const chunk = randomBytes(64 * 1024);
    let written = 0;
    const limit = 256 << 20;
    const writeMore = () => {
      while (written < limit) {
        written += chunk.length;
        if (!near.write(chunk)) return near.once("drain", writeMore);
      }
    };
    writeMore();
    await new Promise((r) => setTimeout(r, 700)); // nobody reads `near`
    // Loopback socket buffers hold a few MB; without back-pressure all 256 MB would be written by now.
    expect(written).toBeLessThan(48 << 20);
    const before = written;
    let read = 0;
    near.on("data", (c: Buffer) => { read += c.length; });
    await new Promise((r) => setTimeout(r, 300));
    expect(written).toBeGreaterThan(before); // reading released the writer
    expect(read).toBeGreaterThan(0);
    near.destroy();
  });

  it("tcp: a local connect failure destroys the stream with a reason naming the service", async () => {
    const port = await closedPort();
    const log = memoryLog();
    const [near, far] = streamPair();
    const err = new Promise<Error>((r) => near.once("error", r));
    const conn = connectService(far, { host: "127.0.0.1", port }, "tcp", log);
    expect((await err).message).toBe(`local service 127.0.0.1:${port} unreachable: ECONNREFUSED`);
    expect((await conn.done).error).toContain("ECONNREFUSED");
    expect(log.entries.some((e) => e.level === "warn" && String(e.obj.reason).includes("ECONNREFUSED"))).toBe(true);
  });

  it("udp: framed datagrams reach a local echo and the replies come back framed", async () => {
    const [near, far] = streamPair();
    const conn = connectService(far, { host: "127.0.0.1", port: uecho.port }, "udp", memoryLog());
    const dec = new DatagramDecoder();
    const got: string[] = [];
    near.on("data", (c: Buffer) => got.push(...dec.push(c).map((d) => d.toString())));
    // Three datagrams written split mid-frame: the framing, not the chunking, delimits them.
    const wire = Buffer.concat(["one", "two", "three"].map((s) => encodeDatagram(Buffer.from(s))));
    near.write(wire.subarray(0, 4));
    near.write(wire.subarray(4, 9));
    near.write(wire.subarray(9));
    for (let i = 0; i < 100 && got.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    expect(got.sort()).toEqual(["echo:one", "echo:three", "echo:two"]);
    conn.close();
    expect(await conn.done).toEqual({ toService: 3, fromService: 3 });
  });

  it("udp: a bad frame (length 0) closes the flow with the reason", async () => {
    const log = memoryLog();
    const [near, far] = streamPair();
    const conn = connectService(far, { host: "127.0.0.1", port: uecho.port }, "udp", log);
    near.on("error", () => undefined);
    await new Promise((r) => setTimeout(r, 20));
    near.write(Buffer.from([0, 0, 1]));
    const r = await conn.done;
    expect(r.error).toContain("datagram frame of length 0");
    expect(near.destroyed).toBe(true);
    expect(log.text()).toContain("length 0");
  });

  it("udp: an idle flow closes after idleMs", async () => {
    const [near, far] = streamPair();
    const closed = new Promise((r) => near.once("close", r));
    const t0 = Date.now();
    const conn = connectService(far, { host: "127.0.0.1", port: uecho.port }, "udp", memoryLog(), { idleMs: 300 });
    near.write(encodeDatagram(Buffer.from("hi")));
    await closed;
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(280);
    expect(took).toBeLessThan(2000);
    expect(await conn.done).toEqual({ toService: 1, fromService: 1 });
  });
});
