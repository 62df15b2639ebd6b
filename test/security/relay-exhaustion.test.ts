// The relay under exhaustion, as a real child process. TCP: 2,000 connections that never start TLS, stop
// half-way through a ClientHello, send it at one byte per second, or finish TLS without a certificate, from
// 150 loopback addresses plus 200 from one address (the attackers in their own processes), while two valid
// nodes exchange frames every 50 ms and a third connects in the middle of it. STUN: thousands of datagrams,
// valid, junk, oversized and RFC 3489, from many addresses and in a burst from one, while a valid client
// keeps getting answers. Descriptors and memory of the relay process stay under stated bounds. The relay
// runs with a 2 s handshake deadline (default 10 s) so that the test sees the deadline act.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import type { RelayClient } from "../../src/nat/relay-client.js";
import { encodeBindingRequest, StunClient } from "../../src/nat/stun.js";
import { connected, makePki, nodeClient, relayStatus, startRelay, type IdentityFiles, type Pki, type RelayProc } from "../relay/helpers.js";
import { captureClientHello, fdCount, floodProcess, loopbackSources, rssMiB, sampleMax, type FloodProc } from "./helpers.js";

const FLOOD = 2_000;
const FD_BOUND = 1_300; // the unauthenticated budget (1,024) plus the relay's own descriptors
const RSS_BOUND_MIB = 300;

let pki: Pki;
let relayId: IdentityFiles;
let relay: RelayProc;
const clients: RelayClient[] = [];
const floods: FloodProc[] = [];
const udp: UdpSocket[] = [];

beforeAll(async () => {
  pki = await makePki();
  relayId = await pki.identity("relay-x", { roles: ["relay"] });
  relay = await startRelay(pki, relayId, ["--handshake-timeout", "2s"]);
}, 30_000);

afterAll(async () => {
  for (const u of udp) u.close();
  await Promise.all(floods.map((f) => f.stop()));
  await Promise.all(clients.map((c) => c.stop()));
  await relay?.stop();
  pki?.cleanup();
});

async function node(name: string): Promise<RelayClient> {
  const c = nodeClient(pki, relay, await pki.identity(name));
  clients.push(c);
  c.start();
  await connected(c);
  return c;
}

function bind(address: string): Promise<UdpSocket> {
  const s = createSocket("udp4");
  udp.push(s);
  s.on("error", () => {});
  return new Promise((resolve) => s.bind(0, address, () => resolve(s)));
}

