// The native data plane end to end: two network namespaces, a TUN device and a DataPlane in each (a node
// child process per namespace, test/native/fixtures/tunnel-node.mjs), fixed test keys. Root only.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile, execFileSync, spawn } from "node:child_process";
import { promisify } from "node:util";
import { createHash, randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nativeAddon, nativeStatus } from "../../src/native/addon.js";
// @ts-expect-error plain .mjs fixture without types
import * as lab from "./fixtures/tunnel-lab.mjs";

const execFileAsync = promisify(execFile);
type Ev = Record<string, any>;
interface LabNode { ready: Promise<Ev>; events: Ev[]; next(pred: (e: Ev) => boolean, ms?: number): Promise<Ev>; send(c: Ev): void; stats(): Promise<Ev> }

function missingTool(): string | undefined {
  for (const t of ["ip", "ping", "socat", "python3"]) {
    try { execFileSync("sh", ["-c", `command -v ${t}`], { stdio: "ignore" }); } catch { return t; }
  }
  return undefined;
}

const status = nativeStatus();
const isRoot = process.getuid?.() === 0;
const tool = missingTool();
const skipReason = !status.loaded ? `native addon not loaded: ${status.reason}` : !isRoot ? "needs root (network namespaces, TUN)" : tool ? `${tool} is not installed` : undefined;
if (skipReason) console.log(`native data plane tests skipped: ${skipReason}`);

const [A, B] = lab.NS as string[];
const [IP_A, IP_B] = lab.OVERLAY as string[];
const run = (ns: string, args: string[], timeout = 20_000) => lab.inNs(ns, args, { timeout }) as string;
const fails = (ns: string, args: string[]) => { try { run(ns, args); return false; } catch { return true; } };

/** A TUN_DATA packet as the peer would send it (sealed with the test key). */
function tunData(index: number, counter: number, key: string, ip: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h[0] = 0x16;
  h.writeUInt32LE(index, 4);
  h.writeUInt32LE(counter >>> 0, 8);
  h.writeUInt32LE(Math.floor(counter / 2 ** 32), 12);
  const [sealed] = nativeAddon()!.aeadSealBatch(Buffer.from(key, "hex"), [counter], [ip]);
  return Buffer.concat([h, sealed]);
}

function echoRequest(src: string, dst: string): Buffer {
  const p = Buffer.alloc(28);
  p[0] = 0x45; p.writeUInt16BE(28, 2); p[8] = 64; p[9] = 1;
  src.split(".").forEach((o, i) => { p[12 + i] = Number(o); });
  dst.split(".").forEach((o, i) => { p[16 + i] = Number(o); });
  p[20] = 8; p.writeUInt16BE(0x4242, 24);
  return p;
}

