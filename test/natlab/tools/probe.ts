// Client probes against reflector.ts, run inside a lab host. Prints one JSON result line.
//   mapping --targets ip:port,ip:port [--port P]   one socket; what each reflector saw (address:port or null)
//   rtt --target ip:port --count N --interval MS [--timeout MS]   paced round trips; how many came back
//   tcp --target ip:port [--timeout MS]   TCP connect; what the server saw, or the error
import { createSocket, type Socket } from "node:dgram";
import { connect } from "node:net";
import { parseArgs } from "node:util";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    targets: { type: "string", default: "" }, target: { type: "string", default: "" }, port: { type: "string", default: "0" },
    count: { type: "string", default: "100" }, interval: { type: "string", default: "5" }, timeout: { type: "string", default: "1500" },
  },
});
const MAX_COUNT = 5000; // bounded load loop

function endpoint(s: string): { address: string; port: number } {
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(s);
  if (!m) { console.error(`probe: bad endpoint "${s}" (want ip:port)`); process.exit(2); }
  return { address: m[1]!, port: Number(m[2]) };
}
const done = (result: unknown) => { console.log(JSON.stringify(result)); process.exit(0); };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function bound(port: number): Promise<Socket> {
  const sock = createSocket("udp4");
  await new Promise<void>((res, rej) => { sock.once("error", rej); sock.bind(port, "0.0.0.0", () => res()); });
  return sock;
}

async function mapping(): Promise<void> {
  const targets = values.targets!.split(",").filter(Boolean).map(endpoint);
  const sock = await bound(Number(values.port));
  const seen: ({ address: string; port: number } | null)[] = targets.map(() => null);
  sock.on("message", (msg) => {
    try {
      const r = JSON.parse(msg.toString());
      const i = Number(r.echo);
      if (Number.isInteger(i) && i >= 0 && i < targets.length) seen[i] = { address: r.address, port: r.port };
    } catch { /* not a reflector reply */ }
  });
  // Sequential, so every destination opens its own mapping in order; three tries each against loss.
  for (let i = 0; i < targets.length; i++) {
    for (let attempt = 0; attempt < 3 && !seen[i]; attempt++) {
      sock.send(String(i), targets[i]!.port, targets[i]!.address);
      const until = Date.now() + Number(values.timeout) / 3;
      while (!seen[i] && Date.now() < until) await sleep(10);
    }
  }
  done({ local: sock.address().port, seen });
}

async function rtt(): Promise<void> {
  const t = endpoint(values.target!);
  const count = Math.min(Number(values.count), MAX_COUNT);
  const sock = await bound(0);
  const got = new Set<number>();
  sock.on("message", (msg) => {
    try { const n = Number(JSON.parse(msg.toString()).echo); if (Number.isInteger(n)) got.add(n); } catch { /* ignore */ }
  });
  for (let i = 0; i < count; i++) {
    sock.send(String(i), t.port, t.address);
    await sleep(Number(values.interval));
  }
  await sleep(Number(values.timeout));
  done({ sent: count, received: got.size });
}

async function tcp(): Promise<void> {
  const t = endpoint(values.target!);
  const started = Date.now();
  const c = connect({ host: t.address, port: t.port });
  const timer = setTimeout(() => { c.destroy(); done({ connected: false, error: "timeout", ms: Date.now() - started }); }, Number(values.timeout));
  let data = "";
  c.on("data", (d) => { data += d.toString(); });
  c.on("end", () => {
    clearTimeout(timer);
    try { done({ connected: true, seen: JSON.parse(data), ms: Date.now() - started }); } catch { done({ connected: true, seen: null }); }
  });
  c.on("error", (e) => { clearTimeout(timer); done({ connected: false, error: (e as NodeJS.ErrnoException).code ?? e.message, ms: Date.now() - started }); });
}

const modes: Record<string, () => Promise<void>> = { mapping, rtt, tcp };
const mode = modes[positionals[0] ?? ""];
if (!mode) { console.error(`probe: mode must be one of ${Object.keys(modes).join(", ")}`); process.exit(2); }
await mode();
