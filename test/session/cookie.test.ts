// The cookie under handshake load, at the device boundary (docs/crypto.md): above the threshold an INIT
// without a valid mac2 gets a 64-byte cookie reply and no public-key work; a legitimate initiator takes the
// cookie, sends the same INIT again with mac2 and completes; a flooder that never answers cookies gets nothing
// else, and the responder holds no state for it.
import { afterEach, beforeAll, afterAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import type { CaMaterial } from "../../src/pki/index.js";
import { COOKIE_REPLY_SIZE, PACKET, signClaim } from "../../src/session/crypto-adapter.js";
import type { Endpoint } from "../../src/addr/endpoint.js";
import { MemoryNet, drops } from "../helpers/devices.js";
import { makeCa, makeLeaf, tempDir, type TestLeaf } from "../helpers/pki.js";
import { eventually } from "../helpers/nodes.js";
import { craftInit } from "../security/node-port-helpers.js";

let tmp: ReturnType<typeof tempDir>;
let ca: CaMaterial;
const leaves: Record<string, TestLeaf> = {};
let net: MemoryNet | undefined;

beforeAll(async () => {
  tmp = tempDir();
  ca = await makeCa(tmp.dir);
  for (const n of ["node-b", "node-c", "node-d"]) leaves[n] = await makeLeaf(ca, n);
});
afterAll(() => tmp.cleanup());
afterEach(() => { net?.stop(); net = undefined; });

describe("cookies under handshake load", () => {
  it("a flood above the threshold gets cookies only; a real peer completes through the cookie", async () => {
    net = new MemoryNet();
    const timers = { handshakeUnderLoadPerS: 20, handshakeTimeoutMs: 2_000 };
    const b = net.add("node-b", ca, leaves["node-b"], { timers });
    const c = net.add("node-c", ca, leaves["node-c"], { timers });
    net.link("node-b", "node-c");
    b.addPeer("node-d"); // a peer of node-b whose key the flood uses (as a thief of node-d's key would)
    b.peers.get("node-c")!.persistent = false; // only node-c initiates
    const flooder: Endpoint = { kind: "udp", host: "127.0.0.9", port: 1999 };
    let ts = Date.now();
    const flood = (n: number) => {
      for (let i = 0; i < n; i++) {
        // valid mac1, and a claim node-d's key really signed with a fresh timestamp: without the cookie, each
        // would cost node-b a Diffie-Hellman and get a RESP
        const e = randomBytes(32);
        const t = ++ts;
        const claim = { name: "node-d", ts: t, sig: signClaim(leaves["node-d"].keys.privateKey, "node-b", e, t) };
        for (const f of craftInit({ ca, responder: "node-b", e, claim })) b.receive(f, flooder);
      }
    };
    b.start();
    flood(100);
    expect(b.handshakeStats().underLoad).toBe(true);
    const toFlooder = net.sent.filter((w) => w.to.kind === "udp" && w.to.host === "127.0.0.9");
    expect(toFlooder.every((w) => w.data[0] === PACKET.COOKIE_REPLY && w.data.length === COOKIE_REPLY_SIZE)).toBe(true);
    expect(toFlooder.length).toBeGreaterThanOrEqual(100 - 20);
    expect(drops(b, "handshake_under_load")).toBeGreaterThanOrEqual(100 - 20);
    expect(b.handshakeStats().pendingResponses).toBeLessThanOrEqual(20); // only those before the threshold
    // node-c, a real peer, while the flood goes on
    const logsBefore = net.logs.length;
    c.start();
    const keepFlooding = setInterval(() => flood(10), 20);
    try {
      expect(await c.ping("node-b", 3_000)).toBeGreaterThan(0);
    } finally {
      clearInterval(keepFlooding);
    }
    expect(net.logs.slice(logsBefore).some((l) => l.obj.device === "node-c" && /cookie received/.test(l.msg ?? ""))).toBe(true);
    expect(net.sent.filter((w) => w.data[0] === PACKET.COOKIE_REPLY && w.to.kind === "udp" && w.to.port === 1001).length).toBeGreaterThanOrEqual(1);
    expect(c.peers.get("node-b")!.state).toBe("connected");
    expect(net.sent.filter((w) => w.to.kind === "udp" && w.to.host === "127.0.0.9" && w.data[0] === PACKET.HANDSHAKE_RESP).length).toBeLessThanOrEqual(20);
    expect(drops(b, "internal_error")).toBe(0);
  });
});
