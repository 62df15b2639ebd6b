// Node configuration: a YAML file and/or CLI flags, validated up front so a bad value is named before
// anything starts.
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { DEFAULT_PATH_MTU, MAX_PATH_MTU } from "../wire/constants.js";
import { parseService, type LocalService } from "./services.js";
import { parseHostPort as parseAddress } from "../addr/host-port.js";
import { coordOrigins } from "../wire/coord-origins.js";
import { DEFAULT_PROTOCOLS, type PortmapProtocol } from "../nat/portmap/portmapper.js";

export interface StaticPeer { name: string; host: string; port: number }

export interface NodeConfig {
  /** Directory for the control socket and (with a coordination server) credentials. */
  stateDir: string;
  certPath: string;
  keyPath: string;
  bundlePath: string;
  listenHost: string;
  listenPort: number;
  peers: StaticPeer[];
  controlSocket: string;
  /** Coordination server URL (optional: static peers work without one): the first replica when several are given. */
  coordUrl?: string;
  /** Every coordination replica (--coord URL1,URL2): the map stream moves to the next when one fails. */
  coordReplicas: string[];
  logLevel: string;
  /** Path MTU assumed for direct paths (DEFAULT_PATH_MTU..MAX_PATH_MTU); stream segments follow it. */
  mtu: number;
  /** Services exposed on the mesh (config `services:`; more at run time with `ember serve`). */
  services: LocalService[];
  /** The SOCKS5/HTTP proxy's loopback address (config `proxy:` or --proxy); off when absent. */
  proxy?: { host: string; port: number };
  /** A local policy file for meshes without a coordination server (with one, the server's rules apply). */
  policyFile?: string;
  /** Prometheus metrics on plain HTTP, loopback only (config `metrics:` or --metrics); off when absent. */
  metrics?: { host: string; port: number };
  /**
   * Port mapping (NAT-PMP, PCP, UPnP IGD) at the default gateway, in this order of protocols; empty = off.
   * On by default (config `portmap: false` or --no-portmap turns it off; `portmap: [upnp]` picks protocols).
   */
  portmap: PortmapProtocol[];
  /**
   * TUN mode (config `tun:` or --tun NAME): a TUN device of this name with the node's overlay address, fed by
   * the native addon. Off when absent; with the addon missing or without root, the daemon says why and stays
   * userspace.
   */
  tun?: string;
}

/** --coord URL or URL1,URL2,...: each one checked, the first one the default for single-server uses. */
function coordSettings(text: string | undefined): { coordUrl?: string; coordReplicas: string[] } {
  if (!text) return { coordReplicas: [] };
  let list: string[];
  try { list = coordOrigins(text); } catch (err) { throw new ConfigError(`coord: ${(err as Error).message}`); }
  return { coordUrl: list[0], coordReplicas: list };
}

/** Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no slash or space. */
function parseTunName(text: string | undefined): string | undefined {
  if (text === undefined || text === "") return undefined;
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(text)) throw new ConfigError(`tun: "${text}" is not an interface name (1-15 letters, digits, "_", ".", "-")`);
  return text;
}

export class ConfigError extends Error {}

