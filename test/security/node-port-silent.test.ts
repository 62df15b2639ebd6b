// Issue 14 item 6, invariant 7: a node's UDP port says nothing to a sender that is not in its peer map. A
// stranger holding a valid certificate of the same CA (a real `ember up` daemon that lists the node as its
// peer), the same stranger forging initiations in another node's name, and a scanner with no certificate at
// all send handshakes and junk to node-b: nftables counts every datagram node-b sends, by destination, and
// none goes to any of them; node-b counts each kind in its drop counters (`ember status --json`), and its
// session with its real peer node-a keeps working.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createSocket, type Socket } from "node:dgram";
import { join } from "node:path";
import type { CaMaterial } from "../../src/pki/index.js";
import { makeCa, makeLeaf, tempDir, type TestLeaf } from "../helpers/pki.js";
import { eventually, freeUdpPort, startNode, writeCreds, type NodeProc } from "../helpers/nodes.js";
import { ember } from "../helpers/cli.js";
import { UdpCapture } from "../helpers/udp-capture.js";
import { scanDatagrams, forgedInits } from "./node-port-helpers.js";

let tmp: ReturnType<typeof tempDir>;
let ca: CaMaterial;
let strangerLeaf: TestLeaf;
const nodes: NodeProc[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  tmp = tempDir("ember-silent-");
  ca = await makeCa(tmp.dir);
  for (const n of ["node-a", "node-b"]) writeCreds(join(tmp.dir, n), ca, await makeLeaf(ca, n));
  strangerLeaf = await makeLeaf(ca, "stranger");
  writeCreds(join(tmp.dir, "stranger"), ca, strangerLeaf);
}, 30_000);
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
  for (const s of sockets.splice(0)) s.close();
});
afterAll(() => tmp.cleanup());

async function udpSocket(): Promise<Socket> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  sockets.push(s);
  return s;
}

describe("the node's UDP port is silent to strangers", () => {
  it("no datagram to a same-CA stranger, a forger or a scanner without a certificate; each is counted", async () => {
    const [pa, pb, ps] = [await freeUdpPort(), await freeUdpPort(), await freeUdpPort()];
    const scanner = await udpSocket();
    const forger = await udpSocket();
    const received = { scanner: 0, forger: 0 };
    scanner.on("message", () => received.scanner++);
    forger.on("message", () => received.forger++);
    const cap = new UdpCapture([
      { name: "to_stranger", match: `udp sport ${pb} udp dport ${ps}` },
      { name: "to_scanner", match: `udp sport ${pb} udp dport ${scanner.address().port}` },
      { name: "to_forger", match: `udp sport ${pb} udp dport ${forger.address().port}` },
      { name: "to_node_a", match: `udp sport ${pb} udp dport ${pa}` },
      { name: "from_b", match: `udp sport ${pb}` },
    ]);
    try {
      const timers = { handshakeTimeoutMs: 300, handshakeBackoffMaxMs: 600 };
      const a = await startNode({ name: "node-a", dir: join(tmp.dir, "node-a"), port: pa, peers: { "node-b": pb }, timers });
      nodes.push(a);
      const b = await startNode({ name: "node-b", dir: join(tmp.dir, "node-b"), port: pb, peers: { "node-a": pa }, timers });
      nodes.push(b);
      await eventually(() => a.request("ping", { name: "node-b", timeoutMs: 1_000 }).catch(() => undefined), 10_000, "a <-> b");
      // The stranger: a valid certificate of the same CA, node-b configured as its peer; node-b does not list it.
      const stranger = await startNode({ name: "stranger", dir: join(tmp.dir, "stranger"), port: ps, peers: { "node-b": pb }, timers });
      nodes.push(stranger);
      // The scanner: no certificate; everything a port scan or a protocol-aware prober would send.
      for (const d of scanDatagrams()) scanner.send(d, pb, "127.0.0.1");
      // The forger: the stranger's key, initiations claiming to be node-a (signed by the wrong key) and in its own name.
      for (const d of forgedInits({ ca, leaf: strangerLeaf, responder: "node-b" })) forger.send(d, pb, "127.0.0.1");
      await new Promise((r) => setTimeout(r, 2_500)); // several handshake attempts of the stranger (300 ms backoff up to 600 ms)
      expect((await a.request("ping", { name: "node-b", timeoutMs: 1_000 })).rttMs).toBeGreaterThan(0);
      const c = cap.counters();
      expect(c.to_stranger.packets, JSON.stringify(c)).toBe(0);
      expect(c.to_scanner.packets, JSON.stringify(c)).toBe(0);
      expect(c.to_forger.packets, JSON.stringify(c)).toBe(0);
      expect(c.from_b.packets).toBe(c.to_node_a.packets); // everything node-b sent went to its peer
      expect(c.to_node_a.packets).toBeGreaterThan(0);
      expect(received).toEqual({ scanner: 0, forger: 0 });
      const sp = await stranger.request("peers");
      expect(sp[0]).toMatchObject({ name: "node-b", state: "no_answer", handshakes: 0 });
      const st = JSON.parse(ember(["status", "--state", b.dir, "--json"]).stdout) as { drops: Record<string, number> };
      // the stranger's initiations: right mac1 (it knows node-b's name and the CA), refused for who it is
      expect(st.drops.handshake_unknown_peer ?? 0).toBeGreaterThanOrEqual(2 + 3);
      // the scanner's: wrong mac1, or junk refused by the framing
      expect(st.drops.handshake_bad_mac1 ?? 0).toBeGreaterThanOrEqual(5);
      expect((st.drops.handshake_bad_fragment ?? 0) + (st.drops.handshake_truncated ?? 0) + (st.drops.unknown_type ?? 0)).toBeGreaterThan(10);
      // the forger's: node-a's name with the stranger's certificate, node-a's name signed by the wrong key,
      // its own name (counted with the stranger daemon's), a claim sealed for another node
      expect(st.drops.handshake_claim_mismatch ?? 0).toBe(3);
      expect(st.drops.handshake_bad_claim_signature ?? 0).toBe(3);
      expect(st.drops.handshake_bad_claim ?? 0).toBe(3);
      expect(st.drops.internal_error ?? 0).toBe(0);
    } finally {
      cap.close();
    }
  }, 60_000);
});
