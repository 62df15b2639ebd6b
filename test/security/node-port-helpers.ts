// Datagrams for the node-port tests: what a scanner without credentials sends, and initiations forged by a
// stranger who holds a certificate of the mesh's CA.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { CaMaterial } from "../../src/pki/index.js";
import {
  PACKET, encodeHandshake, encodeInitMessage, mac1Key, responderKey, sealClaim, signClaim, writeInitMacs, type InitClaim,
} from "../../src/session/crypto-adapter.js";
import { afterAll, afterEach, beforeAll } from "vitest";
import { makeCa, makeLeaf, tempDir, type TestLeaf } from "../helpers/pki.js";
import { writeCreds, type NodeProc } from "../helpers/nodes.js";
import type { InitFloodOptions } from "./init-flood-child.js";

/** A scan: junk of every EmberNet type, an old-style unauthenticated INIT, random indexes, a STUN request. */
export function scanDatagrams(): Buffer[] {
  const out: Buffer[] = [];
  const init = Buffer.alloc(400);
  init[0] = 0x11;
  init.writeUInt32LE(7, 4);
  randomBytes(32).copy(init, 8);
  out.push(init); // the pre-mac1 INIT layout: e and padding
  const init2 = Buffer.from(init);
  randomBytes(32).copy(init2, init2.length - 32); // random "mac1/mac2"
  out.push(init2);
  for (let i = 0; i < 5; i++) {
    const init3 = Buffer.from(init2);
    init3[2] = 0; init3[3] = 1; // one fragment of one, well framed, junk macs
    randomBytes(200).copy(init3, 8);
    randomBytes(32).copy(init3, init3.length - 32);
    out.push(init3);
  }
  for (let t = 0x10; t <= 0x1f; t++) {
    for (const len of [4, 16, 48, 96, 400, 1200]) {
      const d = randomBytes(len);
      d[0] = t;
      out.push(d);
    }
  }
  const stun = Buffer.alloc(20);
  stun.writeUInt16BE(0x0001, 0);
  stun.writeUInt32BE(0x2112a442, 4);
  randomBytes(12).copy(stun, 8);
  out.push(stun);
  return out;
}

/** The mac1 key material of a node: what any member of the mesh can compute from the root CA and the node's name. */
export function responderKeyOf(ca: CaMaterial, name: string): Uint8Array {
  return responderKey(createHash("sha256").update(ca.rootDer).digest(), name);
}

/** One INIT (all its fragments) with a claim of our choosing, correct mac1 for `responder`, optional mac2. */
export function craftInit(o: { ca: CaMaterial; responder: string; claim: InitClaim; e?: Uint8Array; senderIndex?: number; cookie?: Uint8Array; claimKeyFrom?: string }): Buffer[] {
  const e = o.e ?? randomBytes(32);
  const rk = responderKeyOf(o.ca, o.responder);
  const sealed = sealClaim(o.claimKeyFrom ? responderKeyOf(o.ca, o.claimKeyFrom) : rk, e, o.claim);
  const frags = encodeHandshake(PACKET.HANDSHAKE_INIT, o.senderIndex ?? randomBytes(4).readUInt32LE(0), undefined, encodeInitMessage(e, sealed));
  for (const f of frags) writeInitMacs(f, mac1Key(rk), o.cookie);
  return frags;
}

/** A claim signed with `leaf`'s key, in any name. */
export function claimBy(leaf: TestLeaf, name: string, responder: string, e: Uint8Array, chain?: Uint8Array[]): InitClaim {
  const ts = Date.now();
  return { name, ts, sig: signClaim(leaf.keys.privateKey, responder, e, ts), chain };
}

/**
 * Initiations forged with a stranger's certificate key, all with a valid mac1 (the stranger knows the root CA
 * and the responder's name): claiming node-a with the stranger's certificate, claiming node-a without a
 * certificate (signature by the wrong key), in its own name, and a claim sealed for another node.
 */