describe("relay exhaustion", () => {
  it("TCP: valid nodes keep exchanging frames, and a new one connects, through 2,000 hostile connections; fds and memory bounded", async () => {
    const pid = relay.proc.pid!;
    const a = await node("ex-a");
    const b = await node("ex-b");
    // Traffic both ways every 50 ms for the whole test: every frame must arrive, none late by a second.
    const sent = { ab: 0, ba: 0 };
    const got = { ab: 0, ba: 0 };
    let worstGapMs = 0;
    let lastRx = performance.now();
    b.on("packet", () => { got.ab++; const now = performance.now(); worstGapMs = Math.max(worstGapMs, now - lastRx); lastRx = now; });
    a.on("packet", (from: string) => { if (from === "ex-b") got.ba++; });
    const traffic = setInterval(() => {
      if (a.send("ex-b", randomBytes(200))) sent.ab++;
      if (b.send("ex-a", randomBytes(200))) sent.ba++;
    }, 50);

    const base = { fds: fdCount(pid), rss: rssMiB(pid) };
    const fds = sampleMax(100, () => fdCount(pid));
    const rss = sampleMax(250, () => rssMiB(pid));
    const hello = await captureClientHello();
    const port = relay.info.listen.port;
    const spread = floodProcess({ host: "127.0.0.1", port, count: FLOOD - 200, sources: loopbackSources(150, 300), kinds: ["idle", "partial", "slow", "tls-idle"], clientHello: hello });
    const single = floodProcess({ host: "127.0.0.1", port, count: 200, sources: ["127.0.8.8"], kinds: ["idle"], clientHello: hello });
    floods.push(spread, single);
    const t0 = Date.now();
    const opened = await Promise.all([spread.opened, single.opened]);
    const openedMs = Date.now() - t0;

    // A node that connects while the flood holds its connections.
    const tc = performance.now();
    const c = await node("ex-c");
    const joinMs = performance.now() - tc;
    const hello2 = new Promise<string>((r) => a.on("packet", (from: string, p: Buffer) => { if (from === "ex-c") r(p.toString()); }));
    c.send("ex-a", Buffer.from("joined under load"));
    expect(await hello2).toBe("joined under load");

    // Hold past the 2 s handshake deadline (and the 2 s a refused TLS connection is given to read its ERROR).
    await new Promise((r) => setTimeout(r, 4_000));
    const stillOpen = spread.last().open + single.last().open;
    const st = await relayStatus(relay);
    clearInterval(traffic);
    await new Promise((r) => setTimeout(r, 300)); // the last frames in flight
    const peak = { fds: fds.stop(), rss: rss.stop() };
    await Promise.all([spread.stop(), single.stop()]);

    console.log(`relay exhaustion: ${FLOOD} connections opened in ${openedMs} ms (${opened[0].connected + opened[1].connected} connected), `
      + `${stillOpen} still open after 4 s; fds ${base.fds} -> peak ${peak.fds}; RSS ${base.rss.toFixed(0)} -> peak ${peak.rss.toFixed(0)} MiB; `
      + `new node connected in ${joinMs.toFixed(0)} ms; frames ${got.ab}/${sent.ab} and ${got.ba}/${sent.ba}, worst gap ${worstGapMs.toFixed(0)} ms; `
      + `guard ${JSON.stringify(st.connections.dropped)}, peak pending ${st.connections.peakPending}`);

    expect(got.ab).toBe(sent.ab);
    expect(got.ba).toBe(sent.ba);
    expect(sent.ab).toBeGreaterThan(100);
    expect(worstGapMs).toBeLessThan(1_000);
    expect(joinMs).toBeLessThan(5_000);
    expect(stillOpen).toBe(0);
    expect(st.connections.pending).toBe(0);
    expect(st.connections.peakPending).toBeLessThanOrEqual(st.connections.maxPending);
    expect(peak.fds).toBeLessThan(FD_BOUND);
    expect(peak.rss).toBeLessThan(RSS_BOUND_MIB);
    expect(relay.proc.exitCode).toBe(null);
  }, 60_000);

  it("STUN: a valid client keeps getting answers through thousands of junk, oversized and burst datagrams; one source cannot take the answer budget", async () => {
    const pid = relay.proc.pid!;
    const stunPort = relay.info.stun!.port;
    const base = { fds: fdCount(pid), rss: rssMiB(pid) };
    // The valid client is a real STUN client: it retransmits (250 ms, 500 ms, ...) as RFC 8489 says, within 3 s.
    const valid = await bind("127.0.0.1");
    const client = new StunClient(valid);
    valid.on("message", (m, rinfo) => client.handle(m, rinfo));
    const results: Promise<number | string>[] = [];
    const ask = () => {
      const t = performance.now();
      results.push(client.request({ host: "127.0.0.1", port: stunPort }).then(() => performance.now() - t, (e: Error) => e.message));
    };

    // Many sources: valid requests, junk, truncated, oversized and RFC 3489 requests, 2,000 datagrams.
    const senders = await Promise.all(loopbackSources(20, 600).map(bind));
    let burstAnswers = 0;
    const burst = await bind("127.0.7.7");
    burst.on("message", () => { burstAnswers++; });
    const legacy = Buffer.alloc(20);
    legacy.writeUInt16BE(0x0001, 0);
    randomBytes(16).copy(legacy, 4);
    const shapes = [() => encodeBindingRequest(randomBytes(12)), () => randomBytes(1 + (Math.random() * 200) | 0), () => encodeBindingRequest(randomBytes(12)).subarray(0, 12),
      () => randomBytes(1_400), () => legacy];
    const t0 = performance.now();
    const poll = setInterval(ask, 100);
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 200; i++) senders[i % senders.length].send(shapes[i % shapes.length](), stunPort, "127.0.0.1");
      // One source: 300 valid requests at once, every round (3,000 in all).
      for (let i = 0; i < 300; i++) burst.send(encodeBindingRequest(randomBytes(12)), stunPort, "127.0.0.1");
      await new Promise((r) => setTimeout(r, 100));
    }
    clearInterval(poll);
    const floodMs = performance.now() - t0;
    const answered = await Promise.all(results);
    client.close();
    const st = await relayStatus(relay);
    const failed = answered.filter((r) => typeof r === "string");
    const times = answered.filter((r): r is number => typeof r === "number");
    console.log(`stun exhaustion: 2,000 mixed + 3,000 burst datagrams in ${floodMs.toFixed(0)} ms; valid client ${times.length}/${answered.length} answered, `
      + `slowest ${Math.max(...times).toFixed(0)} ms; `
      + `burst source answered ${burstAnswers}/3000; relay counters requests ${st.counters.stunRequests}, answered ${st.counters.stunAnswered}, dropped ${st.counters.stunDropped}; `
      + `fds ${base.fds} -> ${fdCount(pid)}, RSS ${base.rss.toFixed(0)} -> ${rssMiB(pid).toFixed(0)} MiB`);
    expect(failed).toEqual([]);
    expect(answered.length).toBeGreaterThanOrEqual(8);
    // The burst source gets its per-source allowance (burst plus rate over the ~1.5 s), not 3,000 answers.
    expect(burstAnswers).toBeLessThan(500);
    expect(fdCount(pid)).toBeLessThanOrEqual(base.fds + 2);
    expect(rssMiB(pid)).toBeLessThan(RSS_BOUND_MIB);
    expect(relay.proc.exitCode).toBe(null);
  }, 30_000);
});
