// This node's direct candidates: the address the gateway mapped for us (port mapping, when held), its
// interface addresses of each family it has a socket for, on the overlay port, then the reflexive addresses and
// the mapping behaviour that the last netcheck (STUN on the node's own sockets, each family on its own) found,
// and the punch TTL measured from our NAT depth. Setters:
// refresh (netcheck) and setMapped (the port mapper's onChange); read by the mesh for its status reports and by
// the path manager's call-me-maybe.
import { measureHops, punchTtlFor, PUNCH_TTL_DEFAULT } from "../nat/hops.js";
import { netcheck, type NetcheckReport } from "../nat/netcheck.js";
import { isIP } from "node:net";
import type { StunServerAddress } from "../nat/stun.js";
import { familyOf, sameEndpoint, type Endpoint } from "../addr/endpoint.js";
import { hasRoutableAddress, localAddresses } from "./interfaces.js";
import type { Family, UdpConn } from "./udp-conn.js";

const NETCHECK_TIMEOUT_MS = 2_000;

export class LocalCandidates {
  /** Mapping behaviour found by netcheck, reported to the coordination server. */
  natType?: string;
  /** Hops to the first STUN server (hops.ts), measured once per reflexive address; the punch TTL follows it. */
  hops?: number;
  punchTtl = PUNCH_TTL_DEFAULT;
  /**
   * Set once a netcheck, hop measurement included, has finished: before, punchTtl is only the default, and a
   * punch with it dies inside a carrier NAT (NAT444), which then clashes with the peers' probes.
   */
  punchTtlKnown = false;
  /**
   * No NAT on our side: the last netcheck saw only our own interface address and port (a public address, or a
   * network with no translation). Such a node holds no mapping at rest (src/nat/hold.ts).
   */
  noNat = false;
  private hopsFor = "";
  private reflexive: Endpoint[] = [];
  private mapped?: Endpoint;
  /** The families a datagram can leave this host in (sendFamilies), as of the last netcheck. */
  private sendable: ReadonlySet<Family>;

  constructor(private readonly conn: UdpConn) {
    this.sendable = this.sendFamilies();
  }

  /** Whether a datagram to this endpoint can leave the host at all (PathHost.canSend). */
  canSend(ep: Endpoint): boolean {
    return ep.kind !== "udp" || this.sendable.has(familyOf(ep.host));
  }

  /**
   * A socket's family counts when the socket is bound to an address of its own or the host has an address of that
   * family beside loopback; on a host with loopback alone, every socket counts (a single-host mesh).
   */
  private sendFamilies(): ReadonlySet<Family> {
    const legs = this.conn.sockets;
    const bound = (a: string) => a !== "0.0.0.0" && a !== "::";
    const usable = legs.filter((l) => bound(l.socket.address().address) || hasRoutableAddress(l.family)).map((l) => l.family);
    return new Set(usable.length ? usable : legs.map((l) => l.family));
  }

  /** Where peers may reach us directly: interface addresses of each family on our port, then STUN-reflexive ones. */
  list(): Endpoint[] {
    // The mapped address first: the gateway promised to forward it, whatever its NAT does otherwise.
    const out: Endpoint[] = this.mapped ? [this.mapped] : [];
    for (const host of this.ownAddresses()) out.push({ kind: "udp" as const, host, port: this.conn.address().port });
    for (const r of this.reflexive) if (!out.some((e) => sameEndpoint(e, r))) out.push(r);
    return out;
  }

  /** The interface addresses our sockets can be reached at, IPv4 first. */
  private ownAddresses(): string[] {
    return this.conn.sockets.flatMap((leg) => localAddresses(leg.socket.address().address, leg.family));
  }

  /** The port mapper's external ip:port, or undefined when the mapping is gone. */
  setMapped(ep: { host: string; port: number } | undefined): void {
    this.mapped = ep ? { kind: "udp", host: ep.host, port: ep.port } : undefined;
  }

  mappedEndpoint(): Endpoint | undefined {
    return this.mapped;
  }

  /**
   * Our network changed (an address, a route, a wake-up): the reflexive addresses and the NAT depth are of the old
   * network, and are forgotten (status reports carry the interface addresses alone until netcheck). No punch round
   * starts until the next netcheck has measured the new one (punchTtlKnown): a call-me-maybe would hand the peers
   * our old public address, and a punch with the old TTL may not leave a deeper NAT.
   */
  networkChanged(): void {
    this.punchTtlKnown = false;
    this.hopsFor = "";
    this.reflexive = [];
    this.sendable = this.sendFamilies();
  }

  reflexiveEndpoints(): readonly Endpoint[] {
    return this.reflexive;
  }

  /**
   * STUN against these servers from the node's own sockets, each family on its own; the candidates follow the
   * answers. The report is the first family's (IPv4 where there is a socket for it), with IPv6's beside it.
   */
  async refresh(servers: StunServerAddress[]): Promise<NetcheckReport> {
    const legs = this.conn.sockets;
    this.sendable = this.sendFamilies();
    const reports = await Promise.all(legs.map((leg) => netcheck(leg.socket, leg.stun, { servers: serversFor(servers, leg.family), timeoutMs: NETCHECK_TIMEOUT_MS })));
    const primary = primaryFamily(reports);
    const report = reports[primary];
    this.natType = report.mapping;
    this.reflexive = reports.flatMap((r) => r.candidates.filter((c) => c.type === "reflexive").map((c) => ({ kind: "udp" as const, host: c.address, port: c.port })));
    // What the STUN servers saw, not the reflexive candidates: a mapping equal to a local address is no candidate.
    const seen = report.servers.flatMap((s) => (s.mapped ? [s.mapped] : []));
    const own = this.ownAddresses();
    this.noNat = seen.length > 0 && seen.every((m) => m.port === report.localPort && own.includes(m.address));
    // The NAT depth changes only with the network: measured again when our public address does.
    const first = legs[primary];
    const key = this.reflexive.map((r) => (r.kind === "udp" ? r.host : "")).join(",");
    const hopServers = serversFor(servers, first.family);
    try {
      if (hopServers.length && report.mapping !== "udp-blocked" && key && key !== this.hopsFor) {
        this.hopsFor = key;
        this.hops = await measureHops(first.stun, hopServers[0]);
        this.punchTtl = punchTtlFor(this.hops);
      }
    } finally {
      this.punchTtlKnown = true;
    }
    if (reports.length < 2) return report;
    return primary === 0 ? { ...report, ipv6: reports[1] } : { ...report, ipv4: reports[0] };
  }
}

/**
 * Which family's netcheck speaks for the node (pure): IPv4 when any STUN server answered it, else the first family
 * that got an answer, else the first. An IPv6-only host (a cellular site behind NAT64) still has an IPv4 socket,
 * whose silence made the node call itself UDP-blocked while IPv6 worked.
 */
export function primaryFamily(reports: readonly Pick<NetcheckReport, "servers">[]): number {
  const i = reports.findIndex((r) => r.servers.some((s) => s.mapped));
  return i < 0 ? 0 : i;
}

/** The STUN servers a socket of this family can ask: literals of its family, and names (resolved in its family). */
function serversFor(servers: StunServerAddress[], family: Family): StunServerAddress[] {
  return servers.filter((s) => {
    const v = isIP(s.host);
    return v === 0 || v === family;
  });
}
