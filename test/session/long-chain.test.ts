// Issue 14 item 8: certificate chains longer than one datagram. A chain with an extra intermediate CA and
// a leaf carrying many groups (well over 1.4 KB) must establish a session, and no datagram of the handshake
// may exceed a 1280-byte IP packet on a direct path (the node's default path MTU): handshake messages are
// fragmented and reassembled. In memory (every datagram measured) and with real daemons (nftables counts
// every IP packet the two nodes send, by size).
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { KeyUsage } from "../../src/pki/certificate.js";
import { buildCertificate } from "../../src/pki/build.js";
import { generateEd25519, parseCertificate, toPem, type CaMaterial } from "../../src/pki/index.js";
import { DEFAULT_PATH_MTU, IPV4_UDP_OVERHEAD, IPV6_UDP_OVERHEAD } from "../../src/wire/constants.js";
import { MemoryNet, drops } from "../helpers/devices.js";
import { craftLeaf, tempDir, type TestLeaf } from "../helpers/pki.js";
import { eventually, freeUdpPort, startNode, writeCreds, type NodeProc } from "../helpers/nodes.js";
import { UdpCapture } from "../helpers/udp-capture.js";

const TD = "acme.internal";
const GROUPS = Array.from({ length: 60 }, (_, i) => `team-${String(i).padStart(2, "0")}-platform-eng`);

interface DeepCa { ca: CaMaterial; chain: Uint8Array[] }

/** root (path length 2) -> cluster CA (1) -> region CA (0) -> leaves; the bundle holds all three. */
async function deepCa(): Promise<DeepCa> {
  const now = Date.now();
  const nb = new Date(now - 60_000);
  const na = new Date(now + 86_400_000);
  const uris = [`spiffe://${TD}`];
  const ku = KeyUsage.keyCertSign | KeyUsage.cRLSign;
  const rootKeys = generateEd25519();
  const rootDer = await buildCertificate({ commonName: "Deep Root", publicKey: rootKeys.publicKey, signer: rootKeys, notBefore: nb, notAfter: na, isCa: true, pathLength: 2, keyUsage: ku, uris });
  const midKeys = generateEd25519();
  const midDer = await buildCertificate({ commonName: "Deep Cluster CA", publicKey: midKeys.publicKey, issuerDer: rootDer, signer: rootKeys, notBefore: nb, notAfter: na, isCa: true, pathLength: 1, keyUsage: ku, uris });
  const lowKeys = generateEd25519();
  const lowDer = await buildCertificate({ commonName: "Deep Region CA", publicKey: lowKeys.publicKey, issuerDer: midDer, signer: midKeys, notBefore: nb, notAfter: na, isCa: true, pathLength: 0, keyUsage: ku, uris });
  const bundlePem = [rootDer, midDer, lowDer].map((d) => toPem(d, "CERTIFICATE")).join("");
  // craftLeaf signs with the CaMaterial's "intermediate": here the lowest CA.
  const ca = { dir: "", trustDomain: TD, rootDer, intermediateDer: lowDer, intermediateKeys: lowKeys, bundlePem } as CaMaterial;
  return { ca, chain: [midDer, lowDer] };
}

async function bigLeaf(d: DeepCa, name: string): Promise<TestLeaf> {
  return craftLeaf(d.ca, { name, grants: { tenant: "acme", groups: GROUPS, roles: [] } });
}

let tmp: ReturnType<typeof tempDir>;
let deep: DeepCa;
let leafA: TestLeaf;
let leafB: TestLeaf;
let net: MemoryNet | undefined;
const nodes: NodeProc[] = [];

beforeAll(async () => {
  tmp = tempDir("ember-chain-");
  deep = await deepCa();
  leafA = await bigLeaf(deep, "node-a");
  leafB = await bigLeaf(deep, "node-b");
}, 30_000);
afterEach(async () => {
  net?.stop();
  net = undefined;
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});
afterAll(() => tmp.cleanup());

describe("long certificate chains", () => {
  it("the test chain really is long: > 1.4 KB leaf, two intermediates", () => {
    expect(leafA.der.length).toBeGreaterThan(1_400);
    const chainBytes = leafA.der.length + deep.chain.reduce((n, c) => n + c.length, 0);
    expect(chainBytes).toBeGreaterThan(2_000);
    expect(parseCertificate(leafA.der).grants).toMatchObject({ groups: GROUPS });
  });

  it("in memory: the session comes up and every datagram fits a 1280-byte IPv6 packet", async () => {
    net = new MemoryNet();
    const a = net.add("node-a", deep.ca, leafA, { chain: [leafA.der, ...deep.chain], timers: { handshakeTimeoutMs: 500 } });
    const b = net.add("node-b", deep.ca, leafB, { chain: [leafB.der, ...deep.chain], timers: { handshakeTimeoutMs: 500 } });
    net.link("node-a", "node-b");
    a.start(); b.start();
    expect(await a.ping("node-b", 3_000)).toBeGreaterThan(0);
    expect(await b.ping("node-a", 3_000)).toBeGreaterThan(0);
    expect(a.peers.get("node-b")!.identity!.groups).toEqual(GROUPS);
    const largest = Math.max(...net.sent.map((w) => w.data.length));
    expect(largest).toBeLessThanOrEqual(DEFAULT_PATH_MTU - IPV6_UDP_OVERHEAD);
    // the handshake really was split: more handshake datagrams than the three messages of one handshake each way
    expect(net.sent.filter((w) => w.data[0] !== 0x14).length).toBeGreaterThan(3);
    for (const d of [a, b]) expect(drops(d, "internal_error")).toBe(0);
  });

  it("two daemons: the session comes up and no IP packet either sends exceeds 1280 bytes", async () => {
    for (const [n, leaf] of [["node-a", leafA], ["node-b", leafB]] as const) writeCreds(join(tmp.dir, n), deep.ca, leaf);
    const [pa, pb] = [await freeUdpPort(), await freeUdpPort()];
    const cap = new UdpCapture([
      { name: "all", match: `ip saddr 127.0.0.1 udp sport { ${pa}, ${pb} }` },
      { name: "over_1280", match: `ip saddr 127.0.0.1 udp sport { ${pa}, ${pb} } ip length > ${DEFAULT_PATH_MTU}` },
      { name: "over_1200", match: `ip saddr 127.0.0.1 udp sport { ${pa}, ${pb} } ip length > 1200` },
    ]);
    try {
      const a = await startNode({ name: "node-a", dir: join(tmp.dir, "node-a"), port: pa, peers: { "node-b": pb } });
      nodes.push(a);
      const b = await startNode({ name: "node-b", dir: join(tmp.dir, "node-b"), port: pb, peers: { "node-a": pa } });
      nodes.push(b);
      const r = await eventually(() => a.request("ping", { name: "node-b", timeoutMs: 1_000 }).catch(() => undefined), 15_000, "ping over the long chain");
      expect(r.rttMs).toBeGreaterThan(0);
      expect((await b.request("ping", { name: "node-a" })).rttMs).toBeGreaterThan(0);
      const peers = await a.request("peers");
      expect(peers[0]).toMatchObject({ name: "node-b", state: "connected", identity: `spiffe://${TD}/acme/node-b` });
      const c = cap.counters();
      expect(c.all.packets).toBeGreaterThan(4);
      expect(c.over_1280.packets, JSON.stringify(c)).toBe(0);
      // handshake datagrams did come close to the limit: the fragments are full-size, not tiny
      expect(c.over_1200.packets).toBeGreaterThan(0);
      expect(IPV4_UDP_OVERHEAD).toBe(28);
    } finally {
      cap.close();
    }
  }, 40_000);
});
