// A flood of hostile connections in its own process, so that the attacker's CPU (thousands of sockets, TLS
// handshakes) is not charged to the valid clients the tests measure. Usage (tests only):
//   node --import tsx test/security/flood-child.ts '<FloodOptions as JSON, clientHello as hex>'
// Prints one JSON line when every connection is open ({"event":"opened",...}), then one per second with the
// counts, and holds the connections until SIGTERM (or stdin closes: the parent is gone).
import { Flood, type FloodOptions } from "./helpers.js";

const arg = JSON.parse(process.argv[2]) as Omit<FloodOptions, "clientHello"> & { clientHello: string };
const flood = new Flood({ ...arg, clientHello: Buffer.from(arg.clientHello, "hex") });
const report = (event: string, extra: object = {}) =>
  process.stdout.write(JSON.stringify({ event, connected: flood.connected, closedByServer: flood.closedByServer, failed: flood.failed, open: flood.open, ...extra }) + "\n");
const stop = () => { flood.stop(); process.exit(0); };
process.on("SIGTERM", stop);
process.stdin.on("end", stop);
process.stdin.resume();
const t0 = Date.now();
await flood.start();
report("opened", { ms: Date.now() - t0 });
setInterval(() => report("tick"), 1_000);
