// Stream-layer benchmark, in one process (so one core runs both ends): two StreamMux joined by an
// in-memory datagram link, with no loss and with 5% random loss. Prints goodput for one stream and for
// eight at once (MB/s of application bytes, every byte checked against what was sent),
// and streams opened per second (open -> accept -> request -> answer -> both FINs). Last, NewReno against
// CUBIC on a simulated 100 Mbit/s, 40 ms path with random loss (virtual time).
//   npx tsx bench/streams-core.ts                 # everything, about 30 s
//   BENCH_ONLY=1,5 npx tsx bench/streams-core.ts  # chosen cases only
//   BENCH_MB=64 npx tsx bench/streams-core.ts     # smaller transfers
// No encryption or UDP here: this measures the stream layer alone (see bench/dataplane.ts for those).
import { StreamMux, type Stream, type DatagramLink, type MuxOptions } from "../src/transport/index.js";

const TRANSFER_MB = Number(process.env.BENCH_MB ?? 256);
const LOSSY_MB = Number(process.env.BENCH_LOSSY_MB ?? 64);
const OPEN_MS = Number(process.env.BENCH_OPEN_MS ?? 2000);
const PAYLOAD = Number(process.env.BENCH_PAYLOAD ?? 1400);
const CHUNK = 64 * 1024;

/**
 * One direction of an in-memory path. Datagrams are copied (as sealing would) and delivered in a batch
 * on the next event-loop turn; a bounded queue makes send() return false, like a full socket buffer.
 */
class MemLink implements DatagramLink {
  peer!: StreamMux;
  owner!: StreamMux;
  sent = 0;
  dropped = 0;
  private queue: Uint8Array[] = [];
  private scheduled = false;
  private blocked = false;
  private seed = 12345;

  constructor(private readonly loss: number, private readonly capacity = 2048) {}

  maxPayload(): number {
    return PAYLOAD;
  }

  send(payload: Uint8Array): boolean {
    if (this.queue.length >= this.capacity) {
      this.blocked = true;
      return false;
    }
    this.sent++;
    if (this.loss > 0 && this.random() < this.loss) {
      this.dropped++;
      return true;
    }
    const copy = Buffer.allocUnsafe(payload.length); // the mux reuses its packet buffer
    copy.set(payload);
    this.queue.push(copy);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.deliver);
    }
    return true;
  }

  private readonly deliver = (): void => {
    this.scheduled = false;
    const q = this.queue;
    this.queue = [];
    for (let i = 0; i < q.length; i++) this.peer.handleDatagram(q[i]);
    if (this.blocked) {
      this.blocked = false;
      this.owner.onWritable();
    }
  };

  private random(): number {
    this.seed = (this.seed * 1103515245 + 12345) >>> 0;
    return this.seed / 4294967296;
  }
}

/** Extra mux options from the environment, e.g. BENCH_OPTS='{"congestion":"cubic"}'. */
const EXTRA: MuxOptions = JSON.parse(process.env.BENCH_OPTS ?? "{}");

function pair(loss: number, optsA: MuxOptions = {}, optsB: MuxOptions = {}) {
  const ab = new MemLink(loss);
  const ba = new MemLink(loss);
  const a = new StreamMux(ab, { ...EXTRA, ...optsA });
  const b = new StreamMux(ba, { ...EXTRA, ...optsB });
  ab.peer = b;
  ab.owner = a;
  ba.peer = a;
  ba.owner = b;
  return { a, b, ab, ba };
}

/** Writes `total` bytes of a repeating pattern in 64 KB chunks with back-pressure, then ends. */
function pump(s: Stream, total: number, pattern: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    s.on("error", reject);
    const more = () => {
      while (sent < total) {
        const n = Math.min(CHUNK, total - sent);
        const ok = s.write(n === CHUNK ? pattern : pattern.subarray(0, n));
        sent += n;
        if (!ok) return void s.once("drain", more);
      }
      s.end(resolve);
    };
    more();
  });
}

/**
 * Reads to the end, checking every byte against the repeating pattern the writer sends (a memcmp per
 * chunk: byte-exact, and cheap enough not to dominate the figure the way hashing 256 MB would).
 */
function drain(s: Stream, pattern: Buffer): Promise<{ bytes: number; ok: boolean }> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    let ok = true;
    s.on("data", (c: Buffer) => {
      let at = 0;
      while (at < c.length) {
        const p = (bytes + at) % CHUNK;
        const n = Math.min(c.length - at, CHUNK - p);
        if (c.compare(pattern, p, p + n, at, at + n) !== 0) ok = false;
        at += n;
      }
      bytes += c.length;
    });
    s.on("end", () => resolve({ bytes, ok }));
    s.on("error", reject);
  });
}

interface Row { case: string; loss: string; streams: number; mb: number; seconds: number; rate: string; extra: string }

