// Bulk transfers for the lab, run inside a namespace.
//   transfer.ts sink --port P          TCP server: hashes everything a client sends; on its end, answers
//                                       "<sha256 hex> <bytes>\n" and closes. Prints {"ready":true,"port":P}
//                                       (P 0: any free port).
//   transfer.ts send --port P --bytes N [--seed S] [--progress MB] [--streams K]
//                                       Sends N bytes of a deterministic stream (AES-CTR keystream) to
//                                       127.0.0.1:P with back-pressure, half-closes, reads the sink's answer;
//                                       prints {"progress":bytes} every MB and then the result line. With
//                                       --streams K, K connections at once (N bytes each), one result line
//                                       with the total and whether every stream was byte-exact.
//   transfer.ts steps --port P [--seed S]   One connection to 127.0.0.1:P driven by stdin lines: "send N" sends the
//                                       next N bytes of the stream and prints {"sent":total} once written;
//                                       "end" half-closes and prints the result line (as send).
//   --host H (sink, send): listen on / connect to H instead of 127.0.0.1 (TUN tests use overlay names).
//   transfer.ts https --port P --cert C --key K --text T
//                                       HTTPS server answering T to every request. Prints {"ready":true}.
import { createCipheriv, createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import { connect, createServer } from "node:net";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: "string" }, bytes: { type: "string" }, seed: { type: "string", default: "lab" }, progress: { type: "string", default: "0" },
    streams: { type: "string", default: "1" }, host: { type: "string", default: "127.0.0.1" },
    cert: { type: "string" }, key: { type: "string" }, text: { type: "string", default: "ok" },
  },
});
const port = Number(values.port);
const say = (o: object) => process.stdout.write(JSON.stringify(o) + "\n");

switch (positionals[0]) {
  case "sink": {
    const srv = createServer((c) => {
      const h = createHash("sha256");
      let n = 0;
      c.on("data", (d: Buffer) => { h.update(d); n += d.length; });
      c.on("end", () => c.end(`${h.digest("hex")} ${n}\n`));
      c.on("error", () => undefined);
    });
    srv.listen(port, values.host, () => say({ ready: true, port: (srv.address() as { port: number }).port }));
    break;
  }
  case "send": {
    const total = Number(values.bytes);
    const k = Number(values.streams);
    const every = Number(values.progress) * 1024 * 1024;
    const t0 = performance.now();
    let progressed = 0, nextReport = every;
    const one = (seed: string) => new Promise<{ bytes: number; sha256: string; remoteSha256: string; remoteBytes: number }>((resolve, reject) => {
      const key = createHash("sha256").update(seed).digest();
      const stream = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
      const zeros = Buffer.alloc(64 * 1024);
      const h = createHash("sha256");
      let sent = 0;
      const c = connect(port, values.host!);
      let answer = "";
      c.setEncoding("utf8");
      c.on("data", (d: string) => (answer += d));
      c.on("end", () => {
        const [sha, n] = answer.trim().split(" ");
        resolve({ bytes: sent, sha256: h.digest("hex"), remoteSha256: sha, remoteBytes: Number(n) });
      });
      c.on("error", (err) => reject(Object.assign(err, { bytes: sent })));
      const pump = () => {
        while (sent < total) {
          const n = Math.min(zeros.length, total - sent);
          const chunk = stream.update(zeros.subarray(0, n));
          h.update(chunk);
          sent += n;
          progressed += n;
          if (every && progressed >= nextReport) { say({ progress: progressed }); nextReport += every; }
          if (!c.write(chunk)) return void c.once("drain", pump);
        }
        c.end();
      };
      c.on("connect", pump);
    });
    Promise.all(Array.from({ length: k }, (_, i) => one(k === 1 ? values.seed! : `${values.seed}-${i}`))).then((rs) => {
      const ms = performance.now() - t0;
      const bytes = rs.reduce((a, r) => a + r.bytes, 0);
      const exact = rs.every((r) => r.sha256 === r.remoteSha256 && r.bytes === r.remoteBytes);
      const r = k === 1 ? rs[0] : { bytes, exact, sha256: exact ? "all-equal" : "mismatch", remoteSha256: exact ? "all-equal" : "mismatch", remoteBytes: rs.reduce((a, x) => a + x.remoteBytes, 0) };
      say({ ...r, streams: k, ms: Math.round(ms), mbps: Math.round((bytes * 8) / ms / 1000) });
      process.exit(0);
    }, (err: Error & { bytes?: number }) => { say({ error: err.message, bytes: err.bytes ?? 0 }); process.exit(1); });
    break;
  }
  case "steps": {
    const key = createHash("sha256").update(values.seed!).digest();
    const stream = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
    const h = createHash("sha256");
    let sent = 0;
    let answer = "";
    const c = connect(port, "127.0.0.1");
    c.setEncoding("utf8");
    c.on("data", (d: string) => (answer += d));
    c.on("error", (err) => { say({ error: err.message, bytes: sent }); process.exit(1); });
    c.on("end", () => {
      const [sha, n] = answer.trim().split(" ");
      say({ bytes: sent, sha256: h.digest("hex"), remoteSha256: sha, remoteBytes: Number(n) });
      process.exit(0);
    });
    c.on("connect", () => {
      say({ connected: true });
      createInterface({ input: process.stdin }).on("line", (line) => {
        const [cmd, arg] = line.trim().split(" ");
        if (cmd === "end") return void c.end();
        if (cmd !== "send") return;
        const chunk = stream.update(Buffer.alloc(Number(arg)));
        h.update(chunk);
        sent += chunk.length;
        c.write(chunk, () => say({ sent }));
      });
    });
    break;
  }
  case "https": {
    const srv = createHttpsServer({ cert: readFileSync(values.cert!), key: readFileSync(values.key!) }, (_req, res) => res.end(values.text + "\n"));
    srv.listen(port, "127.0.0.1", () => say({ ready: true }));
    break;
  }
  default:
    console.error("usage: transfer.ts sink|send|https ...");
    process.exit(2);
}
