// `ember status`, `ember peers`, `ember ping`: ask the running daemon over its control socket.
import type { Command } from "commander";
import { ask, daemonFlags as common, type SocketOpts } from "./daemon-client.js";
import { CliError, printFields, printJson, printTable } from "./output.js";
import { lastStartFailure, printProblems } from "./problems.js";
import type { Problem } from "../wire/coord/telemetry.js";

interface DataPlaneRow { backend: string; note?: string; native?: { tun?: { name: string; address: string; mtu: number; tso?: boolean }; stats: { gso: boolean; gro: boolean } } }

/** "native (TUN ember0 100.64.1.2, MTU 1220, TSO; GSO, GRO)" or "typescript (why)". */
function describeDataPlane(d: DataPlaneRow): string {
  const parts: string[] = [];
  const t = d.native?.tun;
  if (t) parts.push(`TUN ${t.name} ${t.address}, MTU ${t.mtu}${t.tso ? ", TSO" : ""}`);
  if (d.native) parts.push([d.native.stats.gso && "GSO", d.native.stats.gro && "GRO"].filter(Boolean).join(", ") || "no GSO/GRO");
  if (d.note) parts.push(d.note);
  return `${d.backend}${parts.length ? ` (${parts.join("; ")})` : ""}`;
}

interface PeerRow { name: string; overlayIp?: string; state: string; activity?: string; path: string; family?: string; direction?: { out: string; in: string }; notDirect?: string; endpoint: string; rttMs?: number; rxBytes: number; txBytes: number; lastHandshake?: string }
interface Traffic { txPackets: number; txBytes: number; rxPackets: number; rxBytes: number; windowS?: number }

function peerTable(peers: PeerRow[]): void {
  // OUT/IN: the path we send on and the one the peer's packets arrive by; WHY: why we do not send direct.
  printTable(["PEER", "OVERLAY IP", "STATE", "ACTIVITY", "PATH", "FAMILY", "OUT/IN", "WHY NOT DIRECT", "ENDPOINT", "RTT", "RX", "TX", "LAST HANDSHAKE"],
    peers.map((p) => [p.name, p.overlayIp ?? "-", p.state, p.activity ?? "-", p.path, p.family ?? "-", p.direction ? `${p.direction.out}/${p.direction.in}` : "-", p.notDirect ?? "-", p.endpoint,
      p.rttMs !== undefined ? `${p.rttMs.toFixed(2)}ms` : "-", p.rxBytes, p.txBytes, p.lastHandshake ?? "-"]));
}

function perMinute(t: Traffic): string {
  return `sent ${t.txPackets} packets, ${t.txBytes} bytes; received ${t.rxPackets} packets, ${t.rxBytes} bytes${t.windowS !== undefined && t.windowS < 60 ? ` (over ${t.windowS} s)` : ""}`;
}

export function registerPeers(program: Command): void {
  common(program.command("status").description("this node's identity, listen address and peers"))
    .action(async (o: SocketOpts) => {
      let s;
      try {
        s = await ask<{ name: string; identity: string; release?: { version: string; commit: string; protocol: number }; overlayIp?: string; listen: string; cipher: string; dataPlane?: DataPlaneRow; certificate: { notAfter: string }; user?: { name: string; groups: string[]; notAfter: string }; traffic?: { perMinute: Traffic }; peers: PeerRow[]; drops: Record<string, number>; problems: Problem[] }>(o, "status");
      } catch (err) {
        // No daemon: say why the last start failed, if `ember up` left the diagnosis behind.
        const last = lastStartFailure(o.state);
        if (!last) throw err;
        if (o.json) printJson({ running: false, error: (err as Error).message, lastStartFailure: last });
        else { process.stdout.write(`not running: ${(err as Error).message}\nlast start failed ${last.at}: ${last.error}\n`); printProblems(last.problems); }
        throw new CliError("no daemon is running", 1);
      }
      if (o.json) return printJson(s);
      printFields([["node", s.name], ["identity", s.identity],
        ...(s.release ? [["version", `ember ${s.release.version} (commit ${s.release.commit}, protocol ${s.release.protocol})`] as [string, string]] : []), ...(s.overlayIp ? [["overlay ip", s.overlayIp] as [string, string]] : []),
        ...(s.user ? [["user", `${s.user.name} (groups ${s.user.groups.join(", ") || "-"}; until ${s.user.notAfter})`] as [string, string]] : []), ["listen", s.listen], ["cert expires", s.certificate.notAfter], ["cipher", `ChaCha20-Poly1305 (${s.cipher})`],
        ...(s.dataPlane ? [["data plane", describeDataPlane(s.dataPlane)] as [string, string]] : []),
        ...(s.traffic ? [["traffic per minute", perMinute(s.traffic.perMinute)] as [string, string]] : [])]);
      printProblems(s.problems ?? []);
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
      // One line per try with the path it took, as `tailscale ping` prints: a path change shows mid-run.
      const tries: { seq: number; path?: string; endpoint?: string; rttMs?: number; error?: string }[] = [];
      for (let i = 0; i < count; i++) {
        try {
          const r = await ask<{ rttMs: number; path: string; endpoint: string }>(o, "ping-path", { name, timeoutMs: Number(o.timeout) }, Number(o.timeout) + 2_000);
          tries.push({ seq: i + 1, path: r.path, endpoint: r.endpoint, rttMs: r.rttMs });
          if (!o.json) process.stdout.write(`pong from ${name} via ${r.path === "direct" ? `direct ${r.endpoint}` : r.path} in ${r.rttMs.toFixed(3)} ms\n`);
        } catch (err) {
          // No daemon to ask: nothing to retry.
          if (/^(no daemon is running|control socket |no answer from the daemon)/.test((err as Error).message)) throw err;
          tries.push({ seq: i + 1, error: (err as Error).message });
          if (!o.json) process.stdout.write(`no pong from ${name}: ${(err as Error).message}\n`);
        }
      }
      const ok = tries.filter((t) => t.rttMs !== undefined);
      if (o.json) printJson({ name, tries, rttMs: ok.map((t) => t.rttMs), received: ok.length, sent: count });
      // The last reason names the peer's state (no_answer, refused and why): the error must carry it.
      const last = tries[tries.length - 1]?.error;
      const tried = count === 1 ? "1 try" : `${count} tries`;
      if (ok.length === 0) throw new CliError(`no answer from ${name} in ${tried}: ${last}`, 1);
    });
}
