// The addon's JavaScript surface without root: argument checks (TypeError, never a crash), a receive-only
// DataPlane on a plain UDP socket (datagrams to JS, bad TUN_DATA counted), close() idempotent, and the tx
// stage without TUN (injectTx): the TypeScript path's bytes, and one plane to another over loopback.
import { afterEach, describe, expect, it } from "vitest";
import dgram from "node:dgram";
import { nativeAddon, nativeStatus } from "../../src/native/addon.js";
import type { DataPlane, DataPlaneOptions } from "../../src/native/types.js";
import { TransportCipher } from "../../src/crypto/transport.js";

const status = nativeStatus();
if (!status.loaded) console.log(`native addon not loaded, API tests skipped: ${status.reason}`);

describe.skipIf(!status.loaded)("native addon API", () => {
  const addon = nativeAddon()!;
  const noop = () => {};
  const cleanups: Array<() => void> = [];
  afterEach(() => { for (const c of cleanups.splice(0)) c(); });

  async function boundSocket(): Promise<{ sock: dgram.Socket; fd: number; port: number }> {
    const sock = dgram.createSocket("udp4");
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
    const handle = (sock as unknown as { _handle: { fd: number; recvStop(): void } })._handle;
    handle.recvStop();
    cleanups.push(() => sock.close());
    return { sock, fd: handle.fd, port: sock.address().port };
  }

  function plane(opts: Partial<DataPlaneOptions> & { udpFd: number }): DataPlane {
    const p = new addon.DataPlane({ onDatagrams: noop, onRelaySend: noop, onDenied: noop, onWant: noop, ...opts });
    cleanups.unshift(() => p.close());
    return p;
  }

  it("rejects bad constructor options and setter arguments with TypeError", async () => {
    const { fd } = await boundSocket();
    const D = addon.DataPlane as unknown as new (o: unknown) => DataPlane;
    expect(() => new D(undefined)).toThrow(TypeError);
    expect(() => new D({ udpFd: -1, onDatagrams: noop, onRelaySend: noop, onDenied: noop, onWant: noop })).toThrow(/udpFd/);
    expect(() => new D({ udpFd: fd, onDatagrams: noop, onRelaySend: noop, onDenied: noop })).toThrow(/onWant must be a function/);
    expect(() => new D({ udpFd: fd, overlayIp: "300.1.1.1", onDatagrams: noop, onRelaySend: noop, onDenied: noop, onWant: noop })).toThrow(/overlayIp/);
    const p = plane({ udpFd: fd, overlayIp: "100.64.1.1" });
    const fw = { tcp: [[80, 80]], udp: [], icmp: false };
    expect(() => p.setPeer(-1, { overlayIp: "100.64.1.2", endpoint: null, maxDatagram: 1472, inbound: fw } as never)).toThrow(TypeError);
    expect(() => p.setPeer(1, { overlayIp: "nope", endpoint: null, maxDatagram: 1472, inbound: fw } as never)).toThrow(/overlayIp/);
    expect(() => p.setPeer(1, { overlayIp: "100.64.1.2", endpoint: { host: "x", port: 1 }, maxDatagram: 1472, inbound: fw } as never)).toThrow(/endpoint.host/);
    expect(() => p.setPeer(1, { overlayIp: "100.64.1.2", endpoint: null, maxDatagram: 1472, inbound: { tcp: [[90, 80]], udp: [], icmp: false } } as never)).toThrow(/from > to/);
    expect(() => p.addKeys(9, 1, 2, new Uint8Array(32), new Uint8Array(32))).toThrow(/unknown peer/);
    p.setPeer(1, { overlayIp: "100.64.1.2", endpoint: { host: "127.0.0.1", port: 9 }, maxDatagram: 1472, inbound: fw as never });
    expect(() => p.addKeys(1, 1, 2, new Uint8Array(31), new Uint8Array(32))).toThrow(TypeError);
    expect(() => p.injectRx("x" as never)).toThrow(TypeError);
    p.addKeys(1, 1, 2, new Uint8Array(32), new Uint8Array(32));
    p.dropKeys(1);
    p.dropKeys(12345); // unknown: nothing happens
    p.removePeer(1);
    p.removePeer(1);
  });

  it("openTun explains what went wrong", () => {
    expect(() => addon.openTun("x".repeat(20), "100.64.0.1", 10, 1400)).toThrow(TypeError);
    expect(() => addon.openTun("nat1-bad", "not-an-ip", 10, 1400)).toThrow(/IPv4/);
    expect(() => addon.openTun("nat1-bad", "100.64.0.1", 33, 1400)).toThrow(TypeError);
    if (process.getuid?.() !== 0) expect(() => addon.openTun("nat1-bad", "100.64.0.1", 10, 1400)).toThrow(/\/dev\/net\/tun|TUNSETIFF/);
  });

  it("without TUN: other datagrams reach onDatagrams in batches with their source; bad TUN_DATA is counted", async () => {
    const { port, fd } = await boundSocket();
    const got: Array<{ data: string; host: string; port: number }> = [];
    let calls = 0;
    const p = plane({
      udpFd: fd,
      onDatagrams: (packets, hosts, ports) => {
        calls++;
        packets.forEach((b, i) => got.push({ data: b.toString(), host: hosts[i], port: ports[i] }));
      },
    });
    p.start();
    expect(() => p.start()).toThrow(/already/);
    const tx = dgram.createSocket("udp4");
    cleanups.push(() => tx.close());
    await new Promise<void>((r) => tx.bind(0, "127.0.0.1", r));
    const send = (b: Buffer) => new Promise<void>((r) => tx.send(b, port, "127.0.0.1", () => r()));
    for (let i = 0; i < 20; i++) await send(Buffer.from(`stun-${i}`));
    await send(Buffer.from([0x16, 0, 0, 0, 1])); // TUN_DATA, truncated
    await send(Buffer.concat([Buffer.from([0x16, 0, 0, 0, 9, 9, 9, 9]), Buffer.alloc(40)])); // unknown index
    for (let t = 0; t < 100 && got.length < 20; t++) await new Promise((r) => setTimeout(r, 20));
    expect(got.map((g) => g.data)).toEqual(Array.from({ length: 20 }, (_, i) => `stun-${i}`));
    expect(got.every((g) => g.host === "127.0.0.1" && g.port === tx.address().port)).toBe(true);
    expect(calls).toBeLessThanOrEqual(20);
    const s = p.stats();
    expect(s.udpRxPackets).toBe(22);
    expect(s.drops.bad_packet).toBe(1);
    expect(s.drops.unknown_index).toBe(1);
    expect(s.udpRxBatches).toBeGreaterThan(0);
    p.close();
    p.close();
    expect(p.stats().udpRxPackets).toBe(22);
  });
  /** An IPv4/UDP packet of `size` bytes between two overlay addresses, as a TUN device hands it over. */
  function ipv4Udp(src: string, dst: string, size: number, fill: number): Buffer {
    const p = Buffer.alloc(size, fill);
    p[0] = 0x45; p[1] = 0; p.writeUInt16BE(size, 2); p.writeUInt32BE(0, 4); p[8] = 64; p[9] = 17; p.writeUInt16BE(0, 10);
    src.split(".").forEach((o, i) => { p[12 + i] = Number(o); });
    dst.split(".").forEach((o, i) => { p[16 + i] = Number(o); });
    p.writeUInt16BE(40000, 20); p.writeUInt16BE(9, 22); p.writeUInt16BE(size - 20, 24); p.writeUInt16BE(0, 26);
    return p;
  }

  it("injectTx seals TUN_DATA exactly as the TypeScript path would, counter by counter, in one batch", async () => {
    const { fd } = await boundSocket();
    const sink = dgram.createSocket("udp4");
    cleanups.push(() => sink.close());
    const got: Buffer[] = [];
    sink.on("message", (m) => got.push(m));
    await new Promise<void>((r) => sink.bind(0, "127.0.0.1", r));
    const key = Buffer.alloc(32, 7);
    const p = plane({ udpFd: fd, overlayIp: "100.64.9.1" });
    p.setPeer(1, { overlayIp: "100.64.9.2", endpoint: { host: "127.0.0.1", port: sink.address().port }, maxDatagram: 1472, inbound: { tcp: [], udp: [], icmp: false } });
    p.addKeys(1, 11, 0x01020304, key, key);
    const packets = Array.from({ length: 40 }, (_, i) => ipv4Udp("100.64.9.1", "100.64.9.2", i === 39 ? 100 : 1000, i));
    p.injectTx([...packets, ipv4Udp("100.64.9.1", "100.64.9.77", 100, 0), Buffer.from([0x60, 0, 0])]);
    for (let t = 0; t < 100 && got.length < 40; t++) await new Promise((r) => setTimeout(r, 10));
    expect(got).toHaveLength(40);
    const ts = new TransportCipher(key);
    got.forEach((d, i) => {
      expect([...d.subarray(0, 4)]).toEqual([0x16, 0, 0, 0]);
      expect(d.readUInt32LE(4)).toBe(0x01020304);
      expect(d.readBigUInt64LE(8)).toBe(BigInt(i));
      const want = Buffer.alloc(packets[i].length + 16);
      ts.seal(i, packets[i], want, 0);
      expect(d.subarray(16).equals(want), `packet ${i}`).toBe(true);
    });
    const s = p.stats();
    expect(s.drops.no_peer).toBe(1);
    expect(s.drops.bad_tun_packet).toBe(1);
    expect(s.udpTxPackets).toBe(40);
    expect(() => p.injectTx("x" as never)).toThrow(TypeError);
    expect(() => p.injectTx([1] as never)).toThrow(TypeError);
  });

  it("injectTx to another plane: received, authenticated and admitted there (no TUN: counted as no_tun)", async () => {
    const a = await boundSocket();
    const b = await boundSocket();
    const [ka, kb] = [Buffer.alloc(32, 1), Buffer.alloc(32, 2)];
    const pa = plane({ udpFd: a.fd, overlayIp: "100.64.9.1" });
    const pb = plane({ udpFd: b.fd, overlayIp: "100.64.9.2" });
    pa.setPeer(1, { overlayIp: "100.64.9.2", endpoint: { host: "127.0.0.1", port: b.port }, maxDatagram: 1472, inbound: { tcp: [], udp: [], icmp: false } });
    pb.setPeer(1, { overlayIp: "100.64.9.1", endpoint: { host: "127.0.0.1", port: a.port }, maxDatagram: 1472, inbound: { tcp: [], udp: [[9, 9]], icmp: false } });
    pa.addKeys(1, 21, 22, ka, kb);
    pb.addKeys(1, 22, 21, kb, ka);
    pb.start();
    for (let round = 0; round < 10; round++) pa.injectTx(Array.from({ length: 64 }, (_, i) => ipv4Udp("100.64.9.1", "100.64.9.2", 1200, i)));
    for (let t = 0; t < 200 && (pb.stats().drops.no_tun ?? 0) < 640; t++) await new Promise((r) => setTimeout(r, 10));
    const s = pb.stats();
    expect(s.drops.no_tun).toBe(640);
    expect(s.drops.auth_failed).toBe(0);
    expect(s.drops.firewall).toBe(0);
    expect(pb.peerCounters()[0].rxPackets).toBe(640);
  });
});
