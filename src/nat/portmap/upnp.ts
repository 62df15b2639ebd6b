// UPnP IGD: SSDP discovery of the gateway's WANIPConnection service, then SOAP actions over HTTP
// (AddPortMapping, DeletePortMapping, GetExternalIPAddress, GetGenericPortMappingEntry). Pure text codecs
// first (SSDP answer, device description, SOAP envelope and fault); then the exchanges on node:dgram/http.
// The XML is read with small patterns, not a parser: an IGD's description and answers are flat, and a
// missing element is an error we name rather than a crash.
import { createSocket } from "node:dgram";
import { request as httpRequest } from "node:http";
import { isIPv4 } from "node:net";
import {
  HTTP_TIMEOUT_MS, IGD_DEVICE, IGD_SERVICES, PORTMAP_DESCRIPTION, SSDP_ADDRESS, SSDP_PORT, SSDP_WAIT_MS, UPNP_MAX_BODY,
} from "./constants.js";
import { PortmapError } from "./errors.js";

export interface SsdpAnswer { location: string; st?: string; server?: string }
export interface IgdService { serviceType: string; controlUrl: string }
export interface Igd extends IgdService { location: string; localAddress: string }
export interface PortMappingEntry {
  remoteHost: string; externalPort: number; protocol: string; internalPort: number; internalClient: string;
  enabled: boolean; description: string; leaseDuration: number;
}

export function encodeMSearch(st = IGD_DEVICE, mx = 1): string {
  return `M-SEARCH * HTTP/1.1\r\nHOST: ${SSDP_ADDRESS}:${SSDP_PORT}\r\nMAN: "ssdp:discover"\r\nMX: ${mx}\r\nST: ${st}\r\n\r\n`;
}

/** An SSDP search answer: "HTTP/1.1 200 OK" with a LOCATION header (case-insensitive names). */
export function parseSsdpAnswer(text: string): SsdpAnswer {
  const lines = text.split(/\r?\n/);
  if (!/^HTTP\/1\.[01] 200/.test(lines[0] ?? "")) throw new PortmapError("upnp", "malformed", `SSDP answer starts "${(lines[0] ?? "").slice(0, 40)}", not HTTP 200`);
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
  }
  const location = headers.get("location");
  if (!location || !/^http:\/\//i.test(location)) throw new PortmapError("upnp", "malformed", "SSDP answer has no http LOCATION");
  return { location, st: headers.get("st"), server: headers.get("server") };
}

function unescapeXml(s: string): string {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, "\"").replace(/&apos;/g, "'").replace(/&amp;/g, "&");
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** The text of the first <name> element (any namespace prefix) in xml, or undefined. */
export function xmlText(xml: string, name: string): string | undefined {
  const m = new RegExp(`<(?:[A-Za-z0-9_]+:)?${name}(?:\\s[^>]*)?>([^<]*)</(?:[A-Za-z0-9_]+:)?${name}>`).exec(xml);
  return m ? unescapeXml(m[1].trim()) : undefined;
}

/** The best port-mapping service in a device description, its control URL made absolute against the description's URL. */
export function parseDescription(xml: string, location: string): IgdService {
  const services = [...xml.matchAll(/<service>([\s\S]*?)<\/service>/g)].map((m) => m[1]);
  for (const type of IGD_SERVICES) {
    const s = services.find((x) => xmlText(x, "serviceType") === type);
    if (!s) continue;
    const ctl = xmlText(s, "controlURL");
    if (!ctl) throw new PortmapError("upnp", "malformed", `service ${type} has no controlURL`);
    const base = xmlText(xml, "URLBase") || location;
    return { serviceType: type, controlUrl: new URL(ctl, base).toString() };
  }
  throw new PortmapError("upnp", "unavailable", "the device description has no WANIPConnection or WANPPPConnection service");
}

export function encodeSoapRequest(serviceType: string, action: string, args: [string, string | number][]): string {
  const body = args.map(([k, v]) => `<${k}>${escapeXml(String(v))}</${k}>`).join("");
  return `<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">`
    + `<s:Body><u:${action} xmlns:u="${serviceType}">${body}</u:${action}></s:Body></s:Envelope>\r\n`;
}

/** A SOAP answer: the action's response element's children, or the UPnP fault as a refused PortmapError. */
export function parseSoapResponse(xml: string, action: string, names: string[]): Record<string, string> {
  if (/<(?:[A-Za-z0-9_]+:)?Fault[\s>]/.test(xml)) {
    const code = Number(xmlText(xml, "errorCode"));
    const desc = xmlText(xml, "errorDescription") ?? xmlText(xml, "faultstring") ?? "SOAP fault";
    throw new PortmapError("upnp", "refused", `${action}: UPnP error ${Number.isFinite(code) ? code : "?"} (${desc})`, Number.isFinite(code) ? code : undefined);
  }
  if (!new RegExp(`<(?:[A-Za-z0-9_]+:)?${action}Response[\\s>]`).test(xml)) throw new PortmapError("upnp", "malformed", `${action}: answer has no ${action}Response`);
  const out: Record<string, string> = {};
  for (const n of names) {
    const v = xmlText(xml, n) ?? (new RegExp(`<(?:[A-Za-z0-9_]+:)?${n}\\s*/>`).test(xml) ? "" : undefined);
    if (v === undefined) throw new PortmapError("upnp", "malformed", `${action}: answer has no ${n}`);
    out[n] = v;
  }
  return out;
}

