// IPv6 in the NAT lab (issue 26): the same namespaces as lab.ts, given IPv6 beside (or instead of) IPv4.
// Public addresses come from 2001:db8::/32, sites also carry a unique-local prefix from fd00::/8 (as home routers
// announce one), and no NAT66: a site's hosts have global addresses that the core routes to its router. A site
// behind a "stateful" firewall lets in only replies (ct state established,related): the home-router default.
// Everything here runs `ip`/`nft` through the lab's public exec, so lab.ts itself stays IPv4 (docs/natlab.md).
import type { Host, Lab, Node, Router, ServerHost } from "./lab.js";

/** What a site's router lets in from the internet over IPv6: replies only, or everything (no firewall). */
export type V6Firewall = "stateful" | "open";

/** Link N to the core (the IPv4 198.18.N.0/24): core ::1, far end ::2. N is written as is (readable, unique). */
export const linkPrefix6 = (n: number) => `2001:db8:0:${n}::`;
/** Site N's routed global /64 (the IPv4 198.19.N.0/24 of its LAN): router ::1, hosts ::10, ::11, ... */
export const sitePrefix6 = (n: number) => `2001:db8:1:${n}::`;
/** Site N's unique-local /64: never routed beyond the site. */
export const ulaPrefix6 = (n: number) => `fd00:0:1:${n}::`;

export interface Ipv6Server { readonly server: ServerHost; readonly address: string }
export interface Ipv6Site {
  readonly router: Router;
  readonly firewall: V6Firewall;
  /** The router's address on its WAN link, and on its LAN (the hosts' gateway and, with NAT64, their DNS). */
  readonly wanAddress: string;
  readonly lanAddress: string;
  readonly n: number;
}
export interface Ipv6Host {
  readonly host: Host;
  /** The host's global address (routed to its site from the core). */
  readonly address: string;
  /** Its unique-local address (reachable only inside its site). */
  readonly ula: string;
}

/** The firewall of a stateful IPv6 site: replies and related ICMPv6 in, anything new from outside dropped. */
export function v6FirewallRuleset(kind: V6Firewall): string {
  const body = kind === "open" ? "" : `  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" counter drop comment "new inbound"
  }
`;
  return `add table ip6 natlab6\ndelete table ip6 natlab6\ntable ip6 natlab6 {\n${body}}\n`;
}

const coreReady = new WeakSet<Lab>();
/** Namespaces given IPv6 per lab, for settleIpv6. */
const touched = new WeakMap<Lab, Set<Node>>();
const siteHosts = new WeakMap<Router, number>();

/** The N of a node's link to the core, from its IPv4 address 198.18.N.2 (routers behind another one have none). */
function linkNumber(address: string, what: string): number {
  const m = /^198\.18\.(\d+)\.2$/.exec(address);
  if (!m) throw new Error(`${what}: IPv6 needs a link to the core (address ${address} is not 198.18.N.2; a router behind another has none)`);
  return Number(m[1]);
}

function ip(lab: Lab, node: Node, args: string[]): void {
  lab.exec(node, ["ip", ...args]);
}

/** `nodad`: an address is usable at once (duplicate address detection would hold it "tentative" for a second). */
function addAddress(lab: Lab, node: Node, cidr: string, dev: string): void {
  if (!touched.has(lab)) touched.set(lab, new Set());
  touched.get(lab)!.add(node);
  ip(lab, node, ["-6", "addr", "add", cidr, "dev", dev, "nodad"]);
}

