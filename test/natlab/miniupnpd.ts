// miniupnpd (Debian miniupnpd-nftables) on a lab router: NAT-PMP/PCP and UPnP IGD on the router's LAN,
// mappings as nft rules in the router's own table "miniupnpd". Two lab-specific pieces, both because the
// lab's WAN addresses come from 198.18.0.0/15, which miniupnpd takes as reserved and then refuses every
// mapping ("Port forwarding is impossible"), from its interface and from `ext_ip=` alike:
// - its STUN mode is on, against tools/ext-ip-stun.ts in the router's own namespace, which reports the
//   router's WAN address (what a STUN server on the internet would see of a router with a public WAN);
// - the table and chains miniupnpd writes into are made here (the package's nft_init.sh needs a helper
//   script Debian does not ship), with the forward chain accepting: the lab's NAT rules stay in charge.
import { execFileSync, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Lab, Router } from "./lab.js";
import { startTool } from "./tools.js";

export const MINIUPNPD = "/usr/sbin/miniupnpd";
const STUN_PORT = 3478;

/** Why miniupnpd cannot run here, or undefined. */
export function miniupnpdMissing(): string | undefined {
  try { execFileSync(MINIUPNPD, ["--version"], { stdio: "pipe" }); return undefined; } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT" ? `${MINIUPNPD} is not installed (Debian package miniupnpd-nftables)` : undefined;
  }
}

const TABLE = `add table inet miniupnpd
delete table inet miniupnpd
table inet miniupnpd {
  chain forward { type filter hook forward priority filter; policy accept; jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority dstnat; policy accept; jump prerouting_miniupnpd; }
  chain postrouting { type nat hook postrouting priority srcnat - 1; policy accept; jump postrouting_miniupnpd; }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
`;

export function miniupnpdConfig(router: Router): string {
  return [
    "ext_ifname=wan0",
    "listening_ip=lan0",
    "port=0", // HTTP on a free port; SSDP answers tell clients which
    "enable_natpmp=yes", // NAT-PMP and PCP (one switch in miniupnpd)
    "enable_upnp=yes",
    "secure_mode=no",
    "system_uptime=no",
    "clean_ruleset_interval=0",
    "upnp_table_name=miniupnpd",
    "upnp_nat_table_name=miniupnpd",
    "ext_perform_stun=yes",
    `ext_stun_host=${router.lanAddress}`,
    `ext_stun_port=${STUN_PORT}`,
    "uuid=3e6bd6a0-0000-4000-8000-00000000e7be",
    `allow 1024-65535 ${router.lanNet} 1024-65535`,
    "deny 0-65535 0.0.0.0/0 0-65535",
    "",
  ].join("\n");
}

export interface Miniupnpd { child: ChildProcess; log(): string; dnatRules(): string[] }

/** Starts miniupnpd on the router; resolves once it serves NAT-PMP/PCP and has port forwarding enabled. */
export async function startMiniupnpd(lab: Lab, router: Router, dir: string): Promise<Miniupnpd> {
  mkdirSync(dir, { recursive: true });
  lab.nft(router, TABLE);
  const stun = startTool(lab, router, "ext-ip-stun", ["--listen", `${router.lanAddress}:${STUN_PORT}`, "--claim", router.wanAddress]);
  await stun.nextJson(20_000);
  const conf = join(dir, "miniupnpd.conf");
  writeFileSync(conf, miniupnpdConfig(router));
  const child = lab.spawn(router, [MINIUPNPD, "-d", "-f", conf, "-P", join(dir, "miniupnpd.pid")]);
  const lines: string[] = [];
  await new Promise<void>((resolve, reject) => {
    let forwarding = false, listening = false;
    const t = setTimeout(() => reject(new Error(`miniupnpd did not start:\n${lines.slice(-20).join("\n")}`)), 30_000);
    const onLine = (l: string) => {
      lines.push(l);
      if (lines.length > 400) lines.shift();
      if (/Port forwarding is now enabled/.test(l)) forwarding = true;
      if (/Listening for NAT-PMP\/PCP/.test(l)) listening = true;
      if (forwarding && listening) { clearTimeout(t); resolve(); }
    };
    // -d logs to stderr; read both in case the build logs elsewhere.
    createInterface({ input: child.stderr! }).on("line", onLine);
    createInterface({ input: child.stdout! }).on("line", onLine);
    child.once("exit", (code) => { clearTimeout(t); reject(new Error(`miniupnpd exited ${code}:\n${lines.slice(-20).join("\n")}`)); });
  });
  return {
    child,
    log: () => lines.join("\n"),
    dnatRules: () => lab.exec(router, ["nft", "list", "chain", "inet", "miniupnpd", "prerouting_miniupnpd"]).split("\n").filter((l) => l.includes("dnat")).map((l) => l.trim()),
  };
}
