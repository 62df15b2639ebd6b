// Issue 28, fairness of the relay's two listeners. TCP: an attacker on 127.0.0.2 holds 520 connections without
// a certificate (bare TCP and TLS without a client certificate, each reopened as the relay closes it), while
// nodes on 127.0.0.3 connect and exchange frames within the stated latency. STUN: the attacker sends 6,000
// binding requests as fast as it can, while a real STUN client on 127.0.0.3 keeps getting every answer.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import type { RelayClient } from "../../src/nat/relay-client.js";
import { encodeBindingRequest, StunClient } from "../../src/nat/stun.js";
import { makePki, nodeClient, relayStatus, startRelay, waitFor, type IdentityFiles, type Pki, type RelayProc } from "../relay/helpers.js";
import { ATTACKER, LEGIT, probeSeries, RefilledHold } from "./fairness.js";

/** Stated latencies: a node's connect (TLS, certificate check, welcome) and a frame's round trip; a STUN answer. */
const CONNECT_BOUND_MS = 3_000;
const FRAME_BOUND_MS = 1_000;
const STUN_BOUND_MS = 1_000;

let pki: Pki;
let relayId: IdentityFiles;
let relay: RelayProc;
const clients: RelayClient[] = [];
const holds: RefilledHold[] = [];
const udp: UdpSocket[] = [];

beforeAll(async () => {
  pki = await makePki();
  relayId = await pki.identity("relay-f", { roles: ["relay"] });
  relay = await startRelay(pki, relayId);
}, 30_000);

afterAll(async () => {
  for (const h of holds) h.stop();
  for (const u of udp) u.close();
  await Promise.all(clients.map((c) => c.stop()));
  await relay?.stop();
  pki?.cleanup();
});

async function legitNode(name: string): Promise<{ c: RelayClient; ms: number }> {
  const c = nodeClient(pki, relay, await pki.identity(name), { localAddress: LEGIT });
  clients.push(c);
  const t0 = performance.now();
  c.start();
  await waitFor(() => c.connected, `${name} to connect`, 10_000);
  return { c, ms: Math.round(performance.now() - t0) };
}

function bind(address: string): Promise<UdpSocket> {
  const s = createSocket("udp4");
  udp.push(s);
  s.on("error", () => {});
  return new Promise((resolve) => s.bind(0, address, () => resolve(s)));
}

describe("fairness: relay (issue 28)", () => {
  it("TCP: 520 connections without a certificate from one address leave nodes on another connecting and relaying", async () => {
    for (const tls of [false, true]) {
      const h = new RefilledHold({ host: "127.0.0.1", port: relay.info.listen.port, localAddress: ATTACKER, count: 260, tls });
      holds.push(h);
      h.start();
    }
    await new Promise((r) => setTimeout(r, 1_500));
    const a = await legitNode("fair-a");
    const b = await legitNode("fair-b");
    let n = 0;
    const rtt = await probeSeries(10, 50, async () => {
      const tag = `ping-${n++}`;
      const got = new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), FRAME_BOUND_MS * 2);
        const on = (_from: string, p: Buffer) => { if (p.toString() === tag) { clearTimeout(t); b.c.off("packet", on); resolve(true); } };
        b.c.on("packet", on);
      });
      return a.c.send("fair-b", Buffer.from(tag)) && await got;
    });
    // A third node connects in the middle of it too.
    const c = await legitNode("fair-c");
    const st = await relayStatus(relay);
    const held = holds.reduce((s, h) => s + h.open, 0);
    for (const h of holds) h.stop();
    console.log(`fairness relay TCP: attacker has ${held} sockets open or opening (relay closed ${holds.reduce((s, h) => s + h.closedByServer, 0)}, per-source limit ${st.connections.maxPendingPerSource}); `
      + `legit connects ${a.ms}, ${b.ms}, ${c.ms} ms; frames ${rtt.ok}/10, slowest ${rtt.slowestMs} ms; refused ${JSON.stringify(st.counters.refused)}`);
    expect(rtt.failed).toEqual([]);
    expect(Math.max(a.ms, b.ms, c.ms)).toBeLessThan(CONNECT_BOUND_MS);
    expect(rtt.slowestMs).toBeLessThan(FRAME_BOUND_MS);
    expect(st.counters.refused.per_source_limit).toBeGreaterThan(0);
  }, 60_000);

  it("STUN: 6,000 requests from one address leave a client on another answered every time", async () => {
    const stunPort = relay.info.stun!.port;
    const attacker = await bind(ATTACKER);
    let attackerAnswers = 0;
    attacker.on("message", () => { attackerAnswers++; });
    const valid = await bind(LEGIT);
    const client = new StunClient(valid);
    valid.on("message", (m, rinfo) => client.handle(m, rinfo));
    let sent = 0;
    const flood = setInterval(() => {
      for (let i = 0; i < 300 && sent < 6_000; i++, sent++) attacker.send(encodeBindingRequest(randomBytes(12)), stunPort, "127.0.0.1");
    }, 50);
    const r = await probeSeries(10, 150, async () => {
      await client.request({ host: "127.0.0.1", port: stunPort });
      return true;
    });
    clearInterval(flood);
    client.close();
    console.log(`fairness relay STUN: attacker sent ${sent}, answered ${attackerAnswers}; legit ${r.ok}/10, latencies ${r.latenciesMs.join(",")} ms`);
    expect(r.failed).toEqual([]);
    expect(r.slowestMs).toBeLessThan(STUN_BOUND_MS);
    expect(attackerAnswers).toBeLessThan(sent / 2);
  }, 30_000);
});
