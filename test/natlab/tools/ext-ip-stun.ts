// A STUN Binding responder that tells its client a given external address, for miniupnpd in the NAT lab.
// Why: miniupnpd refuses a reserved address (the lab's 198.18.0.0/15) as its external IP, whether from
// its WAN interface or from `ext_ip=`, and then refuses every mapping. Only its STUN mode
// (`ext_perform_stun=yes`) accepts what the STUN server reports. This responder runs in the router's own
// namespace on its LAN address and reports `--claim` (the router's WAN address) with the client's port,
// which is what a real STUN server on the internet would see of a router with a public WAN address.
// It adds OTHER-ADDRESS (RFC 5780), without which miniupnpd takes the server as unsupported, and answers
// CHANGE-REQUEST probes from the same socket (the router has no upstream NAT that could filter them).
// Usage: ext-ip-stun.ts --listen 198.19.3.1:3478 --claim 198.18.3.2   (prints {"ready":true})
import { createSocket } from "node:dgram";
import { parseArgs } from "node:util";

const MAGIC = 0x2112a442;
const { values } = parseArgs({ options: { listen: { type: "string" }, claim: { type: "string" } } });
const [host, portText] = (values.listen ?? "").split(":");
const claim = values.claim ?? "";
if (!host || !portText || !/^\d+\.\d+\.\d+\.\d+$/.test(claim)) {
  console.error("usage: ext-ip-stun.ts --listen HOST:PORT --claim IPV4");
  process.exit(2);
}

function addressAttr(type: number, ip: string, port: number, xor: boolean): Buffer {
  const a = Buffer.alloc(12);
  a.writeUInt16BE(type, 0);
  a.writeUInt16BE(8, 2);
  a[5] = 0x01; // IPv4
  a.writeUInt16BE(xor ? port ^ (MAGIC >>> 16) : port, 6);
  const octets = ip.split(".").map(Number);
  const mask = [MAGIC >>> 24, (MAGIC >>> 16) & 0xff, (MAGIC >>> 8) & 0xff, MAGIC & 0xff];
  octets.forEach((o, i) => { a[8 + i] = xor ? o ^ mask[i] : o; });
  return a;
}

const sock = createSocket("udp4");
sock.on("message", (msg, rinfo) => {
  if (msg.length < 20 || msg.readUInt16BE(0) !== 0x0001 || msg.readUInt32BE(4) !== MAGIC) return;
  const attrs = Buffer.concat([
    addressAttr(0x0020, claim, rinfo.port, true), // XOR-MAPPED-ADDRESS
    addressAttr(0x0001, claim, rinfo.port, false), // MAPPED-ADDRESS
    addressAttr(0x802c, host, Number(portText), false), // OTHER-ADDRESS
  ]);
  const head = Buffer.alloc(20);
  head.writeUInt16BE(0x0101, 0);
  head.writeUInt16BE(attrs.length, 2);
  msg.copy(head, 4, 4, 20); // magic cookie and transaction id
  sock.send(Buffer.concat([head, attrs]), rinfo.port, rinfo.address);
});
sock.once("error", (e) => { console.error(`ext-ip-stun: ${e.message}`); process.exit(1); });
sock.bind(Number(portText), host, () => console.log(JSON.stringify({ ready: true })));
