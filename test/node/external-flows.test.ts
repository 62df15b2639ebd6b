// External flows on the receiving node (docs/external-access.md), with two Flows joined in memory (no sockets
// between them, a real TCP service behind the receiver): only a peer whose certificate grants role edge may open
// an external-marked flow, it is decided as the `external` principal (the edge's own rules never stand in), and
// a policy change that drops the external rule cuts the live external flow.
import { NodeEvents } from "../../src/node/events.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:net";
import pino from "pino";
import type { Duplex } from "node:stream";
import { Flows } from "../../src/node/flows.js";
import { FlowPolicy, principalOf } from "../../src/node/flow-policy.js";
import type { KnownPeer, NodeRuntime } from "../../src/node/runtime.js";
import { ServiceTable } from "../../src/node/services.js";
import { parsePolicy } from "../../src/policy/index.js";
import type { Identity } from "../../src/pki/index.js";
import type { InnerHandler } from "../../src/session/inner.js";

const SERVICE_PORT = 443;

function identity(name: string, roles: string[]): Identity {
  return {
    name, tenant: "acme", groups: [], roles, trustDomain: "t", spiffeId: `spiffe://t/acme/${name}`, serial: name, fingerprint: name,
    notBefore: new Date(0), notAfter: new Date(Date.now() + 3_600_000), publicKey: new Uint8Array(32),
  };
}

function rules(text: string) {
  const r = parsePolicy(text);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.policy.rules;
}

const EXTERNAL_RULE = `rules:
  - allow: {source: external, target: "service:status-page", protocol: https, ports: [443]}
services:
  status-page: {node: web-1, port: 443, protocol: https}
`;
const NO_EXTERNAL = `rules:
  - allow: {source: edge-1, target: web-1, protocol: tcp, ports: [443]}
`;

/** A runtime whose peers are other in-memory runtimes: send() hands the datagram over on the next turn. */
class MemRuntime implements NodeRuntime {
  readonly log = pino({ level: "silent" });
  readonly events = new NodeEvents();
  readonly policy = new FlowPolicy();
  readonly peers = new Map<string, MemRuntime>();
  private readonly handlers = new Map<number, InnerHandler>();
  constructor(readonly id: Identity) {}
  identity() { return this.id; }
  send(peer: string, kind: number, payload: Uint8Array) {
    const other = this.peers.get(peer);
    if (!other) return "unknown_peer" as const;
    const copy = Buffer.from(payload);
    setImmediate(() => other.handlers.get(kind)?.({ name: this.id.name } as never, { kind: "udp", host: "mem", port: 0 }, copy));
    return "sent" as const;
  }
  maxPayload() { return 1200; }
  pathOf() { return undefined; }
  peerIdentity(name: string) { return this.peers.get(name)?.id; }
  peerPrincipal(name: string) { const id = this.peerIdentity(name); return id && principalOf(id); }
  selfPrincipal() { return principalOf(this.id); }
  onInner(kind: number, h: InnerHandler) { this.handlers.set(kind, h); }
  *knownPeers(): Iterable<KnownPeer> { for (const name of this.peers.keys()) yield this.knownPeer(name)!; }
  knownPeer(name: string): KnownPeer | undefined {
    const p = this.peers.get(name);
    return p && { name, tenant: p.id.tenant, groups: p.id.groups, services: [{ name: "status-page", port: SERVICE_PORT, protocol: "https" }] };
  }
  setRules(text: string) { if (this.policy.setRules(rules(text))) this.events.emit("rules", {}); }
}

function pair(senderRoles: string[]) {
  const web = new MemRuntime(identity("web-1", []));
  const sender = new MemRuntime(identity(senderRoles.includes("edge") ? "edge-1" : "laptop-1", senderRoles));
  web.peers.set(sender.id.name, sender);
  sender.peers.set("web-1", web);
  return { web, sender };
}

function readSome(s: Duplex): Promise<string> {
  return new Promise((resolve, reject) => { s.once("data", (d: Buffer) => resolve(d.toString())); s.once("error", reject); });
}

