// STUN against the relay's responder (real child processes, loopback UDP): the node-side StunClient on a
// shared socket, netcheck's mapping classification, UDP-blocked detection, coturn interop, bad input.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSocket, type Socket } from "node:dgram";
import { spawnSync } from "node:child_process";
import { StunClient, STUN_BINDING_RESPONSE } from "../../src/nat/stun.js";
import { netcheck, classifyMapping } from "../../src/nat/netcheck.js";
import { PACKET } from "../../src/wire/constants.js";
import { ember } from "../helpers/cli.js";
import { makePki, relayStatus, startRelay, waitFor, type Pki, type RelayProc } from "../relay/helpers.js";

let pki: Pki;
let r1: RelayProc;
let r2: RelayProc;
const sockets: Socket[] = [];

async function udp(): Promise<{ socket: Socket; stun: StunClient; others: Buffer[] }> {
  const socket = createSocket("udp4");
  sockets.push(socket);
  const stun = new StunClient(socket);
  const others: Buffer[] = [];
  // The daemon's pattern: STUN first, everything else is EmberNet's.
  socket.on("message", (msg, rinfo) => { if (!stun.handle(msg, rinfo)) others.push(msg); });
  await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
  return { socket, stun, others };
}

beforeAll(async () => {
  pki = await makePki();
  [r1, r2] = await Promise.all([
    startRelay(pki, await pki.identity("relay-s1", { roles: ["relay"] })),
    startRelay(pki, await pki.identity("relay-s2", { roles: ["relay"] })),
  ]);
});

afterAll(async () => {
  for (const s of sockets) try { s.close(); } catch { /* already closed */ }
  await Promise.all([r1?.stop(), r2?.stop()]);
  pki?.cleanup();
});

