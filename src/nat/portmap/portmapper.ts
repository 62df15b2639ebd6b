// The port mapper: asks the default gateway for a UDP mapping of the node's port by PCP, NAT-PMP or
// UPnP IGD (the first that works, in `protocols` order), renews it at half its lifetime, deletes it on
// stop, and reports the mapped external ip:port. It owns the one mapping; everything else reads current().
import { randomInt } from "node:crypto";
import { REQUESTED_LIFETIME_S, UPNP_ERR_CONFLICT, UPNP_ERR_ONLY_PERMANENT_LEASES } from "./constants.js";
import { PortmapError, type PortmapProtocol } from "./errors.js";
import { defaultGateway } from "./gateway.js";
import { natPmpExternalAddress, natPmpMap, natPmpUnmap } from "./nat-pmp.js";
import { newNonce, pcpAnnounce, pcpMap } from "./pcp.js";
import { discoverIgd, upnpAddMapping, upnpDeleteMapping, upnpExternalAddress, type Igd } from "./upnp.js";

export type { PortmapProtocol } from "./errors.js";
/** PCP first: it supersedes NAT-PMP (RFC 6887) and its nonce ties renewals and deletion to our mapping. */
export const DEFAULT_PROTOCOLS: readonly PortmapProtocol[] = ["pcp", "nat-pmp", "upnp"];
/**
 * After no protocol worked: ask again this much later (a gateway may be rebooting, UPnP may be switched on),
 * doubling per failure up to the cap: a network without port mapping must not cost a resting node a burst of
 * PCP, NAT-PMP and SSDP packets every minute (docs/nat.md "At rest").
 */
const RETRY_AFTER_FAILURE_MS = 60_000;
const RETRY_AFTER_FAILURE_MAX_MS = 30 * 60_000;

/** The wait before the next attempt after `failures` attempts in a row found no protocol (failures >= 1). */
export function retryDelay(failures: number): number {
  return Math.min(RETRY_AFTER_FAILURE_MAX_MS, RETRY_AFTER_FAILURE_MS * 2 ** Math.max(0, failures - 1));
}
/** A permanent UPnP lease (some IGDs grant no other) is re-added this often, to notice a gateway reboot. */
const PERMANENT_LEASE_RECHECK_S = 1_200;
/** UPnP external ports tried when the one we suggest is taken (error 718). */
const UPNP_PORT_TRIES = 3;

export interface PortMapping {
  protocol: PortmapProtocol;
  gateway: string;
  externalAddress: string;
  externalPort: number;
  internalPort: number;
  /** Granted lifetime in seconds (0 = permanent, UPnP only). */
  lifetimeS: number;
  /** When it was granted or last renewed (ms since epoch). */
  renewedAt: number;
}

export interface PortmapLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface PortMapperOptions {
  internalPort: number;
  protocols?: readonly PortmapProtocol[];
  gateway?: () => string | undefined;
  log?: PortmapLog;
  /** Called whenever the mapped address appears, changes or goes. */
  onChange?: (m: PortMapping | undefined) => void;
  lifetimeS?: number;
}

/** What a protocol's client gives back: the mapping, how to renew it, how to delete it. */
interface Held {
  mapping: PortMapping;
  renew(): Promise<PortMapping>;
  remove(): Promise<void>;
}

export interface PortmapStatus {
  enabled: boolean;
  gateway?: string;
  protocol: PortmapProtocol | null;
  mapped?: string;
  lifetimeS?: number;
  /** Why the last attempt failed, per protocol tried. */
  errors?: Partial<Record<PortmapProtocol, string>>;
}