describe("external flows at the receiving node", () => {
  let server: Server;
  let localPort = 0;

  beforeAll(async () => {
    server = createServer((s) => { s.write("status page bytes\n"); s.on("data", () => undefined); s.on("error", () => undefined); });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    localPort = (server.address() as { port: number }).port;
  });
  afterAll(() => { server.close(); });

  function flowsFor(web: MemRuntime, sender: MemRuntime) {
    const services = new ServiceTable();
    services.add({ name: "status-page", port: SERVICE_PORT, protocol: "https", to: { host: "127.0.0.1", port: localPort } });
    const webFlows = new Flows({ runtime: web, services, openTimeoutMs: 3_000 });
    const senderFlows = new Flows({ runtime: sender, services: new ServiceTable(), openTimeoutMs: 3_000 });
    return { webFlows, senderFlows };
  }
  const target = { peer: "web-1", tenant: "acme", port: SERVICE_PORT, protocol: "tcp" as const, service: "status-page" };

  it("admits an external flow from a peer with role edge, decided as external", async () => {
    const { web, sender } = pair(["edge"]);
    web.setRules(EXTERNAL_RULE);
    const { webFlows, senderFlows } = flowsFor(web, sender);
    const s = await senderFlows.dial(target, { precheck: false, external: { source: "198.18.9.9:5555" } });
    expect(await readSome(s)).toBe("status page bytes\n");
    expect(webFlows.stats()).toMatchObject({ accepted: 1, live: 1 });
    s.destroy();
    webFlows.close(); senderFlows.close();
  });

  it("refuses an external-marked flow from a peer whose certificate grants no role edge, whatever the policy", async () => {
    const { web, sender } = pair([]);
    web.setRules(EXTERNAL_RULE);
    const { webFlows, senderFlows } = flowsFor(web, sender);
    await expect(senderFlows.dial(target, { precheck: false, external: { source: "198.18.9.9:5555" } }))
      .rejects.toMatchObject({ code: "denied", reason: expect.stringMatching(/laptop-1 opened an external flow, but its certificate grants no role "edge"/) });
    expect(webFlows.stats()).toMatchObject({ accepted: 0, denied: 1 });
    webFlows.close(); senderFlows.close();
  });

  it("decides an edge's external flow by external rules only: a rule for the edge's own identity does not admit it", async () => {
    const { web, sender } = pair(["edge"]);
    web.setRules(NO_EXTERNAL);
    const { webFlows, senderFlows } = flowsFor(web, sender);
    await expect(senderFlows.dial(target, { precheck: false, external: { source: "198.18.9.9:5555" } }))
      .rejects.toMatchObject({ code: "denied", reason: expect.stringMatching(/default deny/) });
    // The same edge, unmarked, is allowed by its own rule: the marker, not the peer, selects the principal.
    const plain = await senderFlows.dial(target, { precheck: false });
    expect(await readSome(plain)).toBe("status page bytes\n");
    plain.destroy();
    webFlows.close(); senderFlows.close();
  });

  it("cuts a live external flow when the policy no longer has the external rule", async () => {
    const { web, sender } = pair(["edge"]);
    web.setRules(EXTERNAL_RULE);
    const { webFlows, senderFlows } = flowsFor(web, sender);
    const s = await senderFlows.dial(target, { precheck: false, external: { source: "198.18.9.9:5555" } });
    expect(await readSome(s)).toBe("status page bytes\n");
    const closed = new Promise<number>((resolve) => s.once("close", () => resolve(Date.now())));
    s.on("error", () => undefined);
    const t0 = Date.now();
    web.setRules(NO_EXTERNAL);
    const ms = (await closed) - t0;
    expect(ms).toBeLessThan(1_000);
    expect(webFlows.stats()).toMatchObject({ cut: 1, live: 0 });
    console.log(`external flow cut ${ms} ms after the policy change`);
    webFlows.close(); senderFlows.close();
  });
});
