// Bulk transfers for the lab, run inside a namespace.
//   transfer.ts sink --port P          TCP server: hashes everything a client sends; on its end, answers
//                                       "<sha256 hex> <bytes>\n" and closes. Prints {"ready":true}.
//   transfer.ts send --port P --bytes N [--seed S] [--progress MB]
//                                       Sends N bytes of a deterministic stream (AES-CTR keystream) to
//                                       127.0.0.1:P with back-pressure, half-closes, reads the sink's answer;
//                                       prints {"progress":bytes} every MB and then the result line.
//   transfer.ts https --port P --cert C --key K --text T
//                                       HTTPS server answering T to every request. Prints {"ready":true}.
import { createCipheriv, createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import { connect, createServer } from "node:net";
import { parseArgs } from "node:util";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: "string" }, bytes: { type: "string" }, seed: { type: "string", default: "lab" }, progress: { type: "string", default: "0" },
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
    srv.listen(port, "127.0.0.1", () => say({ ready: true }));
    break;
  }
  case "send": {
    const total = Number(values.bytes);
    const every = Number(values.progress) * 1024 * 1024;
    const key = createHash("sha256").update(values.seed!).digest();
    const stream = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
    const zeros = Buffer.alloc(64 * 1024);
    const h = createHash("sha256");
    const t0 = performance.now();
    let sent = 0, nextReport = every;
    const c = connect(port, "127.0.0.1");
    let answer = "";
    c.setEncoding("utf8");
    c.on("data", (d: string) => (answer += d));
    c.on("end", () => {
      const [sha, n] = answer.trim().split(" ");
      const ms = performance.now() - t0;
      say({ bytes: sent, sha256: h.digest("hex"), remoteSha256: sha, remoteBytes: Number(n), ms: Math.round(ms), mbps: Math.round((sent * 8) / ms / 1000) });
      process.exit(0);
    });
    c.on("error", (err) => { say({ error: err.message, bytes: sent }); process.exit(1); });
    const pump = () => {
      while (sent < total) {
        const n = Math.min(zeros.length, total - sent);
        const chunk = stream.update(zeros.subarray(0, n));
        h.update(chunk);
        sent += n;
        if (every && sent >= nextReport) { say({ progress: sent }); nextReport += every; }
        if (!c.write(chunk)) return void c.once("drain", pump);
      }
      c.end();
    };
    c.on("connect", pump);
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
