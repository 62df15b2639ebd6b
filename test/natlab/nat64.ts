// An IPv6-only site behind NAT64/DNS64 in the NAT lab, as on many cellular networks (issue 26): the site's
// router runs Debian's tayga (a userspace NAT64 on a TUN device) and unbound with its dns64
// module, both started here in the router's namespace and stopped by PID with the lab. Hosts on the site have
// IPv6 only; the router's IPv4 side masquerades the NAT64 pool out of its WAN (its "eim" NAT), so an IPv4-only
// server sees the router's public address. Lab names (coordination server, relays) live in a small zone that
// unbound serves to the site, A records only: their AAAA records are what DNS64 synthesizes.
import type { ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Host, Lab, Router } from "./lab.js";
import { addHostIpv6, addSiteIpv6, type Ipv6Host, type Ipv6Site, type V6Firewall } from "./ipv6.js";
import { LAB_ZONE, writeNetnsEtc, zoneFile, type LabRecords } from "./names.js";

/**
 * A network-specific NAT64 prefix (RFC 6052), where carriers mostly use the well-known 64:ff9b::/96: tayga 0.9.2
 * drops traffic between the well-known prefix and non-global IPv4, which the lab's 198.18.0.0/15 is (measured: the
 * router's own ping through tayga got an ICMP error), and refuses RFC 8215's 64:ff9b:1::/96 as reserved. For
 * EmberNet the prefix is opaque: DNS64 hands out the addresses, the node never builds one.
 */
export const NAT64_PREFIX = "2001:db8:64::/96";

export interface Nat64Site extends Ipv6Site {
  readonly tayga: ChildProcess;
  readonly unbound: ChildProcess;
  /** The site's resolver (unbound, DNS64) on the router's LAN address, port 53. */
  readonly dns: string;
}

/** The address DNS64 synthesizes for an IPv4 address: 64:ff9b::a.b.c.d, written in hex. */
export function nat64Address(ipv4: string): string {
  const [a, b, c, d] = ipv4.split(".").map(Number);
  return `2001:db8:64::${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

/**
 * tayga's configuration: the TUN device, its own addresses (the source of the ICMP errors it makes; with the
 * well-known prefix and a non-global IPv4 address it needs an IPv6 one of its own), the prefix and the dynamic
 * IPv4 pool that IPv6 hosts are mapped into.
 */
export function taygaConfig(o: { tun: string; ipv4Address: string; ipv6Address: string; pool: string; dataDir: string }): string {
  return [`tun-device ${o.tun}`, `ipv4-addr ${o.ipv4Address}`, `ipv6-addr ${o.ipv6Address}`, `prefix ${NAT64_PREFIX}`,
    `dynamic-pool ${o.pool}`, `data-dir ${o.dataDir}`, ""].join("\n");
}

/**
 * unbound in the foreground as the site's DNS64 resolver. The zone's A records come from an auth-zone used for
 * upstream answers only, so they pass through the dns64 module (local-data would be answered before it runs).
 */
export function unboundConfig(o: { listen: string; zoneFile: string; pidFile: string }): string {
  return `server:
  interface: ${o.listen}
  port: 53
  do-daemonize: no
  username: ""
  chroot: ""
  directory: ""
  pidfile: "${o.pidFile}"
  use-syslog: no
  logfile: ""
  verbosity: 1
  do-ip4: yes
  do-ip6: yes
  access-control: ::/0 allow
  module-config: "dns64 iterator"
  # unbound answers .test NXDOMAIN itself by default (RFC 6761 local zones): let the auth-zone answer.
  local-zone: "${LAB_ZONE.split(".").pop()}." nodefault
  dns64-prefix: ${NAT64_PREFIX}
  auto-trust-anchor-file: ""
  trust-anchor-file: ""
auth-zone:
  name: "${LAB_ZONE}"
  zonefile: "${o.zoneFile}"
  for-upstream: yes
  for-downstream: no
  fallback-enabled: no
`;
}

/** Resolves once the child prints a line matching `ready` on stdout or stderr; rejects when it exits first. */
function waitLine(child: ChildProcess, label: string, ready: RegExp, timeoutMs = 10_000): Promise<void> {
  const tail: string[] = [];
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${label} did not start within ${timeoutMs} ms:\n${tail.join("\n")}`)), timeoutMs);
    for (const s of [child.stdout!, child.stderr!]) {
      createInterface({ input: s }).on("line", (l) => {
        tail.push(l);
        if (tail.length > 20) tail.shift();
        if (ready.test(l)) { clearTimeout(t); resolve(); }
      });
    }
    child.once("exit", (code) => { clearTimeout(t); reject(new Error(`${label} exited ${code}:\n${tail.join("\n")}`)); });
  });
}