describe.skipIf(skipReason !== undefined)("native data plane between two namespaces", () => {
  let a: LabNode, b: LabNode;
  const file = join(tmpdir(), `nat1-${process.pid}.bin`);

  beforeAll(async () => {
    lab.setup();
    // A accepts nothing unsolicited (replies pass through connection tracking); B serves TCP 5001 and ping.
    a = lab.startNode(0, { tcp: [], udp: [], icmp: false });
    b = lab.startNode(1, { tcp: [[5001, 5001]], udp: [], icmp: true });
    await Promise.all([a.ready, b.ready]);
  });

  afterAll(async () => {
    await Promise.all([a, b].map((n) => n && lab.stopNode(n)));
    lab.teardownNamespaces();
    rmSync(file, { force: true });
  });

  it("ping crosses the tunnel, and the replies pass A's closed table as replies to A's own flow", async () => {
    run(A, ["ping", "-c", "3", "-i", "0.2", "-W", "2", IP_B]);
    const s = await a.stats();
    expect(s.peers[0].rxPackets).toBeGreaterThanOrEqual(3);
    expect(s.peers[0].sinceRxMs).toBeGreaterThanOrEqual(0);
    expect(s.stats.gro).toBe(true);
  });

  it("B's unsolicited ping is refused by A's table and reported once through onDenied", async () => {
    expect(fails(B, ["ping", "-c", "2", "-i", "0.2", "-W", "1", IP_A])).toBe(true);
    const d = await a.next((e) => e.ev === "denied");
    expect(d.flows[0]).toMatchObject({ peerId: 1, proto: 1, srcIp: IP_B, dstIp: IP_A });
    expect((await a.stats()).stats.drops.firewall).toBeGreaterThanOrEqual(2);
    expect(a.events.filter((e) => e.ev === "denied")).toHaveLength(1); // one report per flow per second
  });

  it("a 20 MB TCP transfer arrives byte-exact (with TSO: super-packets cut into segments, every checksum ours)", async () => {
    const before = (await a.stats()).stats;
    const data = randomBytes(20 << 20);
    writeFileSync(file, data);
    const server = spawn("ip", ["netns", "exec", B, "socat", "-u", "TCP-LISTEN:5001,reuseaddr", "STDOUT"], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      const hash = createHash("sha256");
      let got = 0;
      server.stdout.on("data", (d: Buffer) => { hash.update(d); got += d.length; });
      const done = new Promise((r) => server.once("exit", r));
      await new Promise((r) => setTimeout(r, 300));
      // Asynchronously: a synchronous child would stop this process from draining the server's stdout.
      await execFileAsync("ip", ["netns", "exec", A, "socat", "-u", `FILE:${file}`, `TCP:${IP_B}:5001,connect-timeout=5`], { timeout: 60_000 });
      await done;
      expect(got).toBe(data.length);
      expect(hash.digest("hex")).toBe(createHash("sha256").update(data).digest("hex"));
      // The kernel accepted TSO on the TUN device: A read far fewer times than it sent packets (B's kernel
      // checked the TCP and IP checksums of every segment A made, or the transfer would not have completed).
      const after = (await a.stats()).stats;
      expect(after.tunVnetHdr).toBe(true);
      const packets = after.tunRxPackets - before.tunRxPackets, reads = after.tunReads - before.tunReads;
      expect(packets).toBeGreaterThan(14_000);
      expect(packets / reads, `${packets} packets from ${reads} reads`).toBeGreaterThan(2);
      // And B wrote consecutive segments into its TUN as coalesced super-packets (fewer writes than packets).
      const bs = (await b.stats()).stats;
      expect(bs.tunTxPackets / bs.tunWrites, `${bs.tunTxPackets} packets in ${bs.tunWrites} writes`).toBeGreaterThan(2);
    } finally {
      if (server.exitCode === null) process.kill(server.pid!, "SIGKILL");
    }
  });

  it("a TCP port outside B's table is dropped and reported with the flow", async () => {
    expect(fails(A, ["socat", "-u", "STDIN", `TCP:${IP_B}:6000,connect-timeout=1`])).toBe(true);
    const d = await b.next((e) => e.ev === "denied" && e.flows.some((f: Ev) => f.dstPort === 6000));
    expect(d.flows.find((f: Ev) => f.dstPort === 6000)).toMatchObject({ peerId: 1, proto: 6, srcIp: IP_A, dstIp: IP_B });
    expect(d.flows[0].srcPort).toBeGreaterThan(0);
  });

  it("datagrams that are not TUN_DATA reach onDatagrams with their source", async () => {
    run(A, ["sh", "-c", `printf hello-stun | socat -u STDIN UDP:${lab.UNDERLAY[1]}:${lab.PORT},sourceport=40000`]);
    const d = await b.next((e) => e.ev === "datagrams");
    expect(Buffer.from(d.packets[0], "hex").toString()).toBe("hello-stun");
    expect(d.hosts[0]).toBe(lab.UNDERLAY[0]);
    expect(d.ports[0]).toBe(40000);
  });

  it("bad datagrams are counted as drops and the data plane keeps working", async () => {
    const before = (await b.stats()).stats.drops;
    const bad = [
      Buffer.from([0x16, 0, 0, 0, 1, 2, 3]), // truncated
      Buffer.concat([Buffer.from([0x16, 0, 0, 0, 0xee, 0xee, 0, 0]), randomBytes(60)]), // unknown index
      Buffer.concat([Buffer.from([0x16, 0, 0, 0, 101, 0, 0, 0]), Buffer.from([0, 0, 0, 0, 0x80, 0, 0, 0]), randomBytes(60)]), // forged (counter 2^39: fresh, so it reaches the AEAD)
    ];
    const script = `const s=require("dgram").createSocket("udp4");const p=${JSON.stringify(bad.map((x) => x.toString("hex")))};` +
      `let n=0;for(const h of p)s.send(Buffer.from(h,"hex"),${lab.PORT},"${lab.UNDERLAY[1]}",()=>{if(++n===p.length)s.close()});`;
    run(A, [process.execPath, "-e", script]);
    const total = (d: Record<string, number>) => d.bad_packet + d.unknown_index + d.auth_failed;
    let after = (await b.stats()).stats.drops;
    for (let i = 0; i < 50 && total(after) - total(before) < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = (await b.stats()).stats.drops;
    }
    expect(after.bad_packet - before.bad_packet).toBe(1);
    expect(after.unknown_index - before.unknown_index).toBe(1);
    expect(after.auth_failed - before.auth_failed).toBe(1);
    run(A, ["ping", "-c", "1", "-W", "2", IP_B]);
  });

  it("a packet too big for the path is dropped with an ICMP fragmentation-needed back into TUN", async () => {
    a.events = a.events.filter((e) => e.ev !== "ok");
    a.send({ cmd: "setPeer", maxDatagram: 1000 });
    await a.next((e) => e.ev === "ok" && e.cmd === "setPeer");
    const before = (await a.stats()).stats.drops.too_big;
    let out = "";
    try { run(A, ["ping", "-c", "1", "-W", "1", "-M", "do", "-s", "1200", IP_B]); } catch (e) { out = String((e as { stdout?: string }).stdout); }
    expect(out).toMatch(/mtu = 968/); // maxDatagram - 32 (header and tag)
    expect((await a.stats()).stats.drops.too_big - before).toBe(1);
    run(A, ["ping", "-c", "1", "-W", "2", "-s", "900", IP_B]); // what fits still passes
    a.send({ cmd: "setPeer", maxDatagram: 1472 });
    a.events = a.events.filter((e) => e.ev !== "ok");
    await a.next((e) => e.ev === "ok" && e.cmd === "setPeer");
  });

  it("a rekey: the initiator's new keys wait for the peer's confirmation, the previous keys send until then", async () => {
    const cmd = async (n: LabNode, c: Ev) => { n.send(c); await n.next((e) => (e.ev === "ok" && e.cmd === c.cmd) || e.ev === "error"); };
    const [K2A, K2B] = ["33".repeat(32), "44".repeat(32)];
    const unknown = async () => (await b.stats()).stats.drops.unknown_index as number;
    const before = await unknown();
    // A installed new keys after its final message; B does not have them yet (the message is still on its way).
    await cmd(a, { cmd: "addKeys", localIndex: 200, remoteIndex: 201, sendKey: K2A, recvKey: K2B, confirmed: false });
    run(A, ["ping", "-c", "3", "-i", "0.2", "-W", "2", IP_B]);
    expect(await unknown()).toBe(before);
    // The final message arrives: B (the responder) sends on the new keys, and its first reply confirms them to A.
    await cmd(b, { cmd: "addKeys", localIndex: 201, remoteIndex: 200, sendKey: K2B, recvKey: K2A, confirmed: true });
    run(A, ["ping", "-c", "2", "-i", "0.2", "-W", "2", IP_B]);
    // A now sends on the new keys: B can forget the old ones and still answers.
    await cmd(b, { cmd: "dropKeys", localIndex: 101 });
    run(A, ["ping", "-c", "2", "-i", "0.2", "-W", "2", IP_B]);
    expect(await unknown()).toBe(before);
    // Back to the first keys, fresh on both sides (counters and replay windows), for the tests below.
    for (const li of [200, 100]) await cmd(a, { cmd: "dropKeys", localIndex: li });
    await cmd(b, { cmd: "dropKeys", localIndex: 201 });
    await cmd(a, { cmd: "addKeys", localIndex: 100, remoteIndex: 101, sendKey: lab.KEYS[0], recvKey: lab.KEYS[1], confirmed: true });
    await cmd(b, { cmd: "addKeys", localIndex: 101, remoteIndex: 100, sendKey: lab.KEYS[1], recvKey: lab.KEYS[0], confirmed: true });
    run(A, ["ping", "-c", "1", "-W", "2", IP_B]);
  });

  it("a packet for a peer without keys waits for them (staged) and leaves with them: the first ping after a rest is answered", async () => {
    const cmd = async (n: LabNode, c: Ev) => { n.send(c); await n.next((e) => (e.ev === "ok" && e.cmd === c.cmd) || e.ev === "error"); };
    const [K3A, K3B] = ["55".repeat(32), "66".repeat(32)];
    // A's session expired at rest (the daemon dropped its keys); B already holds the next session's keys.
    await cmd(a, { cmd: "dropKeys", localIndex: 100 });
    await cmd(b, { cmd: "addKeys", localIndex: 301, remoteIndex: 300, sendKey: K3B, recvKey: K3A, confirmed: true });
    const before = (await a.stats()).stats;
    const ping = execFileAsync("ip", ["netns", "exec", A, "ping", "-c", "1", "-W", "5", IP_B]);
    // The echo request asks for a session; a handshake's time later the keys arrive.
    await a.next((e) => e.ev === "want");
    await new Promise((r) => setTimeout(r, 300));
    await cmd(a, { cmd: "addKeys", localIndex: 300, remoteIndex: 301, sendKey: K3A, recvKey: K3B, confirmed: false });
    const r = await ping;
    expect(r.stdout).toMatch(/1 received/);
    const after = (await a.stats()).stats;
    expect(after.staged - before.staged).toBe(1);
    expect(after.drops.no_session - before.drops.no_session).toBe(0);
    // Back to the first keys, fresh on both sides, for the tests below.
    await cmd(a, { cmd: "dropKeys", localIndex: 300 });
    for (const li of [301, 101]) await cmd(b, { cmd: "dropKeys", localIndex: li });
    await cmd(a, { cmd: "addKeys", localIndex: 100, remoteIndex: 101, sendKey: lab.KEYS[0], recvKey: lab.KEYS[1], confirmed: true });
    await cmd(b, { cmd: "addKeys", localIndex: 101, remoteIndex: 100, sendKey: lab.KEYS[1], recvKey: lab.KEYS[0], confirmed: true });
    run(A, ["ping", "-c", "1", "-W", "2", IP_B]);
  });

  // Moves B's replay window far ahead of A's counters: the tests after this one expect no traffic A -> B.
  it("injectRx: a relayed packet is accepted once (then replay), a spoofed inner source is dropped", async () => {
    const before = (await b.stats()).stats;
    const good = tunData(101, 2 ** 40, lab.KEYS[0], echoRequest(IP_A, IP_B));
    b.send({ cmd: "inject", hex: good.toString("hex") });
    b.send({ cmd: "inject", hex: good.toString("hex") });
    b.send({ cmd: "inject", hex: tunData(101, 2 ** 40 + 1, lab.KEYS[0], echoRequest("100.64.77.9", IP_B)).toString("hex") });
    b.send({ cmd: "inject", hex: "16000000" });
    const after = (await b.stats()).stats;
    expect(after.tunTxPackets - before.tunTxPackets).toBe(1);
    expect(after.drops.replay - before.drops.replay).toBe(1);
    expect(after.drops.spoofed_source - before.drops.spoofed_source).toBe(1);
    expect(after.drops.bad_packet - before.drops.bad_packet).toBe(1);
    b.send({ cmd: "inject", hex: "zz" });
    b.send({ cmd: "stats" });
    await b.next((e) => e.ev === "stats");
  });

  it("short and non-IPv4 packets from the TUN side are counted as bad_tun_packet", async () => {
    const before = (await a.stats()).stats;
    const py = "import socket\ns=socket.socket(socket.AF_PACKET,socket.SOCK_DGRAM,socket.htons(0x0800))\ns.bind(('nat1-t',0x0800))\n" +
      "for p in [b'\\x45', b'\\x60'+b'\\x00'*39, b'\\x41'+b'\\x00'*19, b'\\x45\\x00\\xff\\xff'+b'\\x00'*16]:\n  s.sendto(p,('nat1-t',0x0800))\n";
    run(A, ["python3", "-c", py]);
    // The tx thread counts them as it reads them: poll (a loaded machine may take a while), bounded.
    let after = (await a.stats()).stats;
    for (let i = 0; i < 30 && after.drops.bad_tun_packet - before.drops.bad_tun_packet < 4; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = (await a.stats()).stats;
    }
    // At least our four (the kernel may add an IPv6 router solicitation of its own on the new device).
    const seen = `reads ${after.tunReads - before.tunReads}, packets ${after.tunRxPackets - before.tunRxPackets}, drops ${JSON.stringify(after.drops)}`;
    expect(after.drops.bad_tun_packet - before.drops.bad_tun_packet, seen).toBeGreaterThanOrEqual(4);
    expect(after.tunReads - before.tunReads, seen).toBeGreaterThanOrEqual(4);
  });

  it("removePeer fails closed on both sides; a peer without keys asks for a session through onWant", async () => {
    b.send({ cmd: "removePeer" });
    await b.next((e) => e.ev === "ok" && e.cmd === "removePeer");
    const bBefore = (await b.stats()).stats.drops;
    expect(fails(A, ["ping", "-c", "2", "-i", "0.2", "-W", "1", IP_B])).toBe(true);
    expect((await b.stats()).stats.drops.unknown_index - bBefore.unknown_index).toBeGreaterThanOrEqual(2);

    a.send({ cmd: "removePeer" });
    await a.next((e) => e.ev === "ok" && e.cmd === "removePeer");
    const aBefore = (await a.stats()).stats.drops;
    expect(fails(A, ["ping", "-c", "1", "-W", "1", IP_B])).toBe(true);
    expect((await a.stats()).stats.drops.no_peer - aBefore.no_peer).toBeGreaterThanOrEqual(1);

    b.send({ cmd: "setPeer" }); // back, but without keys
    await b.next((e) => e.ev === "ok" && e.cmd === "setPeer");
    expect(fails(B, ["ping", "-c", "2", "-i", "0.2", "-W", "1", IP_A])).toBe(true);
    const w = await b.next((e) => e.ev === "want");
    expect(w.peerIds).toEqual([1]);
    // The echo requests wait (staged, up to 64 a peer, 5 s) for a session that never comes: not counted as drops.
    expect((await b.stats()).stats.drops.no_session).toBe(0);
    expect(b.events.filter((e) => e.ev === "want")).toHaveLength(1); // at most one per second
  });
});
