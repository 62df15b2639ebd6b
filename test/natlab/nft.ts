// The nftables rulesets of the NAT lab, in one place (docs/natlab.md quotes them).
// Every router has WAN interface "wan0" (towards the core) and LAN bridge "lan0".

export type NatKind = "eim" | "edm" | "udp-blocked" | "none";

/** `add table` + `delete table` first makes each script replace the table atomically (nft -f is one transaction). */
function replaceTable(name: string, body: string): string {
  return `add table ip ${name}\ndelete table ip ${name}\ntable ip ${name} {\n${body}}\n`;
}

/** The NAT/firewall of one router kind. */
export function natRuleset(kind: NatKind): string {
  switch (kind) {
    case "eim": // Linux masquerade keeps the source port when free: endpoint-independent until conntrack clashes.
      return replaceTable("natlab", `  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" masquerade
  }
`);
    case "edm": // fully-random: every new flow (new destination) gets a random public port.
      return replaceTable("natlab", `  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" masquerade fully-random
  }
`);
    case "udp-blocked": // a strict office firewall: only outbound TCP 443 and its replies pass.
      return replaceTable("natlab", `  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "wan0" tcp dport 443 accept
    iifname "lan0" oifname "wan0" meta l4proto udp counter drop
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" masquerade
  }
`);
    case "none": // a plain router: the LAN is public and routed by the core.
      return replaceTable("natlab", "");
  }
}

/** Random loss of `percent`% in each direction on the WAN: inbound before conntrack, outbound last. */
export function lossRuleset(percent: number): string {
  return replaceTable("natlab_loss", `  chain loss_in {
    type filter hook prerouting priority raw - 10; policy accept;
    iifname "wan0" numgen random mod 100 < ${percent} counter drop
  }
  chain loss_out {
    type filter hook postrouting priority srcnat + 10; policy accept;
    oifname "wan0" numgen random mod 100 < ${percent} counter drop
  }
`);
}

/** The core's table; cuts are rules added to (and deleted from) chain "cut" by handle. */
export const CORE_RULESET = replaceTable("natlab", `  chain cut {
    type filter hook forward priority filter; policy accept;
  }
`);

/** Rule bodies (one per direction) dropping UDP between two public addresses, optionally pinned to ports. */
export function cutRules(a: string, b: string, aPort?: number, bPort?: number): string[] {
  const side = (src: string, sport: number | undefined, dst: string, dport: number | undefined) =>
    [`ip saddr ${src} ip daddr ${dst} meta l4proto udp`,
      sport !== undefined ? `udp sport ${sport}` : "",
      dport !== undefined ? `udp dport ${dport}` : "",
      "counter drop"].filter(Boolean).join(" ");
  return [side(a, aPort, b, bPort), side(b, bPort, a, aPort)];
}

/** Counts IPv4 fragments (more-fragments flag or a fragment offset) the core forwards. */
export const FRAGMENT_COUNTER_RULESET = replaceTable("natlab_frag", `  chain count {
    type filter hook forward priority filter - 1; policy accept;
    ip frag-off & 0x3fff != 0 counter
  }
`);
