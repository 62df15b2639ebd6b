// Data-plane benchmark (one core per process). Prints, for 64- and 1400-byte payloads:
//   1. ChaCha20-Poly1305 seal/open: node:crypto next to @noble/ciphers, through the same interface
//   2. the full packet path (frame + seal; shape check + index lookup + replay check + open + update),
//      and its ratio to the faster primitive from 1
//   3. full EmberNet handshakes per second, certificate verification included (both sides in this process)
//   4. two processes over loopback UDP: EmberNet-encrypted packets next to plain UDP
//   npm run bench:dataplane            # everything, a few seconds per figure
//   npx tsx bench/dataplane.ts 1 2     # chosen sections only
import { fork } from "node:child_process";
import { createSocket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { nobleAead, nodeAead, type AeadBackend } from "../src/crypto/aead.js";
import { ReplayWindow, TransportCipher } from "../src/crypto/transport.js";
import { Initiator, Responder, generateStaticKeyPair, type LocalIdentity } from "../src/crypto/handshake.js";
import { dataCiphertext, isDataPacket, readCounter, readReceiverIndex, writeDataHeader } from "../src/wire/data.js";
import { DATA_HEADER_SIZE, MAX_DATAGRAM, TAG_SIZE } from "../src/wire/constants.js";
import { Verifier, generateEd25519, initCa, issueLeaf } from "../src/pki/index.js";

const SIZES = [64, 1400];
const RUN_MS = Number(process.env.BENCH_MS ?? 1500);
const UDP_MS = Number(process.env.BENCH_UDP_MS ?? 2500);
const sections = new Set(process.argv.slice(2).map(Number).filter(Boolean));
const want = (n: number) => sections.size === 0 || sections.has(n);

/**
 * Runs fn in batches for about ms milliseconds (and at most maxOps); returns operations per CPU second
 * of this process (user + system). Other work on the machine steals wall time, not CPU time, so this
 * is the "one core" figure; the share of a core actually obtained is tracked in `cpuShare`.
 */
let cpuShare = { cpu: 0, wall: 0 };
function rate(fn: (i: number) => void, ms = RUN_MS, maxOps = 50_000_000): number {
  for (let i = 0; i < 2000; i++) fn(i); // warm up the JIT
  let n = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms && n < maxOps) {
    for (let i = 0; i < 256; i++) fn(n++);
    t = performance.now();
  }
  const c = process.cpuUsage(c0);
  const cpuS = (c.user + c.system) / 1e6;
  cpuShare.cpu += cpuS;
  cpuShare.wall += (t - t0) / 1000;
  return n / cpuS;
}

const fmt = (x: number) => x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : `${(x / 1e3).toFixed(1)} k`;
const gbps = (pps: number, size: number) => ((pps * size * 8) / 1e9).toFixed(2);
const row = (cells: (string | number)[], widths: number[]) => cells.map((c, i) => String(c).padEnd(widths[i])).join(" ");

// ---------------------------------------------------------------- 1. primitives
const key = randomBytes(32);
const best = new Map<number, { seal: number; open: number; sealName: string; openName: string }>();

function primitive(backend: AeadBackend, size: number): { seal: number; open: number } {
  const k = backend.prepareKey(key);
  const plain = randomBytes(size);
  const out = new Uint8Array(size + TAG_SIZE);
  const seal = rate((i) => backend.sealInto(k, i, new Uint8Array(0), plain, out, 0));
  const sealed = new Uint8Array(size + TAG_SIZE);
  backend.sealInto(k, 7, new Uint8Array(0), plain, sealed, 0);
  const back = new Uint8Array(size);
  const open = rate(() => { if (backend.openInto(k, 7, new Uint8Array(0), sealed, back) !== size) throw new Error("open failed"); });
  return { seal, open };
}

function section1(): void {
  console.log("\n1. ChaCha20-Poly1305 per packet (packets/s, Gbit/s of payload), one core");
  const w = [7, 16, 22, 22, 22, 22];
  console.log(row(["size", "", "node:crypto seal", "@noble seal", "node:crypto open", "@noble open"], w));
  for (const size of SIZES) {
    const n = primitive(nodeAead, size);
    const b = primitive(nobleAead, size);
    console.log(row([`${size} B`, "pkt/s", fmt(n.seal), fmt(b.seal), fmt(n.open), fmt(b.open)], w));
    console.log(row(["", "Gbit/s", gbps(n.seal, size), gbps(b.seal, size), gbps(n.open, size), gbps(b.open, size)], w));
    best.set(size, {
      seal: Math.max(n.seal, b.seal), sealName: n.seal >= b.seal ? "node" : "noble",
      open: Math.max(n.open, b.open), openName: n.open >= b.open ? "node" : "noble",
    });
  }
}

