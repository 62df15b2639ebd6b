// The reference server of bench/https-floor.ts: bare node:https with the coordination server's TLS settings and
// no work of its own. Reports its CPU time and resident memory when the driver asks, after the settle it names:
// no forced GC, as the coordination server's memory is read in bench/coord.ts (the same settle, MEMORY_SETTLE_MS).
// argv: mode ("enroll" | "stream-small" | "stream-map"); TLS material as JSON on stdin.
import { createServer } from "node:https";

const mode = process.argv[2];
const tlsOptions = JSON.parse(await new Promise((resolve) => {
  let s = "";
  process.stdin.on("data", (c) => { s += c; }).on("end", () => resolve(s));
}));
const answer = Buffer.alloc(mode === "stream-map" ? 40_000 : mode === "stream-small" ? 10 : 1_000, 7);
const server = createServer({ ...tlsOptions, minVersion: "TLSv1.3", requestCert: true, rejectUnauthorized: false }, (req, res) => {
  if (mode === "enroll") {
    req.resume();
    req.on("end", () => res.end(answer));
  } else {
    res.writeHead(200, { "content-type": "application/octet-stream" });
    res.write(answer); // and the stream stays open, as a map stream does
  }
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => process.send({ port: server.address().port }));
process.on("message", (m) => {
  setTimeout(() => {
    const cpu = process.cpuUsage();
    process.send({ cpuMs: (cpu.user + cpu.system) / 1000, rssKiB: process.memoryUsage().rss / 1024 });
  }, m.settleMs);
});