export function forgedInits(o: { ca: CaMaterial; leaf: TestLeaf; responder: string }): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < 3; i++) {
    const e = randomBytes(32);
    out.push(...craftInit({ ca: o.ca, responder: o.responder, e, claim: claimBy(o.leaf, "node-a", o.responder, e, [o.leaf.der]) }));
    const e2 = randomBytes(32);
    out.push(...craftInit({ ca: o.ca, responder: o.responder, e: e2, claim: claimBy(o.leaf, "node-a", o.responder, e2) }));
    const e3 = randomBytes(32);
    out.push(...craftInit({ ca: o.ca, responder: o.responder, e: e3, claim: claimBy(o.leaf, "stranger", o.responder, e3, [o.leaf.der]) }));
    const e4 = randomBytes(32);
    out.push(...craftInit({ ca: o.ca, responder: o.responder, e: e4, claim: claimBy(o.leaf, "node-a", o.responder, e4), claimKeyFrom: "node-c" }));
  }
  return out;
}

/** CPU time (user + system) of a process in ms, from /proc/PID/stat (clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

export interface InitFlood {
  child: ChildProcess;
  /** Cookies the helper took (cookieAware), one per source address. */
  cookies: number;
  go(): void;
  done: Promise<{ sent: number; sendMs: number; received: Record<string, number> }>;
}

/** Starts the flood helper (init-flood-child.ts; pushed to `children` for the caller to end) and waits until it has crafted every datagram. */
export async function initFlood(children: ChildProcess[], o: InitFloodOptions): Promise<InitFlood> {
  const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "init-flood-child.ts"), JSON.stringify(o)],
    { cwd: join(import.meta.dirname, "..", ".."), stdio: ["pipe", "pipe", "inherit"] });
  children.push(child);
  const lines = createInterface({ input: child.stdout! });
  let doneResolve!: (x: any) => void;
  const done = new Promise<any>((r) => { doneResolve = r; });
  const ready = new Promise<number>((resolve, reject) => {
    lines.on("line", (l) => {
      const m = JSON.parse(l);
      if (m.event === "ready") resolve(m.cookies);
      if (m.event === "done") doneResolve(m);
    });
    child.once("exit", (code) => reject(new Error(`flood helper exited ${code}`)));
  });
  const cookies = await ready;
  return { child, cookies, go: () => child.stdin!.write("go\n"), done };
}

export interface NodeLab {
  /** The lab's temporary directory: one credentials directory per name below it. */
  readonly dir: string;
  readonly ca: CaMaterial;
  readonly leaves: Record<string, TestLeaf>;
  /** Daemons and helper processes started by a test: ended after each test. */
  readonly nodes: NodeProc[];
  readonly children: ChildProcess[];
}

/**
 * A node lab for one test file: a CA and, for each name, a leaf and its credentials on disk (made before the
 * tests); the daemons and helpers a test starts are ended after it, and the directory removed at the end.
 */
export function nodeLab(prefix: string, names: string[]): NodeLab {
  let tmp: ReturnType<typeof tempDir> | undefined;
  let ca: CaMaterial | undefined;
  const lab = {
    get dir() { return tmp!.dir; },
    get ca() { return ca!; },
    leaves: {} as Record<string, TestLeaf>, nodes: [] as NodeProc[], children: [] as ChildProcess[],
  };
  beforeAll(async () => {
    tmp = tempDir(prefix);
    ca = await makeCa(tmp.dir);
    for (const n of names) {
      lab.leaves[n] = await makeLeaf(ca, n);
      writeCreds(join(tmp.dir, n), ca, lab.leaves[n]);
    }
  }, 30_000);
  afterEach(async () => {
    for (const c of lab.children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
    await Promise.all(lab.nodes.splice(0).map((n) => n.stop()));
  });
  afterAll(() => tmp?.cleanup());
  return lab;
}
