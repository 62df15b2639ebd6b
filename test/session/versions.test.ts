// Versions between two session devices (src/wire/protocol.ts, invariant 10): each side learns what the other
// announced in its handshake, and an inner message of a kind nobody here handles (a newer peer's) is counted and
// logged once with the peer's version, not dropped in silence.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { CaMaterial } from "../../src/pki/index.js";
import { MemoryNet, drops } from "../helpers/devices.js";
import { makeCa, makeLeaf, tempDir, type TestLeaf } from "../helpers/pki.js";
import { eventually } from "../helpers/nodes.js";
import { PROTOCOL_VERSION } from "../../src/wire/protocol.js";
import type { InnerType } from "../../src/session/crypto-adapter.js";

let tmp: ReturnType<typeof tempDir>;
let ca: CaMaterial;
let leafA: TestLeaf;
let leafB: TestLeaf;
let net: MemoryNet;

beforeAll(async () => {
  tmp = tempDir();
  ca = await makeCa(tmp.dir);
  leafA = await makeLeaf(ca, "node-a");
  leafB = await makeLeaf(ca, "node-b");
});
afterAll(() => tmp.cleanup());
afterEach(() => net?.stop());

describe("versions between peers", () => {
  it("each side learns the protocol and software version the other announced in its handshake", async () => {
    net = new MemoryNet();
    const a = net.add("node-a", ca, leafA, { software: "9.8.7" });
    const b = net.add("node-b", ca, leafB, { software: "1.2.3-rc.1" });
    net.link("node-a", "node-b");
    a.start(); b.start();
    await a.ping("node-b");
    expect(a.peers.get("node-b")!.version).toEqual({ protocol: PROTOCOL_VERSION, software: "1.2.3-rc.1" });
    expect(b.peers.get("node-a")!.version).toEqual({ protocol: PROTOCOL_VERSION, software: "9.8.7" });
    const established = net.logs.find((l) => l.obj.device === "node-b" && l.msg === "session established");
    expect(established?.obj.peerVersion).toBe(`protocol ${PROTOCOL_VERSION}, ember 9.8.7`);
  });

  it("an inner kind nobody handles is counted each time and logged once, naming the peer's version", async () => {
    net = new MemoryNet();
    const a = net.add("node-a", ca, leafA, { software: "0.3.0" });
    const b = net.add("node-b", ca, leafB);
    net.link("node-a", "node-b");
    a.start(); b.start();
    await a.ping("node-b");
    const newerKind = 0x3e as InnerType;
    for (let i = 0; i < 3; i++) a.sendTo("node-b", newerKind, Buffer.from("from the future"));
    await eventually(() => drops(b, "unhandled_inner_0x3e") === 3, 5_000, "three unknown inner messages counted");
    const lines = net.logs.filter((l) => l.obj.device === "node-b" && l.level === "warn" && l.obj.kind === "0x3e");
    expect(lines).toHaveLength(1);
    expect(lines[0].obj).toMatchObject({ peer: "node-a", peerVersion: `protocol ${PROTOCOL_VERSION}, ember 0.3.0`, count: 1 });
    expect(lines[0].msg).toMatch(/does not know/);
    expect(b.unknownInner.byKind.get("0x3e")).toBe(3);
    // The session is unharmed: the next ping still answers.
    await a.ping("node-b");
  });
});