export class PortMapper {
  private held?: Held;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private lastErrors: Partial<Record<PortmapProtocol, string>> = {};
  private lastGateway?: string;
  /** Attempts in a row that found no protocol (the retry backs off with it). */
  private failures = 0;
  /** Every gateway conversation runs in this chain, so stop() waits for one in flight and none overlap. */
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly opts: PortMapperOptions) {}

  start(): void {
    this.schedule(0, () => this.acquire());
  }

  current(): PortMapping | undefined {
    return this.held?.mapping;
  }

  status(): PortmapStatus {
    const m = this.held?.mapping;
    return {
      enabled: !this.stopped, gateway: this.lastGateway, protocol: m?.protocol ?? null,
      ...(m ? { mapped: `${m.externalAddress}:${m.externalPort}`, lifetimeS: m.lifetimeS } : {}),
      ...(Object.keys(this.lastErrors).length ? { errors: { ...this.lastErrors } } : {}),
    };
  }

  /** Deletes the mapping (best effort: the gateway may be gone) and stops renewing. */
  async stop(): Promise<void> {
    if (this.stopped) return this.chain;
    this.stopped = true;
    clearTimeout(this.timer);
    this.chain = this.chain.then(async () => {
      const h = this.held;
      if (!h) return;
      this.set(undefined);
      try {
        await h.remove();
        this.opts.log?.info({ protocol: h.mapping.protocol, mapped: `${h.mapping.externalAddress}:${h.mapping.externalPort}` }, "port mapping deleted");
      } catch (err) {
        this.opts.log?.warn({ protocol: h.mapping.protocol, err: (err as Error).message }, "port mapping not deleted (it lapses by itself)");
      }
    });
    return this.chain;
  }

  private schedule(ms: number, fn: () => Promise<void>): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.chain = this.chain.then(() => (this.stopped ? undefined : fn()));
    }, ms);
    this.timer.unref?.();
  }

  private set(h: Held | undefined): void {
    const before = this.held?.mapping;
    this.held = h;
    const after = h?.mapping;
    const changed = before?.externalAddress !== after?.externalAddress || before?.externalPort !== after?.externalPort;
    if (changed) this.opts.onChange?.(after);
  }

  private async acquire(): Promise<void> {
    const gateway = (this.opts.gateway ?? defaultGateway)();
    this.lastGateway = gateway;
    if (!gateway) {
      this.lastErrors = {};
      this.schedule(retryDelay(++this.failures), () => this.acquire());
      return;
    }
    const errors: Partial<Record<PortmapProtocol, string>> = {};
    for (const protocol of this.opts.protocols ?? DEFAULT_PROTOCOLS) {
      if (this.stopped) return;
      try {
        const h = await mapBy(protocol, gateway, this.opts.internalPort, this.opts.lifetimeS ?? REQUESTED_LIFETIME_S);
        if (this.stopped) { await h.remove().catch(() => undefined); return; }
        this.lastErrors = errors;
        this.failures = 0;
        this.set(h);
        this.opts.log?.info({ protocol, gateway, mapped: `${h.mapping.externalAddress}:${h.mapping.externalPort}`, lifetimeS: h.mapping.lifetimeS }, "port mapping obtained");
        this.scheduleRenew(h.mapping);
        return;
      } catch (err) {
        errors[protocol] = (err as Error).message;
      }
    }
    this.lastErrors = errors;
    this.opts.log?.info({ gateway, errors }, "no port mapping protocol answered");
    this.schedule(retryDelay(++this.failures), () => this.acquire());
  }

  /** Renew at half the granted lifetime (a lost renewal still leaves the other half to retry in). */
  private scheduleRenew(m: PortMapping): void {
    const s = m.lifetimeS > 0 ? m.lifetimeS / 2 : PERMANENT_LEASE_RECHECK_S;
    this.schedule(Math.max(1, s) * 1000, () => this.renew());
  }

  private async renew(): Promise<void> {
    const h = this.held;
    if (!h) return this.acquire();
    try {
      const m = await h.renew();
      this.set({ ...h, mapping: m });
      this.scheduleRenew(m);
    } catch (err) {
      this.opts.log?.warn({ protocol: h.mapping.protocol, err: (err as Error).message }, "port mapping renewal failed; mapping again");
      this.set(undefined);
      await this.acquire();
    }
  }
}

/** One protocol's attempt: a mapping plus its renew and remove. Throws PortmapError. */
export async function mapBy(protocol: PortmapProtocol, gateway: string, internalPort: number, lifetimeS: number): Promise<Held> {
  switch (protocol) {
    case "nat-pmp": return mapNatPmp(gateway, internalPort, lifetimeS);
    case "pcp": return mapPcp(gateway, internalPort, lifetimeS);
    case "upnp": return mapUpnp(gateway, internalPort, lifetimeS);
  }
}

