// One side of a UDP hole punch, run inside a lab host. Protocol on stdin/stdout (JSON lines):
//   binds --port, asks the reflector (--stun ip:port) for its public mapping, prints {"ready":true,"mapped":{...}};
//   then waits for "go <peer-ip:port>" on stdin and punches: "naive" sends full-TTL pings at once;
//   "lowttl" first sends --low-count packets with IP TTL --low-ttl (leave our NAT, die before the peer's),
//   waits --hold ms, then sends full-TTL pings. Answers every ping with a pong. Prints the result line and exits
//   --linger ms after it both got a pong and saw the peer's ping, or after --budget ms.
import { createSocket } from "node:dgram";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    port: { type: "string" }, stun: { type: "string" }, mode: { type: "string", default: "naive" },
    "low-ttl": { type: "string", default: "2" }, "low-count": { type: "string", default: "2" }, hold: { type: "string", default: "100" },
    interval: { type: "string", default: "50" }, budget: { type: "string", default: "3000" }, linger: { type: "string", default: "400" },
  },
});
const num = (k: keyof typeof values) => Number(values[k]);
const FULL_TTL = 64;
const MAX_PINGS = 400; // bounded load loop

function endpoint(s: string | undefined): { address: string; port: number } {
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(s ?? "");
  if (!m) { console.error(`punch: bad endpoint "${s}" (want ip:port)`); process.exit(2); }
  return { address: m[1]!, port: Number(m[2]) };
}
if (values.mode !== "naive" && values.mode !== "lowttl") { console.error(`punch: --mode must be naive or lowttl`); process.exit(2); }
const stun = endpoint(values.stun);

const sock = createSocket("udp4");
await new Promise<void>((res, rej) => { sock.once("error", rej); sock.bind(num("port"), "0.0.0.0", () => res()); });

let mapped: { address: string; port: number } | null = null;
let peer: { address: string; port: number } | null = null;
let t0 = 0, firstPing = -1, firstPong = -1, sent = 0, lowSent = 0, pings = 0, pongs = 0;
const fromPorts = new Set<number>();

sock.on("message", (msg, rinfo) => {
  const text = msg.toString();
  if (text.startsWith("{")) { try { mapped ??= JSON.parse(text); } catch { /* ignore */ } return; }
  fromPorts.add(rinfo.port);
  if (text.startsWith("ping")) {
    pings++;
    if (firstPing < 0) firstPing = Date.now() - t0;
    sock.send(`pong ${text.slice(5)}`, rinfo.port, rinfo.address);
  } else if (text.startsWith("pong")) {
    pongs++;
    if (firstPong < 0) firstPong = Date.now() - t0;
  }
});

// Learn our public mapping like STUN would, from the same socket.
for (let i = 0; i < 10 && !mapped; i++) {
  sock.send("stun", stun.port, stun.address);
  await new Promise((r) => setTimeout(r, 200));
}
if (!mapped) { console.log(JSON.stringify({ ready: false, error: "no reply from reflector" })); process.exit(1); }
console.log(JSON.stringify({ ready: true, mapped }));

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const m = /^go (\S+)$/.exec(line.trim());
  if (!m || peer) return;
  peer = endpoint(m[1]);
  void punch();
});

async function punch(): Promise<void> {
  const p = peer!;
  t0 = Date.now();
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  if (values.mode === "lowttl") {
    sock.setTTL(num("low-ttl"));
    for (let i = 0; i < num("low-count"); i++) { sock.send("low", p.port, p.address); lowSent++; }
    await sleep(num("hold"));
    sock.setTTL(FULL_TTL);
  }
  const deadline = t0 + num("budget");
  while (Date.now() < deadline && sent < MAX_PINGS && !(firstPong >= 0 && firstPing >= 0)) {
    sock.send(`ping ${sent++}`, p.port, p.address);
    await sleep(num("interval"));
  }
  if (firstPong >= 0 && firstPing >= 0) await sleep(num("linger")); // keep answering the peer's pings
  console.log(JSON.stringify({
    ok: firstPong >= 0 && firstPing >= 0, mode: values.mode, mapped, peer: p,
    pongMs: firstPong, pingMs: firstPing, sent, lowSent, pings, pongs, fromPorts: [...fromPorts],
  }));
  process.exit(0);
}