/** "host:port", "[v6]:port" or ":port"/"port" (host defaults to all interfaces); a ConfigError names the flag. */
export function parseHostPort(text: string, what: string, defaultHost = "0.0.0.0"): { host: string; port: number } {
  try {
    return parseAddress(text, what, defaultHost);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

/** `services: {NAME: {to: HOST:PORT, protocol: https|tcp|udp, port: N}}` */
function parseServicesSection(x: unknown): LocalService[] {
  if (x === undefined || x === null) return [];
  if (typeof x !== "object" || Array.isArray(x)) throw new ConfigError('config: "services" must map NAME: {to: HOST:PORT, protocol, port}');
  const out: LocalService[] = [];
  for (const [name, def] of Object.entries(x)) {
    if (!def || typeof def !== "object" || Array.isArray(def)) throw new ConfigError(`config: service ${name} must be a mapping {to, protocol, port}`);
    const d = def as Record<string, unknown>;
    for (const k of Object.keys(d)) if (!["to", "protocol", "port"].includes(k)) throw new ConfigError(`config: service ${name}: unknown key "${k}"`);
    try {
      out.push(parseService({ name, to: String(d.to ?? ""), protocol: d.protocol === undefined ? undefined : String(d.protocol), port: d.port as number | undefined }));
    } catch (err) { throw new ConfigError(`config: ${(err as Error).message}`); }
  }
  return out;
}

/** "1080" or "127.0.0.1:1080": the proxy listens on loopback only. */
function parseProxy(text: string | undefined): { host: string; port: number } | undefined {
  if (text === undefined) return undefined;
  const hp = parseHostPort(text, "proxy", "127.0.0.1");
  if (hp.host !== "127.0.0.1" && hp.host !== "::1" && hp.host !== "localhost") {
    throw new ConfigError(`proxy: "${text}" must be a loopback address (127.0.0.1 or ::1): the proxy admits anyone who can connect to it`);
  }
  return hp;
}

/** A loopback HOST:PORT (or a bare port on 127.0.0.1): what whoever can connect to may read. */
function parseLoopback(text: string | undefined, what: string): { host: string; port: number } | undefined {
  if (text === undefined) return undefined;
  const hp = parseHostPort(text, what, "127.0.0.1");
  if (hp.host !== "127.0.0.1" && hp.host !== "::1" && hp.host !== "localhost") throw new ConfigError(`${what}: "${text}" must be a loopback address (127.0.0.1 or ::1)`);
  return hp;
}

function parseMtu(text: string | undefined): number {
  if (text === undefined) return DEFAULT_PATH_MTU;
  const mtu = Number(text);
  if (!Number.isInteger(mtu) || mtu < DEFAULT_PATH_MTU || mtu > MAX_PATH_MTU) {
    throw new ConfigError(`mtu: "${text}" must be an integer ${DEFAULT_PATH_MTU}-${MAX_PATH_MTU} (the path MTU of direct paths)`);
  }
  return mtu;
}

export function parsePeerSpec(spec: string): StaticPeer {
  const eq = spec.indexOf("=");
  if (eq <= 0) throw new ConfigError(`peer "${spec}": expected NAME=HOST:PORT`);
  const name = spec.slice(0, eq);
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name)) throw new ConfigError(`peer "${spec}": invalid name "${name}"`);
  const { host, port } = parseHostPort(spec.slice(eq + 1), `peer ${name}`, "127.0.0.1");
  if (port === 0) throw new ConfigError(`peer ${name}: port 0`);
  return { name, host, port };
}

export interface ConfigInput {
  config?: string;
  state?: string;
  cert?: string;
  key?: string;
  ca?: string;
  listen?: string;
  peer?: string[];
  socket?: string;
  coord?: string;
  logLevel?: string;
  mtu?: string;
  proxy?: string;
  policy?: string;
  metrics?: string;
  /** commander's --no-portmap gives false; --portmap LIST a comma-separated protocol order. */
  portmap?: boolean | string;
  tun?: string;
}

const FILE_KEYS = new Set(["state", "cert", "key", "ca", "listen", "peers", "socket", "coord", "log_level", "mtu", "services", "proxy", "policy", "metrics", "portmap", "tun"]);

const PORTMAP_NAMES: readonly PortmapProtocol[] = ["pcp", "nat-pmp", "upnp"];

