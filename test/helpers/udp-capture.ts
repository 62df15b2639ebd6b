// Counts the UDP datagrams a process sends on loopback, by nftables counters in a table of the test's own
// (output hook: every datagram a local socket sends passes it, loopback included). Counting only: the rules
// accept everything, so nothing else on the machine is affected. One table per capture, deleted by close().
import { spawnSync } from "node:child_process";

export interface CaptureRule {
  /** A name for the counter. */
  name: string;
  /** An nft match, e.g. `udp sport 4000 udp dport 5000` or `udp sport 4000 ip length > 1280`. */
  match: string;
}

let seq = 0;

function nft(args: string[], input?: string): string {
  const r = spawnSync("nft", args, { input, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`nft ${args.join(" ")}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

export class UdpCapture {
  readonly table = `ember_cap_${process.pid}_${++seq}`;

  constructor(rules: CaptureRule[]) {
    const body = rules.map((r) => `    ${r.match} counter comment "${r.name}"`).join("\n");
    nft(["-f", "-"], `table inet ${this.table} {\n  chain out {\n    type filter hook output priority 0; policy accept;\n${body}\n  }\n}\n`);
  }

  /** Packets and bytes per rule name. */
  counters(): Record<string, { packets: number; bytes: number }> {
    const out: Record<string, { packets: number; bytes: number }> = {};
    const j = JSON.parse(nft(["-j", "list", "table", "inet", this.table])) as { nftables: { rule?: { comment?: string; expr: { counter?: { packets: number; bytes: number } }[] } }[] };
    for (const item of j.nftables) {
      const rule = item.rule;
      if (!rule?.comment) continue;
      const c = rule.expr.find((e) => e.counter)?.counter;
      if (c) out[rule.comment] = { packets: c.packets, bytes: c.bytes };
    }
    return out;
  }

  close(): void {
    spawnSync("nft", ["delete", "table", "inet", this.table]);
  }
}
