// Tells each client the source address:port it was seen from (a minimal STUN-like reflector for the lab).
// UDP: replies {"address","port","echo"} to every datagram from the same socket. TCP: writes the same line, then closes.
// Usage: reflector.ts --udp 3478,3479 --tcp 443,8443   (prints {"ready":true} once every port is bound)
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { udp: { type: "string", default: "" }, tcp: { type: "string", default: "" } } });
const ports = (s: string) => s.split(",").filter(Boolean).map((p) => {
  const n = Number(p);
  if (!Number.isInteger(n) || n < 1 || n > 65535) { console.error(`reflector: bad port "${p}"`); process.exit(2); }
  return n;
});

const binds: Promise<void>[] = [];
for (const port of ports(values.udp!)) {
  const sock = createSocket("udp4");
  sock.on("message", (msg, rinfo) => {
    const reply = JSON.stringify({ address: rinfo.address, port: rinfo.port, echo: msg.subarray(0, 64).toString("utf8") });
    sock.send(reply, rinfo.port, rinfo.address);
  });
  binds.push(new Promise((res, rej) => { sock.once("error", rej); sock.bind(port, "0.0.0.0", () => res()); }));
}
for (const port of ports(values.tcp!)) {
  const srv = createServer((c) => {
    c.on("error", () => {});
    c.end(JSON.stringify({ address: c.remoteAddress, port: c.remotePort }) + "\n");
  });
  binds.push(new Promise((res, rej) => { srv.once("error", rej); srv.listen(port, "0.0.0.0", () => res()); }));
}
Promise.all(binds).then(
  () => console.log(JSON.stringify({ ready: true })),
  (e) => { console.error(`reflector: ${e.message}`); process.exit(1); },
);
