// `ember netcheck`: STUN against several servers from one fresh UDP socket; prints the mapping per server
// with latencies, the NAT's mapping behaviour and the candidates. Exit 1 when no server answered (UDP blocked).
import type { Command } from "commander";
import { createSocket } from "node:dgram";
import { CliError, printJson, printTable } from "./output.js";
import { join } from "node:path";
import { STUN_DEFAULT_PORT } from "../wire/relay.js";
import type { NetcheckReport } from "../nat/netcheck.js";
import type { Problem } from "../wire/coord/telemetry.js";
import { printProblems } from "./problems.js";

function parseServer(spec: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/.exec(spec.trim());
  const port = m?.[3] === undefined ? STUN_DEFAULT_PORT : Number(m[3]);
  if (!m || port < 1 || port > 65535) throw new CliError(`--stun "${spec}": expected HOST[:PORT] with a port 1-65535`);
  return { host: m[1] ?? m[2], port };
}

export function registerNetcheck(program: Command): void {
  program.command("netcheck")
    .description("measure the UDP path: mapped address and latency per STUN server, NAT mapping behaviour, candidates")
    .option("--stun <host:port>", "STUN server (repeat for several; two are needed to classify the NAT)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option("--timeout <ms>", "per-server timeout in milliseconds", "3000")
    .option("--bind <host:port>", "local address for the UDP socket", "0.0.0.0:0")
    .option("--state <dir>", "ask the running daemon: its own UDP socket (the mapping peers see) against its relays' STUN")
    .option("--json", "one JSON document")
    .action(async (o: { stun: string[]; timeout: string; bind: string; json?: boolean; state?: string }) => {
      let report: NetcheckReport;
      let problems: Problem[] | undefined;
      if (o.state) {
        const { controlRequest } = await import("../node/control-socket.js");
        try {
          report = await controlRequest<NetcheckReport>(join(o.state, "ember.sock"), "netcheck", {}, 20_000);
          // The daemon's diagnosis after this netcheck: UDP blocked, 443 blocked, slow or lossy paths, clock skew.
          problems = (await controlRequest<{ problems: Problem[] }>(join(o.state, "ember.sock"), "diagnostics", {}, 10_000)).problems;
        } catch (err) {
          throw new CliError((err as Error).message, 1);
        }
      } else {
        report = await standalone(o);
      }
      if (o.json && problems) return void print({ ...report, problems } as NetcheckReport, true);
      print(report, o.json);
      if (problems) { process.stdout.write("\n"); printProblems(problems); }
    });
}

async function standalone(o: { stun: string[]; timeout: string; bind: string }): Promise<NetcheckReport> {
  if (o.stun.length === 0) throw new CliError("no STUN server: pass --stun HOST:PORT (twice or more to classify the NAT), or --state DIR to ask the daemon");
  const servers = o.stun.map(parseServer);
  const timeoutMs = Number(o.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 60_000) throw new CliError(`--timeout "${o.timeout}": expected 100..60000 ms`);
  const bm = /^(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):(\d{1,5})$/.exec(o.bind);
  if (!bm || Number(bm[2]) > 65535) throw new CliError(`--bind "${o.bind}": expected IP:PORT`);
  const bindHost = bm[1].replace(/^\[|\]$/g, "");
  const { StunClient } = await import("../nat/stun.js");
  const { netcheck } = await import("../nat/netcheck.js");
  const socket = createSocket(bindHost.includes(":") ? "udp6" : "udp4");
  const stun = new StunClient(socket);
  socket.on("message", (msg, rinfo) => { stun.handle(msg, rinfo); });
  socket.on("error", () => {});
  try {
    await new Promise<void>((resolve, reject) => { socket.once("error", reject); socket.bind(Number(bm[2]), bindHost, () => resolve()); });
  } catch (err) {
    throw new CliError(`cannot bind UDP ${o.bind}: ${(err as Error).message}`);
  }
  const { probePortmap } = await import("../nat/portmap/portmapper.js");
  // EMBER_PORTMAP=off (the test suite's setting) also keeps this probe away from the machine's gateway.
  const off = process.env.EMBER_PORTMAP === "off";
  const [report, portmap] = await Promise.all([netcheck(socket, stun, { servers, timeoutMs }), off ? undefined : probePortmap()]);
  stun.close();
  socket.close();
  return portmap ? { ...report, portmap } : report;
}

function print(report: NetcheckReport, json?: boolean): void {
  if (json) printJson(report);
  else {
    printTable(["SERVER", "MAPPED", "LATENCY"], report.servers.map((s) => [
      s.server, s.mapped ? `${s.mapped.address}:${s.mapped.port}` : "-", s.rttMs !== undefined ? `${s.rttMs.toFixed(1)} ms` : (s.error ?? "no answer"),
    ]));
    process.stdout.write(`\nmapping     ${report.mapping} (${report.mappingDetail})\n`);
    if (report.fastest) process.stdout.write(`fastest     ${report.fastest}\n`);
    if (report.portmap) {
      const p = report.portmap;
      const held = "mapped" in p && p.mapped ? `, mapped ${p.mapped} by ${p.mappedBy}` : "";
      process.stdout.write(`portmap     ${p.protocol ?? "none"}${p.gateway ? ` (gateway ${p.gateway}: pcp ${p.pcp ? "yes" : "no"}, nat-pmp ${p.natPmp ? "yes" : "no"}, upnp ${p.upnp ? "yes" : "no"}${held})` : " (no default gateway)"}\n`);
    }
    process.stdout.write(`local port  ${report.localPort}\ncandidates  ${report.candidates.map((c) => `${c.type} ${c.address}:${c.port}`).join(", ")}\n`);
  }
  if (report.mapping === "udp-blocked") process.exitCode = 1;
}