/** Waits until the router itself reaches `ipv4` through tayga (ping 64:ff9b::a.b.c.d): tayga has opened its TUN. */
async function translating(lab: Lab, router: Router, tayga: ChildProcess, ipv4: string | undefined, timeoutMs = 10_000): Promise<void> {
  if (!ipv4) return;
  const end = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < end) {
    if (tayga.exitCode !== null) throw new Error(`tayga in ${router.ns} exited ${tayga.exitCode}`);
    const r = await lab.run(router, ["ping", "-6", "-c1", "-W1", nat64Address(ipv4)], { timeoutMs: 3_000 });
    if (r.code === 0) return;
    last = (r.stdout + r.stderr).trim().split("\n").slice(-2).join(" ");
  }
  throw new Error(`tayga in ${router.ns}: ${nat64Address(ipv4)} unreachable after ${timeoutMs} ms (${last})`);
}

/**
 * A router whose site is IPv6-only behind NAT64/DNS64. Its IPv4 LAN /24 (unused on an IPv6-only LAN) becomes the
 * NAT64 pool; `records` are the zone's names (relative to LAB_ZONE) and their IPv4 addresses.
 */
export async function addNat64Site(lab: Lab, name: string, dir: string, records: LabRecords, firewall: V6Firewall = "stateful"): Promise<Nat64Site> {
  const router: Router = await lab.addRouter(name, "eim");
  const site = addSiteIpv6(lab, router, firewall);
  const pool = router.lanNet; // 198.19.N.0/24
  const base = router.lanAddress.slice(0, router.lanAddress.lastIndexOf("."));
  lab.exec(router, ["ip", "-4", "addr", "flush", "dev", "lan0"]);
  const work = join(dir, `nat64-${name}`);
  mkdirSync(work, { recursive: true });
  const conf = join(work, "tayga.conf");
  writeFileSync(conf, taygaConfig({ tun: "nat64", ipv4Address: `${base}.1`, ipv6Address: `2001:db8:2:${site.n}::1`, pool: `${base}.128/25`, dataDir: work }));
  lab.exec(router, ["tayga", "--mktun", "-d", "-c", conf]); // -d: errors on stderr, not syslog
  lab.exec(router, ["ip", "link", "set", "nat64", "up"]);
  lab.exec(router, ["ip", "-4", "route", "add", pool, "dev", "nat64"]);
  lab.exec(router, ["ip", "-6", "route", "add", NAT64_PREFIX, "dev", "nat64"]);
  const tayga = lab.spawn(router, ["tayga", "-d", "-c", conf]);
  // -d keeps it in the foreground with its messages on stdout: drained, or a full pipe would stall the NAT64.
  tayga.stdout!.resume();
  tayga.stderr!.resume();
  await translating(lab, router, tayga, Object.values(records).flat().find((a) => !a.includes(":")));
  const zone = join(work, `${LAB_ZONE}.zone`);
  writeFileSync(zone, zoneFile(records));
  const ubConf = join(work, "unbound.conf");
  writeFileSync(ubConf, unboundConfig({ listen: site.lanAddress, zoneFile: zone, pidFile: join(work, "unbound.pid") }));
  const unbound = lab.spawn(router, ["unbound", "-d", "-c", ubConf]);
  await waitLine(unbound, `unbound in ${router.ns}`, /start of service/);
  return { ...site, tayga, unbound, dns: site.lanAddress };
}

/** A host on the NAT64 site with IPv6 only, resolving through the site's DNS64 (names.ts writeNetnsEtc). */
export function addNat64Host(lab: Lab, site: Nat64Site, host: Host): Ipv6Host {
  const h = addHostIpv6(lab, site, host, { ipv6Only: true });
  writeNetnsEtc(host, "resolv.conf", `nameserver ${site.dns}\noptions timeout:1 attempts:2\n`);
  return h;
}
