// Relay limits, with the relay started through `ember relay`: the per-node token bucket and the
// per-destination queue bound drop and count instead of buffering; bad flags exit 2 with a message.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "node:tls";
import { ember } from "../helpers/cli.js";
import { QUIET_IDLE_PING_PROTOCOL, RELAY_FRAME, RelayFrameReader, relayAlpnProtocols } from "../../src/wire/relay.js";
import type { RelayClient } from "../../src/nat/relay-client.js";
import { connected, makePki, nodeClient, relayStatus, startRelay, waitFor, type IdentityFiles, type Pki, type RelayProc } from "./helpers.js";

let pki: Pki;
let relayId: IdentityFiles;
const relays: RelayProc[] = [];
const clients: RelayClient[] = [];

beforeAll(async () => {
  pki = await makePki();
  relayId = await pki.identity("relay-l", { roles: ["relay"] });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.stop()));
  await Promise.all(relays.map((r) => r.stop()));
  pki?.cleanup();
});

async function relayWith(flags: string[]): Promise<RelayProc> {
  const r = await startRelay(pki, relayId, flags, { viaCli: true });
  relays.push(r);
  return r;
}

function started(relay: RelayProc, c: RelayClient): RelayClient {
  clients.push(c);
  c.start();
  void relay;
  return c;
}