function forwardIpv6(lab: Lab, node: Node): void {
  lab.exec(node, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
}

function ensureCore(lab: Lab): void {
  if (coreReady.has(lab)) return;
  forwardIpv6(lab, lab.core);
  coreReady.add(lab);
}

/** Gives a server host an IPv6 address on its link to the core (dual-stack: its IPv4 stays). */
export function addServerIpv6(lab: Lab, server: ServerHost): Ipv6Server {
  ensureCore(lab);
  const n = linkNumber(server.address, `server ${server.name}`);
  addAddress(lab, lab.core, `${linkPrefix6(n)}1/64`, `c${n}`);
  addAddress(lab, server, `${linkPrefix6(n)}2/64`, "eth0");
  ip(lab, server, ["-6", "route", "add", "default", "via", `${linkPrefix6(n)}1`]);
  return { server, address: `${linkPrefix6(n)}2` };
}

/**
 * Gives a router's site IPv6: an address on its WAN link, a routed global /64 and a ULA /64 on its LAN, the
 * core's route to the global one, and the firewall. Its IPv4 NAT stays as it was (a dual-stack site).
 */
export function addSiteIpv6(lab: Lab, router: Router, firewall: V6Firewall): Ipv6Site {
  ensureCore(lab);
  const n = linkNumber(router.wanAddress, `router ${router.name}`);
  addAddress(lab, lab.core, `${linkPrefix6(n)}1/64`, `c${n}`);
  addAddress(lab, router, `${linkPrefix6(n)}2/64`, "wan0");
  ip(lab, router, ["-6", "route", "add", "default", "via", `${linkPrefix6(n)}1`]);
  addAddress(lab, router, `${sitePrefix6(n)}1/64`, "lan0");
  addAddress(lab, router, `${ulaPrefix6(n)}1/64`, "lan0");
  forwardIpv6(lab, router);
  ip(lab, lab.core, ["-6", "route", "add", `${sitePrefix6(n)}/64`, "via", `${linkPrefix6(n)}2`]);
  lab.nft(router, v6FirewallRuleset(firewall));
  return { router, firewall, wanAddress: `${linkPrefix6(n)}2`, lanAddress: `${sitePrefix6(n)}1`, n };
}

/**
 * Gives a host on an IPv6 site its global and ULA addresses, default route via the router. With `ipv6Only`, its
 * IPv4 address (and so its IPv4 default route) is removed: the host has no IPv4 at all but loopback.
 */
export function addHostIpv6(lab: Lab, site: Ipv6Site, host: Host, opts: { ipv6Only?: boolean } = {}): Ipv6Host {
  if (host.router !== site.router) throw new Error(`host ${host.name} is not on router ${site.router.name}`);
  const i = siteHosts.get(site.router) ?? 0;
  siteHosts.set(site.router, i + 1);
  const suffix = (0x10 + i).toString(16);
  const address = `${sitePrefix6(site.n)}${suffix}`, ula = `${ulaPrefix6(site.n)}${suffix}`;
  addAddress(lab, host, `${address}/64`, "eth0");
  addAddress(lab, host, `${ula}/64`, "eth0");
  ip(lab, host, ["-6", "route", "add", "default", "via", site.lanAddress]);
  if (opts.ipv6Only) ip(lab, host, ["-4", "addr", "flush", "dev", "eth0"]);
  return { host, address, ula };
}

/**
 * Waits until no interface of the lab's IPv6 namespaces holds a tentative address. New veths get link-local
 * addresses under duplicate address detection, and until it ends neighbour discovery fails: the first pings
 * across the lab were lost for about 2 s. Call it once the topology is built.
 */
export async function settleIpv6(lab: Lab, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (const node of touched.get(lab) ?? []) {
    for (;;) {
      const tentative = lab.exec(node, ["ip", "-6", "addr", "show", "tentative"]).trim();
      if (!tentative) break;
      if (Date.now() > end) throw new Error(`IPv6 in ${node.ns} still tentative after ${timeoutMs} ms:\n${tentative}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * Counts IPv6 UDP datagrams that reach the core with hop limit 1 from now on: a low-hop-limit punch that left its
 * own site and dies here (the kernel drops it before forwarding), as a TTL-2 IPv4 punch does.
 */
export function countLowHopPunches(lab: Lab): { read(): number } {
  lab.nft(lab.core, `add table ip6 natlab6_hops\ndelete table ip6 natlab6_hops\ntable ip6 natlab6_hops {
  chain count { type filter hook prerouting priority raw; policy accept;
    ip6 hoplimit 1 meta l4proto udp counter
  }
}
`);
  return { read: () => Number(/packets (\d+)/.exec(lab.exec(lab.core, ["nft", "list", "chain", "ip6", "natlab6_hops", "count"]))?.[1] ?? NaN) };
}

/** Packets the stateful firewall dropped as new inbound so far (NaN for an open site). */
export function firewallDrops(lab: Lab, site: Ipv6Site): number {
  if (site.firewall === "open") return NaN;
  const out = lab.exec(site.router, ["nft", "list", "chain", "ip6", "natlab6", "forward"]);
  return Number(/packets (\d+) bytes \d+ drop/.exec(out)?.[1] ?? NaN);
}
