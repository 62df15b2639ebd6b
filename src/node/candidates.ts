// This node's direct candidates: the address the gateway mapped for us (port mapping, when held), its
// interface addresses on the overlay port, then the reflexive addresses and the mapping behaviour that the
// last netcheck (STUN on the node's own socket) found, and the punch TTL measured from our NAT depth. Setters:
// refresh (netcheck) and setMapped (the port mapper's onChange); read by the mesh for its status reports and by
// the path manager's call-me-maybe.
import { measureHops, punchTtlFor, PUNCH_TTL_DEFAULT } from "../nat/hops.js";
import { netcheck, type NetcheckReport } from "../nat/netcheck.js";
import type { StunServerAddress } from "../nat/stun.js";
import { sameEndpoint, type Endpoint } from "../session/endpoint.js";
import { localAddresses } from "./interfaces.js";
import type { UdpConn } from "./udp-conn.js";

const NETCHECK_TIMEOUT_MS = 2_000;

export class LocalCandidates {
  /** Mapping behaviour found by netcheck, reported to the coordination server. */
  natType?: string;
  lastReport?: NetcheckReport;
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

  constructor(private readonly conn: UdpConn, private readonly listenHost: string) {}

  /** Where peers may reach us directly: interface addresses on our port, then STUN-reflexive ones. */
  list(): Endpoint[] {
    const port = this.conn.address().port;
    // The mapped address first: the gateway promised to forward it, whatever its NAT does otherwise.
    const out: Endpoint[] = this.mapped ? [this.mapped] : [];
    for (const host of localAddresses(this.listenHost)) out.push({ kind: "udp" as const, host, port });
    for (const r of this.reflexive) if (!out.some((e) => sameEndpoint(e, r))) out.push(r);
    return out;
  }

  /** The port mapper's external ip:port, or undefined when the mapping is gone. */
  setMapped(ep: { host: string; port: number } | undefined): void {
    this.mapped = ep ? { kind: "udp", host: ep.host, port: ep.port } : undefined;
  }

  mappedEndpoint(): Endpoint | undefined {
    return this.mapped;
  }

  reflexiveEndpoints(): readonly Endpoint[] {
    return this.reflexive;
  }

  /** STUN against these servers from the node's own socket; the candidates follow the answer. */
  async refresh(servers: StunServerAddress[]): Promise<NetcheckReport> {
    const report = await netcheck(this.conn.raw, this.conn.stun, { servers, timeoutMs: NETCHECK_TIMEOUT_MS });
    this.lastReport = report;
    this.natType = report.mapping;
    this.reflexive = report.candidates.filter((c) => c.type === "reflexive").map((c) => ({ kind: "udp" as const, host: c.address, port: c.port }));
    // What the STUN servers saw, not the reflexive candidates: a mapping equal to a local address is no candidate.
    const seen = report.servers.flatMap((s) => (s.mapped ? [s.mapped] : []));
    const own = localAddresses(this.listenHost);
    this.noNat = seen.length > 0 && seen.every((m) => m.port === report.localPort && own.includes(m.address));
    // The NAT depth changes only with the network: measured again when our public address does.
    const key = this.reflexive.map((r) => (r.kind === "udp" ? r.host : "")).join(",");
    if (servers.length && report.mapping !== "udp-blocked" && key && key !== this.hopsFor) {
      this.hopsFor = key;
      this.hops = await measureHops(this.conn.stun, servers[0]);
      this.punchTtl = punchTtlFor(this.hops);
    }
    this.punchTtlKnown = true;
    return report;
  }
}