describe("relay limits", () => {
  it("rate-limits a node with a token bucket: excess frames are dropped and counted", async () => {
    const relay = await relayWith(["--rate", "32k", "--burst", "32k"]);
    const a = started(relay, nodeClient(pki, relay, await pki.identity("rate-a")));
    const b = started(relay, nodeClient(pki, relay, await pki.identity("rate-b")));
    await Promise.all([connected(a), connected(b)]);
    let received = 0;
    b.on("packet", () => received++);
    const N = 200;
    for (let i = 0; i < N; i++) expect(a.send("rate-b", Buffer.alloc(1000, i))).toBe(true);
    const st = await waitFor(async () => {
      const s = await relayStatus(relay);
      return s.counters.framesForwarded + s.counters.drops.rate_limited >= N && received === s.counters.framesForwarded ? s : undefined;
    }, "all frames forwarded or dropped");
    // 32 KiB burst: about 32 frames of ~1 KB pass at once, a few more from refill during the burst.
    expect(received).toBeGreaterThanOrEqual(20);
    expect(received).toBeLessThan(N / 2);
    expect(st.counters.drops.rate_limited).toBe(N - received);
    expect(st.counters.dropBytes.rate_limited).toBe((N - received) * 1000);
  });

  it("bounds each destination's queue: frames to a node that does not read are dropped and counted", async () => {
    const relay = await relayWith(["--rate", "1G", "--burst", "1G", "--queue", "64k"]);
    const sink = await pki.identity("slow-sink");
    // The destination connects and then stops reading: the relay's writes back up.
    const s = connect({ host: "127.0.0.1", port: relay.info.listen.port, cert: sink.certChainPem, key: sink.keyPem, rejectUnauthorized: false, minVersion: "TLSv1.3" });
    s.on("error", () => {});
    const reader = new RelayFrameReader();
    let welcomed = false;
    s.on("data", (c: Buffer) => { reader.push(c); for (let f = reader.next(); f; f = reader.next()) if (f.type === RELAY_FRAME.WELCOME) { welcomed = true; s.pause(); } });
    await waitFor(() => welcomed, "sink WELCOME");

    const a = started(relay, nodeClient(pki, relay, await pki.identity("flood-a")));
    const c = started(relay, nodeClient(pki, relay, await pki.identity("other-c")));
    await Promise.all([connected(a), connected(c)]);
    const payload = Buffer.alloc(2000, 0xab);
    const deadline = Date.now() + 30_000;
    let sent = 0;
    let drops = 0;
    // Bounded: at most 64 MB and 30 s; stops as soon as the relay reports a queue drop.
    while (sent < 32_000 && Date.now() < deadline && drops === 0) {
      for (let i = 0; i < 200; i++) if (a.send("slow-sink", payload)) sent++;
      await new Promise((r) => setTimeout(r, 5));
      if (sent % 1000 < 200) drops = (await relayStatus(relay)).counters.drops.queue_full;
    }
    const st = await waitFor(async () => { const x = await relayStatus(relay); return x.counters.drops.queue_full > 0 ? x : undefined; }, "queue_full drops");
    expect(st.counters.drops.queue_full).toBeGreaterThan(0);
    // The relay itself is not stuck: another pair still gets through at once.
    const got = new Promise<string>((r) => a.once("packet", (_f: string, p: Buffer) => r(p.toString())));
    c.send("flood-a", Buffer.from("unaffected"));
    expect(await got).toBe("unaffected");
    s.destroy();
  });

  it("at rest the relay keeps a connection with one ping per idle timeout, unanswered from protocol 2 on; a protocol-1 node that never answers is closed after twice that", async () => {
    const relay = await relayWith(["--idle-timeout", "1s"]);
    // A node client at rest: it sends no ping of its own after the first one (its idle-mode keepalive is the
    // relay's ping), does not answer the relay's pings (protocol 2: TCP's acknowledgement is the answer, issue 26),
    // and stays connected.
    const a = started(relay, nodeClient(pki, relay, await pki.identity("rest-a"), { pingIntervalMs: 200 }));
    await connected(a);
    expect(a.relayProtocol).toBeGreaterThanOrEqual(QUIET_IDLE_PING_PROTOCOL);
    await new Promise((r) => setTimeout(r, 300)); // the connect ping's PONG is in
    const [out0, in0] = [a.stats.wireFramesOut, a.stats.wireFramesIn];
    await new Promise((r) => setTimeout(r, 3_500));
    expect(a.connected).toBe(true);
    expect(a.stats.connects).toBe(1);
    // About one relay ping per second of silence, none answered, no pings from the node at rest.
    expect(a.stats.wireFramesIn - in0).toBeGreaterThanOrEqual(2);
    expect(a.stats.wireFramesIn - in0).toBeLessThanOrEqual(4);
    expect(a.stats.wireFramesOut - out0).toBe(0);

    const mute = async (name: string, alpn?: string[]) => {
      const id = await pki.identity(name);
      const s = connect({ host: "127.0.0.1", port: relay.info.listen.port, cert: id.certChainPem, key: id.keyPem, rejectUnauthorized: false,
        minVersion: "TLSv1.3", ...(alpn ? { ALPNProtocols: alpn } : {}) });
      s.on("error", () => {});
      const reader = new RelayFrameReader();
      const frames: { type: number; at: number; name: string }[] = [];
      s.on("data", (c: Buffer) => { reader.push(c); for (let f = reader.next(); f; f = reader.next()) frames.push({ type: f.type, at: Date.now(), name: f.name }); });
      const t0 = Date.now();
      const closed = new Promise<number>((r) => s.on("close", () => r(Date.now() - t0)));
      return { s, frames, closed };
    };
    // Protocol 1 (no ALPN, as release 0.1.0) never answering: pinged after 1 s, closed after 2 s with reason "idle".
    const old = await mute("mute-b");
    // Protocol 2 never answering: pinged every second and kept.
    const quiet = await mute("mute-c", relayAlpnProtocols());
    const closed = await old.closed;
    expect(old.frames.map((f) => f.type)).toEqual([RELAY_FRAME.WELCOME, RELAY_FRAME.PING, RELAY_FRAME.ERROR]);
    expect(old.frames[2].name).toBe("idle");
    expect(closed).toBeGreaterThanOrEqual(1_900);
    expect(closed).toBeLessThan(4_000);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(quiet.s.destroyed).toBe(false);
    expect(quiet.frames[0].type).toBe(RELAY_FRAME.WELCOME);
    expect(quiet.frames.slice(1).map((f) => f.type)).toEqual(quiet.frames.slice(1).map(() => RELAY_FRAME.PING));
    expect(quiet.frames.length - 1).toBeGreaterThanOrEqual(3);
    quiet.s.destroy();
  });

  it("bad flags exit 2 with one message naming the problem", () => {
    const base = ["relay", "--cert", relayId.certPath, "--key", relayId.keyPath, "--ca", pki.bundlePath, "--listen", "127.0.0.1:0", "--stun", "off"];
    const r1 = ember([...base, "--rate", "fast"]);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(/^ember: --rate: "fast" is not a byte count/m);
    const r2 = ember([...base, "--listen", "127.0.0.1:99999"]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/--listen: port 99999 is out of range/);
    const r3 = ember([...base, "--coord", "http://coord"]);
    expect(r3.code).toBe(2);
    expect(r3.stderr).toMatch(/--coord: .*must be https:\/\/, got "http:\/\/coord"/);
    // A list of replicas is checked URL by URL; the bad one is named.
    const r5 = ember([...base, "--coord", "https://c1:443,c2"]);
    expect(r5.code).toBe(2);
    expect(r5.stderr).toMatch(/--coord: coordination URL "c2" is not a URL/);
    const r4 = ember([...base.slice(0, 5), "--ca", "/nonexistent/bundle.pem"]);
    expect(r4.code).toBe(2);
    expect(r4.stderr).toMatch(/trust bundle/);
  });
});