async function goodput(loss: number, streams: number, totalMb: number): Promise<Row> {
  const pattern = Buffer.alloc(CHUNK);
  for (let i = 0; i < CHUNK; i++) pattern[i] = (i * 131 + (i >> 8) * 7) & 0xff; // not periodic within a chunk
  const per = Math.floor((totalMb * 1024 * 1024) / streams);
  const reads: Promise<{ bytes: number; ok: boolean }>[] = [];
  const p = pair(loss, {}, { onIncoming: (s) => { s.accept(); reads.push(drain(s, pattern)); } });
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const writes: Promise<void>[] = [];
  for (let i = 0; i < streams; i++) {
    const s = p.a.open(Buffer.from(`bench-${i}`));
    s.resume();
    writes.push(pump(s, per, pattern));
  }
  await Promise.all(writes);
  while (reads.length < streams) await new Promise((r) => setImmediate(r));
  const results = await Promise.all(reads);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  for (const r of results) if (r.bytes !== per || !r.ok) throw new Error(`stream corrupted: ${r.bytes} bytes, pattern ${r.ok ? "ok" : "wrong"}`);
  const st = p.a.stats();
  p.a.close();
  p.b.close();
  const mb = (per * streams) / (1024 * 1024);
  return {
    case: streams === 1 ? "one stream" : `${streams} streams`,
    loss: `${loss * 100}%`,
    streams,
    mb,
    seconds,
    rate: `${(mb / seconds).toFixed(1)} MB/s (${((mb * 8 * 1.048576) / seconds).toFixed(0)} Mbit/s)`,
    extra: `cpu ${(((cpu.user + cpu.system) / 1e6 / seconds) * 100).toFixed(0)}%, pkts ${st.packetsSent}, lost ${st.packetsLost}, retx ${st.packetsRetransmitted}, cwnd ${(st.cwnd / 1024).toFixed(0)} KiB, srtt ${st.srttMs.toFixed(2)} ms`,
  };
}

async function opensPerSecond(loss: number, concurrency: number): Promise<Row> {
  const p = pair(loss, {}, {
    onIncoming: (s) => {
      s.accept();
      s.on("data", () => {});
      s.on("end", () => s.end("ok"));
    },
  });
  let done = 0;
  let failed = 0;
  const t0 = performance.now();
  const deadline = t0 + OPEN_MS;
  const one = (): Promise<void> => new Promise<void>((resolve) => {
    const s = p.a.open(Buffer.from("svc=echo"));
    s.on("data", () => {});
    s.on("error", () => { failed++; resolve(); });
    s.on("close", () => resolve());
    s.end("hi");
  }).then(() => { done++; });
  const worker = async () => { while (performance.now() < deadline) await one(); };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  p.a.close();
  p.b.close();
  return {
    case: `opens (${concurrency} at a time)`,
    loss: `${loss * 100}%`,
    streams: done,
    mb: 0,
    seconds,
    rate: `${(done / seconds).toFixed(0)} streams/s`,
    extra: `${failed} failed`,
  };
}

// The mux's timers are unref'd (a daemon's UDP socket keeps it alive); here nothing else would.
const keepAlive = setInterval(() => {}, 1_000);
/**
 * The two congestion controllers on a simulated path (virtual time, test/transport/sim-link.ts):
 * 100 Mbit/s bottleneck, 40 ms RTT, a drop-tail queue of one bandwidth-delay product, random loss.
 */
async function controllers(loss: number, congestion: "newreno" | "cubic"): Promise<Row> {
  const { simPair } = await import("../test/transport/sim-link.js");
  let got = 0;
  const p = simPair(
    { delayMs: 20, rateBytesPerMs: 12_500, queueLimit: 360, loss },
    { congestion },
    { congestion, onIncoming: (s) => { s.accept(); s.on("data", (c: Buffer) => (got += c.length)); } },
    3,
    { delayMs: 20, loss },
  );
  const s = p.a.open();
  s.on("error", () => {});
  const pattern = Buffer.alloc(CHUNK, 1);
  void pump(s, 1 << 30, pattern).catch(() => {}); // more than 20 virtual seconds can carry
  const virtualMs = 20_000;
  const t0 = performance.now();
  await p.clock.run(() => false, virtualMs);
  const wall = (performance.now() - t0) / 1000;
  const st = p.a.stats();
  s.destroy();
  const mbit = (got * 8) / (virtualMs / 1000) / 1e6;
  return {
    case: `sim 100 Mbit/s 40 ms, ${congestion}`,
    loss: `${loss * 100}%`,
    streams: 1,
    mb: got / (1024 * 1024),
    seconds: virtualMs / 1000,
    rate: `${mbit.toFixed(1)} Mbit/s`,
    extra: `virtual time (${wall.toFixed(1)} s wall), lost ${st.packetsLost}, queue drops ${p.ab.queueDrops}, cwnd ${(st.cwnd / 1024).toFixed(0)} KiB`,
  };
}

const rows: Row[] = [];
const only = process.env.BENCH_ONLY; // e.g. "1" runs only the first case (profiling)
const cases: (() => Promise<Row>)[] = [
  () => goodput(0, 1, TRANSFER_MB),
  () => goodput(0, 8, TRANSFER_MB),
  () => goodput(0.05, 1, LOSSY_MB),
  () => goodput(0.05, 8, LOSSY_MB),
  () => opensPerSecond(0, 64),
  () => opensPerSecond(0.05, 64),
  () => controllers(0.0001, "newreno"),
  () => controllers(0.0001, "cubic"),
  () => controllers(0.001, "newreno"),
  () => controllers(0.001, "cubic"),
];
for (let i = 0; i < cases.length; i++) if (!only || only.split(",").includes(String(i + 1))) rows.push(await cases[i]());
clearInterval(keepAlive);

console.log(`\nstream layer, in-process (both ends on one core), ${PAYLOAD}-byte datagrams, node ${process.version}`);
const header = ["case", "loss", "amount", "seconds", "rate", "notes"];
const table = rows.map((r) => [r.case, r.loss, r.mb ? `${r.mb.toFixed(0)} MB` : `${r.streams} streams`, r.seconds.toFixed(2), r.rate, r.extra]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
console.log(line(header));
console.log(widths.map((w) => "-".repeat(w)).join("  "));
for (const t of table) console.log(line(t));
