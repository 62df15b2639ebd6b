// Issue 14 item 7: a peer's state says what really happened. A node whose handshake the other side refused
// (or never answered) must not report the peer as "connected": `ember ping` and `ember peers` say
// "no_answer" or "refused" (with the reason where this side knows it), and "connected" only after the
// peer confirmed the session. Real daemons on loopback, through the CLI.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { toPem, type CaMaterial } from "../../src/pki/index.js";
import { makeCa, makeLeaf, tempDir } from "../helpers/pki.js";
import { eventually, freeUdpPort, startNode, writeCreds, type NodeProc } from "../helpers/nodes.js";
import { ember } from "../helpers/cli.js";

let tmp: ReturnType<typeof tempDir>;
let ca: CaMaterial;
let foreign: CaMaterial;
const nodes: NodeProc[] = [];
const TIMERS = { handshakeTimeoutMs: 400, handshakeBackoffMaxMs: 800 };

beforeAll(async () => {
  tmp = tempDir("ember-state-");
  ca = await makeCa(tmp.dir);
  foreign = await makeCa(tmp.dir);
  for (const n of ["node-a", "node-b"]) writeCreds(join(tmp.dir, n), ca, await makeLeaf(ca, n));
  // node-x: a certificate of another CA. Its own bundle trusts both CAs (so it accepts node-b), in an order
  // where the one intermediate the node presents is its own: root X, intermediate X, root of node-b's CA.
  const dirX = join(tmp.dir, "node-x");
  writeCreds(dirX, foreign, await makeLeaf(foreign, "node-a"));
  writeFileSync(join(dirX, "bundle.pem"), toPem(foreign.rootDer, "CERTIFICATE") + toPem(foreign.intermediateDer, "CERTIFICATE") + toPem(ca.rootDer, "CERTIFICATE"));
}, 30_000);
afterEach(async () => { await Promise.all(nodes.splice(0).map((n) => n.stop())); });
afterAll(() => tmp.cleanup());

function pingFails(dir: string, name: string): string {
  const r = ember(["ping", name, "--state", dir, "-c", "1", "--timeout", "1500"]);
  expect(r.code, r.stdout).toBe(1);
  return r.stderr;
}

async function peerState(node: NodeProc, name: string): Promise<string> {
  return ((await node.request("peers")) as { name: string; state: string }[]).find((p) => p.name === name)!.state;
}


describe("peer state after a refused handshake", () => {
  it("a responder that does not know us: the initiator says no answer, never connected", async () => {
    const [pa, pb] = [await freeUdpPort(), await freeUdpPort()];
    const b = await startNode({ name: "node-b", dir: join(tmp.dir, "node-b"), port: pb, peers: {}, timers: TIMERS });
    nodes.push(b);
    const a = await startNode({ name: "node-a", dir: join(tmp.dir, "node-a"), port: pa, peers: { "node-b": pb }, timers: TIMERS });
    nodes.push(a);
    // While the first attempt runs the peer is "handshaking"; once attempts time out unanswered, "no_answer".
    const early = await a.request("ping", { name: "node-b", timeoutMs: 300 }).catch((e: Error) => e.message);
    expect(early).toMatch(/no pong from node-b within 300 ms \(state: (handshaking|no_answer)/);
    await eventually(async () => (await peerState(a, "node-b")) === "no_answer", 8_000, "node-a reports node-b as no_answer");
    const err = pingFails(a.dir, "node-b");
    expect(err).not.toMatch(/state: connected/);
    expect(err).toMatch(/no pong from node-b within 1500 ms \(state: no_answer \(\d+ handshake attempts? unanswered/);
    expect(ember(["peers", "--state", a.dir]).stdout).toMatch(/node-b\s+-\s+no_answer/);
  }, 40_000);

  it("a peer whose certificate this side refuses is reported as refused, with the reason", async () => {
    // node-x presents a certificate of another CA under the name node-a. node-b refuses it (unknown_ca); node-x
    // trusts node-b's CA, so from its side node-b's certificate is fine, but node-b never confirms a session.
    const [px, pb] = [await freeUdpPort(), await freeUdpPort()];
    const b = await startNode({ name: "node-b", dir: join(tmp.dir, "node-b"), port: pb, peers: { "node-a": px }, timers: TIMERS });
    nodes.push(b);
    const x = await startNode({ name: "node-a", dir: join(tmp.dir, "node-x"), port: px, peers: { "node-b": pb }, timers: TIMERS });
    nodes.push(x);
    await eventually(async () => (await peerState(b, "node-a")) === "refused", 8_000, "node-b reports node-a as refused");
    expect(pingFails(b.dir, "node-a")).toMatch(/state: refused \(unknown_ca/);
    expect(ember(["peers", "--state", b.dir]).stdout).toMatch(/node-a\s+-\s+refused/);
    // The node that was refused never hears why (the other side stays silent), and says exactly that.
    await eventually(async () => (await peerState(x, "node-b")) === "no_answer", 8_000, "node-x reports node-b as no_answer");
    const err = await x.request("ping", { name: "node-b", timeoutMs: 500 }).catch((e: Error) => e.message);
    expect(err).toMatch(/state: no_answer/);
  }, 40_000);
});