async function mapNatPmp(gateway: string, internalPort: number, lifetimeS: number): Promise<Held> {
  const once = async (suggested: number): Promise<PortMapping> => {
    // The map answer has no address: ask for it each time (it may change with the gateway's uplink).
    const { address } = await natPmpExternalAddress(gateway);
    const r = await natPmpMap(gateway, internalPort, suggested, lifetimeS);
    return { protocol: "nat-pmp", gateway, externalAddress: address, externalPort: r.externalPort, internalPort, lifetimeS: r.lifetimeS, renewedAt: Date.now() };
  };
  const first = await once(internalPort);
  return { mapping: first, renew: () => once(first.externalPort), remove: () => natPmpUnmap(gateway, internalPort) };
}

async function mapPcp(gateway: string, internalPort: number, lifetimeS: number): Promise<Held> {
  await pcpAnnounce(gateway); // a quick "is a PCP server there" before a nonce is spent
  const nonce = newNonce();
  const once = async (suggestedPort: number, suggestedAddress?: string): Promise<PortMapping> => {
    const r = await pcpMap(gateway, { nonce, internalPort, suggestedExternalPort: suggestedPort, suggestedExternalAddress: suggestedAddress, lifetimeS });
    if (r.externalAddress.includes(":")) throw new PortmapError("pcp", "unavailable", `gateway mapped to ${r.externalAddress}, not an IPv4 address`);
    return { protocol: "pcp", gateway, externalAddress: r.externalAddress, externalPort: r.externalPort, internalPort, lifetimeS: r.lifetimeS, renewedAt: Date.now() };
  };
  const first = await once(internalPort);
  return {
    mapping: first,
    renew: () => once(first.externalPort, first.externalAddress),
    remove: async () => { await pcpMap(gateway, { nonce, internalPort, suggestedExternalPort: 0, lifetimeS: 0 }); },
  };
}

async function mapUpnp(gateway: string, internalPort: number, lifetimeS: number): Promise<Held> {
  const igd: Igd = await discoverIgd(gateway);
  const externalAddress = await upnpExternalAddress(igd);
  let lease = lifetimeS;
  const add = async (port: number): Promise<void> => {
    try {
      await upnpAddMapping(igd, port, internalPort, lease);
    } catch (err) {
      // Some IGDs grant only permanent leases (error 725): take one, and delete it on stop.
      if (!(err instanceof PortmapError) || err.result !== UPNP_ERR_ONLY_PERMANENT_LEASES || lease === 0) throw err;
      lease = 0;
      await upnpAddMapping(igd, port, internalPort, lease);
    }
  };
  let port = internalPort;
  for (let i = 0; ; i++) {
    try { await add(port); break; } catch (err) {
      const conflict = err instanceof PortmapError && err.result === UPNP_ERR_CONFLICT;
      if (!conflict || i + 1 >= UPNP_PORT_TRIES) throw err;
      port = randomInt(1024, 65536);
    }
  }
  const mapping = (): PortMapping => ({ protocol: "upnp", gateway, externalAddress, externalPort: port, internalPort, lifetimeS: lease, renewedAt: Date.now() });
  return {
    mapping: mapping(),
    // Re-adding the same mapping extends its lease (UPnP IGD 2.4.16: an identical AddPortMapping is an update).
    renew: async () => { await add(port); return mapping(); },
    remove: () => upnpDeleteMapping(igd, port),
  };
}

export interface PortmapProbe {
  gateway?: string;
  pcp: boolean;
  natPmp: boolean;
  upnp: boolean;
  /** The first available protocol in DEFAULT_PROTOCOLS order, or null when the gateway offers none. */
  protocol: PortmapProtocol | null;
}

/** netcheck's `portmap` section: the probe, plus the daemon's own mapping when one is held. */
export interface PortmapReport extends PortmapProbe {
  enabled: boolean;
  mapped: string | null;
  mappedBy: PortmapProtocol | null;
  errors?: Partial<Record<PortmapProtocol, string>>;
}

/** Which protocols the gateway answers, without creating a mapping (for netcheck). */
export async function probePortmap(gateway = defaultGateway()): Promise<PortmapProbe> {
  if (!gateway) return { pcp: false, natPmp: false, upnp: false, protocol: null };
  const ok = (p: Promise<unknown>) => p.then(() => true, () => false);
  const [pcp, natPmp, upnp] = await Promise.all([
    ok(pcpAnnounce(gateway)), ok(natPmpExternalAddress(gateway)), ok(discoverIgd(gateway)),
  ]);
  const protocol: PortmapProtocol | null = pcp ? "pcp" : natPmp ? "nat-pmp" : upnp ? "upnp" : null;
  return { gateway, pcp, natPmp, upnp, protocol };
}
