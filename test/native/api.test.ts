// The addon's JavaScript surface without root: argument checks (TypeError, never a crash), a receive-only
// DataPlane on a plain UDP socket (datagrams to JS, bad TUN_DATA counted), close() idempotent.
import { afterEach, describe, expect, it } from "vitest";
import dgram from "node:dgram";
import { nativeAddon, nativeStatus } from "../../src/native/addon.js";
import type { DataPlane, DataPlaneOptions } from "../../src/native/types.js";

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
});