describe("STUN", () => {
  it("the relay answers a Binding request with the XOR-MAPPED-ADDRESS it saw", async () => {
    const { socket, stun } = await udp();
    const r = await stun.request({ host: "127.0.0.1", port: r1.info.stun!.port }, 3_000);
    expect(r.mapped).toEqual({ address: "127.0.0.1", port: socket.address().port });
    expect(r.rttMs).toBeGreaterThan(0);
    expect((await relayStatus(r1)).counters.stunAnswered).toBeGreaterThanOrEqual(1);
  });

  it("handle() consumes STUN and passes EmberNet packets through on the same socket", async () => {
    const { socket, stun, others } = await udp();
    const sender = createSocket("udp4");
    sockets.push(sender);
    const ember = Buffer.from([PACKET.DATA, 0, 0, 0, 1, 2, 3, 4]);
    sender.send(ember, socket.address().port, "127.0.0.1");
    // A forged "response" with a transaction ID we never used is STUN (consumed) but resolves nothing.
    const forged = Buffer.alloc(20);
    forged.writeUInt16BE(STUN_BINDING_RESPONSE, 0);
    forged.writeUInt32BE(0x2112a442, 4);
    sender.send(forged, socket.address().port, "127.0.0.1");
    await waitFor(() => others.length === 1, "the EmberNet packet");
    expect(others[0].equals(ember)).toBe(true);
    const r = await stun.request({ host: "127.0.0.1", port: r2.info.stun!.port }, 3_000);
    expect(r.mapped.port).toBe(socket.address().port);
    expect(others.length).toBe(1);
  });

  it("netcheck against two relays' STUN ports reports endpoint-independent mapping and candidates", async () => {
    const { socket, stun } = await udp();
    const report = await netcheck(socket, stun, {
      servers: [{ host: "127.0.0.1", port: r1.info.stun!.port }, { host: "127.0.0.1", port: r2.info.stun!.port }],
      staticEndpoints: [{ address: "198.18.0.1", port: 41641 }],
    });
    expect(report.mapping).toBe("endpoint-independent");
    expect(report.servers.every((s) => s.mapped?.port === socket.address().port && s.rttMs! > 0)).toBe(true);
    expect(report.fastest).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(report.candidates).toContainEqual({ type: "local", address: "127.0.0.1", port: socket.address().port });
    expect(report.candidates).toContainEqual({ type: "static", address: "198.18.0.1", port: 41641 });
  });

  it("netcheck reports udp-blocked in bounded time when no server answers", async () => {
    const silent = createSocket("udp4"); // bound, never answers
    sockets.push(silent);
    await new Promise<void>((r) => silent.bind(0, "127.0.0.1", () => r()));
    const { socket, stun } = await udp();
    const t0 = Date.now();
    const report = await netcheck(socket, stun, { servers: [{ host: "127.0.0.1", port: silent.address().port }], timeoutMs: 800 });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(report.mapping).toBe("udp-blocked");
    expect(report.servers[0].error).toMatch(/^timeout/);
  });

  it("classifies endpoint-dependent mapping and one answering server as unknown", () => {
    expect(classifyMapping([
      { server: "198.18.0.1:3478", mapped: { address: "198.18.9.9", port: 40000 } },
      { server: "198.18.0.2:3478", mapped: { address: "198.18.9.9", port: 5153 } },
    ]).mapping).toBe("endpoint-dependent");
    expect(classifyMapping([
      { server: "198.18.0.1:3478", mapped: { address: "198.18.9.9", port: 40000 } },
      { server: "198.18.0.2:3478", error: "timeout" },
    ]).mapping).toBe("unknown");
  });

  it("the STUN responder ignores junk and answers RFC 3489 clients with MAPPED-ADDRESS", async () => {
    const s = createSocket("udp4");
    sockets.push(s);
    await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
    const answers: Buffer[] = [];
    s.on("message", (m) => answers.push(m));
    const port = r1.info.stun!.port;
    for (const junk of [Buffer.alloc(0), Buffer.from("hello"), Buffer.from([0, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42, ...Array(12).fill(0)]), Buffer.alloc(2000, 1)]) {
      s.send(junk, port, "127.0.0.1");
    }
    const tid = Buffer.from("0123456789abcdef");
    const legacy = Buffer.concat([Buffer.from([0, 1, 0, 0]), tid]);
    s.send(legacy, port, "127.0.0.1");
    await waitFor(() => answers.length >= 1, "legacy answer");
    await new Promise((r) => setTimeout(r, 200));
    expect(answers.length).toBe(1);
    const a = answers[0];
    expect(a.readUInt16BE(0)).toBe(0x0101);
    expect(a.subarray(4, 20).equals(tid)).toBe(true);
    expect(a.readUInt16BE(20)).toBe(0x0001); // MAPPED-ADDRESS
    expect(a.readUInt16BE(26)).toBe(s.address().port);
    expect([...a.subarray(28, 32)].join(".")).toBe("127.0.0.1");
    expect(r1.proc.exitCode).toBe(null);
  });

  it("interop: coturn's turnutils_stunclient gets the mapped address from the relay", (ctx) => {
    const probe = spawnSync("turnutils_stunclient", [], { encoding: "utf8" });
    if (probe.error) {
      console.log(`skipped: turnutils_stunclient not installed (Debian package coturn): ${probe.error.message}`);
      ctx.skip();
      return;
    }
    const r = spawnSync("turnutils_stunclient", ["-p", String(r1.info.stun!.port), "-L", "127.0.0.1", "127.0.0.1"], { encoding: "utf8", timeout: 15_000 });
    expect(r.status).toBe(0);
    const m = /UDP reflexive addr: ([\d.]+):(\d+)/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    expect(m![1]).toBe("127.0.0.1");
    expect(Number(m![2])).toBeGreaterThan(0);
    expect(Number(m![2])).not.toBe(r1.info.stun!.port);
  });

  it("ember netcheck --json prints per-server latency and the verdict; exit 1 when UDP is blocked", async () => {
    const silent = createSocket("udp4");
    sockets.push(silent);
    await new Promise<void>((r) => silent.bind(0, "127.0.0.1", () => r()));
    const silentPort = silent.address().port;
    const ok = ember(["netcheck", "--stun", `127.0.0.1:${r1.info.stun!.port}`, "--stun", `127.0.0.1:${r2.info.stun!.port}`, "--bind", "127.0.0.1:0", "--json"]);
    expect(ok.code, ok.stderr).toBe(0);
    const report = JSON.parse(ok.stdout);
    expect(report.mapping).toBe("endpoint-independent");
    expect(report.servers).toHaveLength(2);
    expect(report.servers[0].mapped.port).toBe(report.localPort);
    const text = ember(["netcheck", "--stun", `127.0.0.1:${r1.info.stun!.port}`, "--bind", "127.0.0.1:0"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/127\.0\.0\.1:\d+\s+127\.0\.0\.1:\d+\s+[\d.]+ ms/);
    expect(text.stdout).toMatch(/mapping\s+unknown/);
    const blocked = ember(["netcheck", "--stun", `127.0.0.1:${silentPort}`, "--timeout", "300", "--bind", "127.0.0.1:0", "--json"]);
    expect(blocked.code).toBe(1);
    expect(JSON.parse(blocked.stdout).mapping).toBe("udp-blocked");
    const none = ember(["netcheck", "--bind", "127.0.0.1:0"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^ember: no STUN server/);
  });
});
