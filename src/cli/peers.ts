// `ember status`, `ember peers`, `ember ping`: ask the running daemon over its control socket.
import type { Command } from "commander";
import { ask, daemonFlags as common, type SocketOpts } from "./daemon-client.js";
import { CliError, printFields, printJson, printTable } from "./output.js";

interface PeerRow { name: string; state: string; activity?: string; path: string; endpoint: string; rttMs?: number; rxBytes: number; txBytes: number; lastHandshake?: string }
interface Traffic { txPackets: number; txBytes: number; rxPackets: number; rxBytes: number; windowS?: number }

function peerTable(peers: PeerRow[]): void {
  printTable(["PEER", "STATE", "ACTIVITY", "PATH", "ENDPOINT", "RTT", "RX", "TX", "LAST HANDSHAKE"],
    peers.map((p) => [p.name, p.state, p.activity ?? "-", p.path, p.endpoint, p.rttMs !== undefined ? `${p.rttMs.toFixed(2)}ms` : "-", p.rxBytes, p.txBytes, p.lastHandshake ?? "-"]));
}

function perMinute(t: Traffic): string {
  return `sent ${t.txPackets} packets, ${t.txBytes} bytes; received ${t.rxPackets} packets, ${t.rxBytes} bytes${t.windowS !== undefined && t.windowS < 60 ? ` (over ${t.windowS} s)` : ""}`;
}

export function registerPeers(program: Command): void {
  common(program.command("status").description("this node's identity, listen address and peers"))
    .action(async (o: SocketOpts) => {
      const s = await ask<{ name: string; identity: string; listen: string; cipher: string; certificate: { notAfter: string }; traffic?: { perMinute: Traffic }; peers: PeerRow[]; drops: Record<string, number> }>(o, "status");
      if (o.json) return printJson(s);
      printFields([["node", s.name], ["identity", s.identity], ["listen", s.listen], ["cert expires", s.certificate.notAfter], ["cipher", `ChaCha20-Poly1305 (${s.cipher})`],
        ...(s.traffic ? [["traffic per minute", perMinute(s.traffic.perMinute)] as [string, string]] : [])]);
      process.stdout.write("\n");
      peerTable(s.peers);
    });

  common(program.command("peers").description("peers and their sessions"))
    .action(async (o: SocketOpts) => {
      const peers = await ask<PeerRow[]>(o, "peers");
      if (o.json) return printJson(peers);
      peerTable(peers);
    });

  common(program.command("ping").description("round-trip time to a peer over the encrypted session").argument("<name>", "peer identity name"))
    .option("-c, --count <n>", "number of pings", "3")
    .option("--timeout <ms>", "per-ping timeout", "5000")
    .action(async (name: string, o: SocketOpts & { count: string; timeout: string }) => {
      const count = Number(o.count);
      if (!Number.isInteger(count) || count < 1 || count > 1000) throw new CliError(`--count ${o.count}: give 1..1000`);
      const results: number[] = [];
      for (let i = 0; i < count; i++) {
        const r = await ask<{ rttMs: number }>(o, "ping", { name, timeoutMs: Number(o.timeout) }, Number(o.timeout) + 2_000);
        results.push(r.rttMs);
        if (!o.json) process.stdout.write(`pong from ${name}: time=${r.rttMs.toFixed(3)} ms\n`);
      }
      if (o.json) printJson({ name, rttMs: results });
    });
}
