// The default IPv4 gateway, read from Linux's /proc/net/route (the route with destination 0 and the
// gateway flag). Where that file is missing (not Linux) there is no gateway and port mapping stays off.
import { readFileSync } from "node:fs";

const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;

/** Parses /proc/net/route text: addresses are little-endian hex. The lowest metric wins. */
export function parseProcNetRoute(text: string): string | undefined {
  let best: { gw: string; metric: number } | undefined;
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [, dest, gw, flags, , , metric, mask] = f;
    if (dest !== "00000000" || mask !== "00000000") continue;
    const fl = parseInt(flags, 16);
    if (!(fl & RTF_UP) || !(fl & RTF_GATEWAY) || !/^[0-9A-Fa-f]{8}$/.test(gw)) continue;
    const n = parseInt(gw, 16);
    const ip = [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join(".");
    const m = Number(metric) || 0;
    if (!best || m < best.metric) best = { gw: ip, metric: m };
  }
  return best?.gw;
}

export function defaultGateway(path = "/proc/net/route"): string | undefined {
  try { return parseProcNetRoute(readFileSync(path, "utf8")); } catch { return undefined; }
}