// ---------------------------------------------------------------- 2. packet path
function section2(): void {
  if (best.size === 0) section1();
  console.log("\n2. full packet path through src/wire + src/crypto (the transport's chosen backend), one core");
  const w = [7, 26, 12, 10, 24];
  console.log(row(["size", "stage", "pkt/s", "Gbit/s", "vs faster primitive (1)"], w));
  for (const size of SIZES) {
    const tx = new TransportCipher(key);
    const rxEntry = { cipher: new TransportCipher(key), replay: new ReplayWindow() };
    const table = new Map([[0x1234abcd, rxEntry]]);
    const payload = randomBytes(size);
    const pkt = new Uint8Array(DATA_HEADER_SIZE + size + TAG_SIZE);
    let counter = 0;
    const sendOne = () => {
      writeDataHeader(pkt, 0x1234abcd, counter);
      tx.seal(counter, payload, pkt, DATA_HEADER_SIZE);
      counter++;
    };
    const scratch = new Uint8Array(MAX_DATAGRAM);
    const recvOne = (p: Uint8Array): boolean => {
      if (!isDataPacket(p)) return false;
      const e = table.get(readReceiverIndex(p));
      if (!e) return false;
      const c = readCounter(p);
      if (!e.replay.check(c)) return false;
      if (e.cipher.open(c, dataCiphertext(p), scratch) < 0) return false;
      e.replay.update(c);
      return true;
    };
    const sendRate = rate(sendOne);
    // receive: a pool of distinct sealed packets, each opened once per fresh replay window pass
    const POOL = 4096;
    const pool: Uint8Array[] = [];
    counter = 0;
    for (let i = 0; i < POOL; i++) { sendOne(); pool.push(Uint8Array.from(pkt)); }
    const recvRate = rate((i) => {
      if (i % POOL === 0) rxEntry.replay = new ReplayWindow();
      if (!recvOne(pool[i % POOL])) throw new Error("packet refused");
    });
    counter = 0;
    let rx = new ReplayWindow();
    const both = rate(() => {
      sendOne();
      const e = table.get(readReceiverIndex(pkt))!;
      if (counter === 1) rx = new ReplayWindow();
      e.replay = rx;
      if (!recvOne(pkt)) throw new Error("packet refused");
    });
    const b = best.get(size)!;
    const bothPrim = 1 / (1 / b.seal + 1 / b.open);
    console.log(row([`${size} B`, "frame + seal", fmt(sendRate), gbps(sendRate, size), `${((100 * sendRate) / b.seal).toFixed(0)}% of ${b.sealName} seal`], w));
    console.log(row(["", "parse + replay + open", fmt(recvRate), gbps(recvRate, size), `${((100 * recvRate) / b.open).toFixed(0)}% of ${b.openName} open`], w));
    console.log(row(["", "both ends, one core", fmt(both), gbps(both, size), `${((100 * both) / bothPrim).toFixed(0)}% of seal+open`], w));
  }
}