/** `portmap:` true/false, a list of protocols, or "pcp,upnp"; the CLI flag wins over the file. */
function parsePortmap(flag: boolean | string | undefined, file: unknown): PortmapProtocol[] {
  const v = flag ?? file;
  if (v === undefined || v === null || v === true) return [...DEFAULT_PROTOCOLS];
  if (v === false || v === "off" || v === "false") return [];
  const list = Array.isArray(v) ? v.map(String) : typeof v === "string" ? v.split(",") : undefined;
  if (!list) throw new ConfigError('portmap: expected true, false or a list of protocols (pcp, nat-pmp, upnp)');
  const out: PortmapProtocol[] = [];
  for (const raw of list) {
    const name = raw.trim() as PortmapProtocol;
    if (!PORTMAP_NAMES.includes(name)) throw new ConfigError(`portmap: unknown protocol "${raw}" (expected ${PORTMAP_NAMES.join(", ")})`);
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

/**
 * The node's configuration from the flags and, with --config, its YAML file. The yaml package is imported only
 * then: a node run from flags never loads it (about 1 MB resident, docs/performance.md "Memory").
 */
export async function loadNodeConfig(input: ConfigInput): Promise<NodeConfig> {
  let file: Record<string, unknown> = {};
  let base = process.cwd();
  if (input.config) {
    let text: string;
    try { text = readFileSync(input.config, "utf8"); } catch (err) {
      throw new ConfigError(`config ${input.config}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    let doc: unknown;
    // Node's own import of this CommonJS package has named exports; the bundle's chunk of it only a default one.
    const yaml = await import("yaml");
    const { parse: parseYaml } = "parse" in yaml ? yaml : (yaml as unknown as { default: typeof yaml }).default;
    try { doc = parseYaml(text, { maxAliasCount: 50 }); } catch (err) {
      throw new ConfigError(`config ${input.config}: ${(err as Error).message.split("\n")[0]}`);
    }
    if (doc === null || typeof doc !== "object" || Array.isArray(doc)) throw new ConfigError(`config ${input.config}: expected a mapping at the top level`);
    file = doc as Record<string, unknown>;
    for (const k of Object.keys(file)) if (!FILE_KEYS.has(k)) throw new ConfigError(`config ${input.config}: unknown key "${k}"`);
    base = dirname(resolve(input.config));
  }
  const str = (k: string): string | undefined => {
    const v = file[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string" && typeof v !== "number") throw new ConfigError(`config: "${k}" must be a string`);
    return String(v);
  };
  const path = (p: string | undefined) => (p === undefined ? undefined : isAbsolute(p) ? p : join(base, p));
  const stateDir = input.state ?? path(str("state"));
  if (!stateDir) throw new ConfigError("no state directory: give --state DIR (or state: in the config)");
  const certPath = input.cert ?? path(str("cert")) ?? join(stateDir, "cert.pem");
  const keyPath = input.key ?? path(str("key")) ?? join(stateDir, "key.pem");
  const bundlePath = input.ca ?? path(str("ca")) ?? join(stateDir, "bundle.pem");
  // No host (":51820", "51820", the default "0"): both address families, IPv6 where the host has it; "0.0.0.0:P"
  // is IPv4 only, "[::]:P" both, an address that one (src/node/udp-conn.ts).
  const listen = parseHostPort(input.listen ?? str("listen") ?? "0", "listen", "::");
  const peers: StaticPeer[] = [];
  const filePeers = file.peers;
  if (filePeers !== undefined) {
    if (filePeers === null || typeof filePeers !== "object" || Array.isArray(filePeers)) throw new ConfigError('config: "peers" must map NAME: HOST:PORT');
    for (const [name, addr] of Object.entries(filePeers)) peers.push(parsePeerSpec(`${name}=${String(addr)}`));
  }
  for (const spec of input.peer ?? []) peers.push(parsePeerSpec(spec));
  const names = new Set<string>();
  for (const p of peers) {
    if (names.has(p.name)) throw new ConfigError(`peer ${p.name} is configured twice`);
    names.add(p.name);
  }
  return {
    stateDir, certPath, keyPath, bundlePath, listenHost: listen.host, listenPort: listen.port, peers,
    controlSocket: input.socket ?? path(str("socket")) ?? join(stateDir, "ember.sock"),
    ...coordSettings(input.coord ?? str("coord")),
    logLevel: input.logLevel ?? str("log_level") ?? "info",
    mtu: parseMtu(input.mtu ?? str("mtu")),
    services: parseServicesSection(file.services),
    proxy: parseProxy(input.proxy ?? str("proxy")),
    policyFile: input.policy ?? path(str("policy")),
    metrics: parseLoopback(input.metrics ?? str("metrics"), "metrics"),
    // EMBER_PORTMAP (off, or a protocol list) sits between flag and file: the test suite turns mapping off
    // with it, so no test daemon asks the real gateway of the machine it runs on.
    portmap: parsePortmap(input.portmap ?? process.env.EMBER_PORTMAP, file.portmap),
    tun: parseTunName(input.tun ?? str("tun")),
  };
}
