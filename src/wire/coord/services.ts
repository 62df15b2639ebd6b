// Services a node announces (`ember serve`) in its status reports, and the map hands to its peers: the one check
// both ends run on a list of them.
import { NAME_PATTERN } from "./names.js";

export type ServiceProtocol = "tcp" | "udp" | "https";
export interface MapService { name: string; port: number; protocol: ServiceProtocol }

/** Services one node may announce. */
export const MAX_SERVICES_PER_NODE = 32;
const SERVICE_PROTOCOLS: readonly string[] = ["tcp", "udp", "https"];

/** Checks an announced service list (status reports and map frames); the message names the first problem. */
export function checkServices(x: unknown): MapService[] {
  if (!Array.isArray(x) || x.length > MAX_SERVICES_PER_NODE) throw new Error(`"services" must be a list of at most ${MAX_SERVICES_PER_NODE}`);
  const seen = new Set<string>();
  return x.map((s, i) => {
    const o = s as Record<string, unknown>;
    if (!o || typeof o !== "object") throw new Error(`services[${i}] must be an object`);
    if (typeof o.name !== "string" || !NAME_PATTERN.test(o.name)) throw new Error(`services[${i}].name must be a lowercase DNS label`);
    if (!Number.isInteger(o.port) || (o.port as number) < 1 || (o.port as number) > 65535) throw new Error(`services[${i}].port must be 1-65535`);
    if (typeof o.protocol !== "string" || !SERVICE_PROTOCOLS.includes(o.protocol)) throw new Error(`services[${i}].protocol must be tcp, udp or https`);
    if (seen.has(o.name)) throw new Error(`services[${i}]: "${o.name}" is announced twice`);
    seen.add(o.name);
    return { name: o.name, port: o.port as number, protocol: o.protocol as ServiceProtocol };
  });
}

export function sameServices(a: MapService[] | undefined, b: MapService[] | undefined): boolean {
  return JSON.stringify(a ?? []) === JSON.stringify(b ?? []);
}