// ---------------------------------------------------------------- 3. handshakes
async function section3(): Promise<void> {
  console.log("\n3. full EmberNet handshakes (3 Noise XX messages, both chains verified, both bindings checked), one core");
  const dir = mkdtempSync(join(tmpdir(), "ember-bench-"));
  try {
    const ca = await initCa(join(dir, "ca"), "bench.internal");
    const verifier = new Verifier({ bundlePem: ca.bundlePem });
    const mk = async (name: string): Promise<LocalIdentity> => {
      const keys = generateEd25519();
      const der = await issueLeaf(ca, { name, tenant: "acme", groups: ["eng"], publicKey: keys.publicKey });
      return { certChainDer: [der, ca.intermediateDer], certPrivateKey: keys.privateKey, ...generateStaticKeyPair() };
    };
    const a = await mk("bench-a");
    const b = await mk("bench-b");
    let sizes = [0, 0, 0];
    const one = () => {
      const i = new Initiator(a, verifier);
      const r = new Responder(b, verifier);
      const m1 = i.writeInit();
      r.readInit(m1);
      const m2 = r.writeResp();
      i.readResp(m2);
      const m3 = i.writeFinal();
      r.readFinal(m3);
      sizes = [m1.length, m2.length, m3.length];
    };
    for (let k = 0; k < 50; k++) one();
    const hs = rate(one, Math.max(RUN_MS, 2000), 100_000);
    console.log(`   ${hs.toFixed(0)} handshakes/s (${(1e6 / hs).toFixed(0)} us for both sides); Noise messages ${sizes.join(" / ")} bytes`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- 4. loopback UDP, two processes
interface RecvReport { received: number; payloadBytes: number; rejected: number; seconds: number }

async function udpRun(mode: "plain" | "ember", size: number): Promise<{ sent: number; report: RecvReport }> {
  const child = fork(join(import.meta.dirname, "dataplane-udp.ts"), [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  try {
    const receiverIndex = 0x0badcafe;
    const keyHex = key.toString("hex");
    const port = await new Promise<number>((resolve, reject) => {
      child.once("message", (m: { port?: number }) => (m.port ? resolve(m.port) : reject(new Error("no port"))));
      child.once("exit", (c) => reject(new Error(`receiver exited ${c}`)));
      child.send({ start: { mode, keyHex, receiverIndex } });
    });
    const sock = createSocket({ type: "udp4", sendBufferSize: 8 << 20 });
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    sock.connect(port, "127.0.0.1");
    await new Promise<void>((r) => sock.once("connect", () => r()));
    const tx = new TransportCipher(key);
    const payload = randomBytes(size);
    const plainPkt = Buffer.from(payload);
    let counter = 0;
    let sent = 0;
    const end = performance.now() + UDP_MS;
    const BATCH = 32;
    // Send in batches and yield to the event loop between them so libuv can flush; each encrypted
    // packet gets its own buffer (dgram holds the buffer until the kernel took it).
    await new Promise<void>((resolve) => {
      const pump = () => {
        for (let i = 0; i < BATCH; i++) {
          if (mode === "ember") {
            const pkt = Buffer.allocUnsafe(DATA_HEADER_SIZE + size + TAG_SIZE);
            writeDataHeader(pkt, receiverIndex, counter);
            tx.seal(counter++, payload, pkt, DATA_HEADER_SIZE);
            sock.send(pkt);
          } else {
            sock.send(plainPkt);
          }
          sent++;
        }
        if (performance.now() < end && sent < 50_000_000) setImmediate(pump);
        else resolve();
      };
      pump();
    });
    await new Promise((r) => setTimeout(r, 300)); // let the receiver drain its socket buffer
    const report = await new Promise<RecvReport>((resolve) => {
      child.once("message", (m: RecvReport) => resolve(m));
      child.send({ done: true });
    });
    sock.close();
    return { sent: sent / (UDP_MS / 1000), report };
  } finally {
    if (child.exitCode === null) child.kill();
  }
}

async function section4(): Promise<void> {
  console.log(`\n4. two processes over loopback UDP, ${UDP_MS / 1000} s per run (receiver: parse + replay + decrypt in ember mode)`);
  const w = [7, 8, 14, 14, 10, 10, 14];
  console.log("   (wall-clock rates: two processes on two cores; other load on the machine lowers both modes alike)");
  console.log(row(["size", "mode", "sent pkt/s", "recv pkt/s", "Gbit/s", "lost", "ember/plain"], w));
  for (const size of SIZES) {
    const plain = await udpRun("plain", size);
    const ember = await udpRun("ember", size);
    for (const [name, r] of [["plain", plain], ["ember", ember]] as const) {
      const pps = r.report.received / r.report.seconds;
      const lost = 1 - r.report.received / (r.sent * (UDP_MS / 1000));
      const ratio = name === "ember" ? `${((100 * pps) / (plain.report.received / plain.report.seconds)).toFixed(0)}%` : "";
      console.log(row([name === "plain" ? `${size} B` : "", name, fmt(r.sent), fmt(pps), gbps(pps, size), `${(100 * lost).toFixed(1)}%`, ratio], w));
      if (r.report.rejected) console.log(`   !! receiver rejected ${r.report.rejected} packets`);
    }
  }
}

console.log(`EmberNet data-plane benchmark — ${new Date().toISOString()}, ${cpus().length} x ${cpus()[0]?.model ?? "?"}, Node ${process.version}`);
if (want(1)) section1();
if (want(2)) section2();
if (want(3)) await section3();
if (want(4)) await section4();
if (cpuShare.wall > 0) console.log(`\n(sections 1-3: rates per CPU second of this process; it got ${((100 * cpuShare.cpu) / cpuShare.wall).toFixed(0)}% of a core in wall time)`);