// ---- exchanges -----------------------------------------------------------------------------------

/**
 * M-SEARCH to the gateway directly and to the SSDP group; the first answer whose LOCATION is on the gateway
 * wins (another device on the LAN may answer too). Then the description is fetched and read.
 */
export async function discoverIgd(gateway: string, waitMs = SSDP_WAIT_MS): Promise<Igd> {
  const location = await new Promise<string>((resolve, reject) => {
    const sock = createSocket("udp4");
    let firstError: PortmapError | undefined;
    const finish = (fn: () => void) => { clearTimeout(timer); try { sock.close(); } catch { /* closed */ } fn(); };
    const timer = setTimeout(() => finish(() => reject(firstError ?? new PortmapError("upnp", "timeout", `no SSDP answer from ${gateway} in ${waitMs} ms`))), waitMs);
    sock.on("error", (err) => finish(() => reject(new PortmapError("upnp", "unavailable", `SSDP: ${err.message}`))));
    sock.on("message", (msg) => {
      try {
        const a = parseSsdpAnswer(msg.toString("latin1"));
        if (new URL(a.location).hostname === gateway) finish(() => resolve(a.location));
      } catch (err) { firstError ??= err as PortmapError; }
    });
    sock.bind(0, () => {
      const m = Buffer.from(encodeMSearch());
      sock.send(m, SSDP_PORT, gateway);
      sock.send(m, SSDP_PORT, SSDP_ADDRESS, () => { /* no multicast route: the unicast search may still answer */ });
    });
  });
  const { body, localAddress } = await httpCall(location, "GET");
  return { ...parseDescription(body, location), location, localAddress };
}

function httpCall(url: string, method: "GET" | "POST", body?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; localAddress: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    if (u.protocol !== "http:" || !isIPv4(u.hostname)) return reject(new PortmapError("upnp", "malformed", `IGD URL ${url} is not http://IPv4`));
    const req = httpRequest({ host: u.hostname, port: u.port || 80, path: `${u.pathname}${u.search}`, method, headers: { ...headers, ...(body ? { "Content-Length": String(Buffer.byteLength(body)) } : {}) }, timeout: HTTP_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > UPNP_MAX_BODY) { req.destroy(new PortmapError("upnp", "malformed", `${url}: answer larger than ${UPNP_MAX_BODY} bytes`)); return; }
        chunks.push(c);
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), localAddress: req.socket?.localAddress ?? "" }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new PortmapError("upnp", "timeout", `${method} ${url}: no answer in ${HTTP_TIMEOUT_MS} ms`)));
    req.on("error", (err) => reject(err instanceof PortmapError ? err : new PortmapError("upnp", "unavailable", `${method} ${url}: ${err.message}`)));
    req.end(body);
  });
}

async function soap(igd: IgdService, action: string, args: [string, string | number][], names: string[]): Promise<Record<string, string>> {
  const r = await httpCall(igd.controlUrl, "POST", encodeSoapRequest(igd.serviceType, action, args), {
    "Content-Type": "text/xml; charset=\"utf-8\"",
    SOAPAction: `"${igd.serviceType}#${action}"`,
  });
  // A fault comes with HTTP 500 and a body that says why: parse the body whatever the status.
  return parseSoapResponse(r.body, action, names);
}

export async function upnpExternalAddress(igd: IgdService): Promise<string> {
  const r = await soap(igd, "GetExternalIPAddress", [], ["NewExternalIPAddress"]);
  if (!isIPv4(r.NewExternalIPAddress)) throw new PortmapError("upnp", "unavailable", `gateway has no usable external address ("${r.NewExternalIPAddress}")`);
  return r.NewExternalIPAddress;
}

export async function upnpAddMapping(igd: Igd, externalPort: number, internalPort: number, leaseS: number): Promise<void> {
  await soap(igd, "AddPortMapping", [
    ["NewRemoteHost", ""], ["NewExternalPort", externalPort], ["NewProtocol", "UDP"], ["NewInternalPort", internalPort],
    ["NewInternalClient", igd.localAddress], ["NewEnabled", 1], ["NewPortMappingDescription", PORTMAP_DESCRIPTION],
    ["NewLeaseDuration", leaseS],
  ], []);
}

export async function upnpDeleteMapping(igd: IgdService, externalPort: number): Promise<void> {
  await soap(igd, "DeletePortMapping", [["NewRemoteHost", ""], ["NewExternalPort", externalPort], ["NewProtocol", "UDP"]], []);
}

/** The index-th mapping on the gateway (throws refused with UPnP error 713 past the last one). */
export async function upnpMappingEntry(igd: IgdService, index: number): Promise<PortMappingEntry> {
  const r = await soap(igd, "GetGenericPortMappingEntry", [["NewPortMappingIndex", index]], [
    "NewRemoteHost", "NewExternalPort", "NewProtocol", "NewInternalPort", "NewInternalClient", "NewEnabled",
    "NewPortMappingDescription", "NewLeaseDuration",
  ]);
  return {
    remoteHost: r.NewRemoteHost, externalPort: Number(r.NewExternalPort), protocol: r.NewProtocol, internalPort: Number(r.NewInternalPort),
    internalClient: r.NewInternalClient, enabled: r.NewEnabled === "1", description: r.NewPortMappingDescription, leaseDuration: Number(r.NewLeaseDuration),
  };
}
