// Application flows between this node and its peers: one StreamMux per peer over its session (inner kind
// STREAM), so streams survive path changes and rekeys. Outgoing, this is the Dialer the proxy, forwards and
// the SDK use: pre-check by policy (fail fast), open, then accepted or refused with the peer's reason.
// Incoming, every open is decided by policy on the peer's verified certificate (authoritative) and joined to
// a local service or an SDK listener; both sides log each decision with the rule that made it. A policy
// change, a revocation or a peer leaving the map cuts the live flows it no longer allows.
import type { Duplex } from "node:stream";
import type { Target } from "../access/index.js";
import { connectService, DialError, type DialErrorCode } from "../access/index.js";
import { ERROR_CODE, StreamMux, StreamRefusedError, TransportError, type DatagramLink, type Stream, type TransportConfig } from "../transport/index.js";
import { FLOW_CODE, INNER } from "../wire/constants.js";
import { flowOpen, type ExternalOrigin, type FlowOpen } from "../wire/messages.js";
import { incomingFlowOf } from "./external-flow.js";
import { describeFlow, principalOf, type Flow } from "./flow-policy.js";
import type { NodeRuntime } from "./runtime.js";
import type { FlowDecisionEvent } from "./events.js";
import { transportOf, type ServiceTable } from "./services.js";

/** How long an open may wait for the peer's accept (a handshake and a path included). */
const OPEN_TIMEOUT_MS = 10_000;

/** Who is on the other end of an accepted flow, from the peer's verified certificate. */
export interface FlowPeer { name: string; tenant: string; groups: string[] }

/** A flow accepted for an SDK listener (see listen()). */
export interface AcceptedFlow { stream: Stream; peer: FlowPeer; port: number; protocol: "tcp" | "udp"; service?: string }

/** `flow`: as it was decided when accepted (a cut is logged with who it was for, e.g. the person since logged out). */
interface LiveFlow { peer: string; stream: Stream; open: FlowOpen; flow: Flow }

export class FlowError extends TransportError {}

export interface FlowsOptions {
  runtime: NodeRuntime;
  services: ServiceTable;
  transport?: Partial<TransportConfig>;
  openTimeoutMs?: number;
}

export class Flows {
  private readonly muxes = new Map<string, StreamMux>();
  /** Accepted incoming flows, checked again when the rules change. */
  private readonly live = new Set<LiveFlow>();
  /** SDK listeners by service name: they take flows before the local service table does. */
  private readonly listeners = new Map<string, (flow: AcceptedFlow) => void>();
  readonly counters = { opened: 0, accepted: 0, denied: 0, refused: 0, cut: 0 };
  private readonly rt: NodeRuntime;

  constructor(private readonly opts: FlowsOptions) {
    const rt = (this.rt = opts.runtime);
    rt.onInner(INNER.STREAM, (peer, _from, payload) => this.muxFor(peer.name).handleDatagram(payload));
    rt.events.on("writable", (e) => this.muxes.get(e.peer)?.onWritable());
    rt.events.on("peer_gone", (e) => this.dropPeer(e.peer, e.why));
    rt.events.on("rules", () => this.recheck());
  }

  /**
   * Opens a flow to a resolved target; rejects with DialError naming why not. `precheck: false` skips the
   * sender's own policy check and lets the peer decide alone (diagnostics, and tests of the receiving side).
   * `external` (a public edge only, with precheck false) marks a flow carrying an outside connection.
   */
  async dial(target: Target, opts: { precheck?: boolean; external?: ExternalOrigin } = {}): Promise<Duplex> {
    const rt = this.rt;
    const known = rt.knownPeer(target.peer);
    if (!known) throw new DialError("unknown_name", `${target.peer} is not a peer of this node`);
    const flow: Flow = { from: rt.selfPrincipal(), to: known, port: target.port, protocol: target.protocol };
    // A static peer whose certificate no session has shown yet has no known principal: its node decides alone.
    if (opts.precheck !== false && known.tenant !== "") {
      const d = rt.policy.decide(flow);
      if (!d.allow) {
        this.counters.denied++;
        rt.log.warn({ event: "flow_denied", side: "sender", flow: describeFlow(flow), ...who(flow), reason: d.reason }, "flow denied by policy (pre-check)");
        this.decided({ event: "flow_denied", side: "sender", flow, reason: d.reason });
        throw new DialError("denied", `policy denies ${describeFlow(flow)}: ${d.reason}`);
      }
      rt.log.info({ event: "flow_allowed", side: "sender", flow: describeFlow(flow), ...who(flow), rule: d.rule?.text, reason: d.reason }, "flow allowed by policy (pre-check)");
      this.decided({ event: "flow_allowed", side: "sender", flow, rule: d.rule?.text, reason: d.reason });
    }
    const open: FlowOpen = { port: target.port, protocol: target.protocol, ...(target.service ? { service: target.service } : {}), ...(opts.external ? { external: opts.external } : {}) };
    const stream = this.muxFor(target.peer).open(flowOpen.encode(open));
    this.counters.opened++;
    try {
      await accepted(stream, this.opts.openTimeoutMs ?? OPEN_TIMEOUT_MS);
    } catch (err) {
      const e = dialErrorFrom(err, target.peer);
      rt.log.warn({ event: "flow_refused", flow: describeFlow(flow), code: e.code, reason: e.reason }, "flow refused");
      this.decided({ event: "flow_refused", flow, reason: e.reason });
      throw e;
    }
    return stream;
  }

  /** A decision (or refusal, or cut) on the node's event bus, with the flow's text form. */
  private decided(e: FlowDecisionEvent): void {
    this.rt.events.emit("flow_decision", e.flow ? { ...e, text: describeFlow(e.flow) } : e);
  }

  /** The SDK's listen(service): flows to that service go to `onFlow` instead of a local address. */
  listen(service: string, onFlow: (flow: AcceptedFlow) => void): () => void {
    if (this.listeners.has(service)) throw new Error(`service "${service}" already has a listener`);
    this.listeners.set(service, onFlow);
    return () => { this.listeners.delete(service); };
  }

  stats() {
    return {
      ...this.counters, live: this.live.size,
      peers: Object.fromEntries([...this.muxes].map(([name, m]) => [name, m.stats()])),
    };
  }

  close(): void {
    for (const [name, mux] of this.muxes) { mux.close("node stopping"); this.muxes.delete(name); }
    this.live.clear();
  }

  private muxFor(peer: string): StreamMux {
    let mux = this.muxes.get(peer);
    if (mux) return mux;
    const rt = this.rt;
    const link: DatagramLink = {
      send: (p) => { const r = rt.send(peer, INNER.STREAM, p); return r === "sent" || r === "queued"; },
      maxPayload: () => rt.maxPayload(peer),
    };
    mux = new StreamMux(link, {
      ...this.opts.transport,
      log: rt.log.child({ peer, layer: "streams" }),
      onIncoming: (stream, request) => this.incoming(peer, stream, request),
      onClose: () => { if (this.muxes.get(peer) === mux) this.muxes.delete(peer); },
    });
    this.muxes.set(peer, mux);
    return mux;
  }

  private incoming(peerName: string, stream: Stream, request: Uint8Array): void {
    const rt = this.rt;
    let open: FlowOpen;
    try {
      open = flowOpen.decode(request);
    } catch (err) {
      this.counters.refused++;
      rt.log.warn({ event: "flow_bad_request", peer: peerName, err: (err as Error).message }, "flow open refused: unreadable request");
      this.decided({ event: "flow_bad_request", peer: peerName, reason: (err as Error).message });
      return stream.refuse(FLOW_CODE.BAD_REQUEST, (err as Error).message);
    }
    const flow = this.incomingFlow(peerName, open);
    const ext = open.external ? { external: open.external.source } : {};
    if (!flow || "refusal" in flow) {
      this.counters.denied++;
      const why = flow ? flow.refusal : `${peerName} has no verified session with ${rt.identity().name}`;
      if (flow) {
        rt.log.warn({ event: "flow_denied", side: "receiver", peer: peerName, ...ext, reason: why }, "external flow refused");
        this.decided({ event: "flow_denied", side: "receiver", peer: peerName, ...ext, reason: why });
      }
      return stream.refuse(FLOW_CODE.DENIED, why);
    }
    const d = rt.policy.decide(flow);
    if (!d.allow) {
      this.counters.denied++;
      rt.log.warn({ event: "flow_denied", side: "receiver", flow: describeFlow(flow), ...who(flow), ...ext, reason: d.reason }, "flow denied by policy");
      this.decided({ event: "flow_denied", side: "receiver", flow, ...ext, reason: d.reason });
      return stream.refuse(FLOW_CODE.DENIED, `denied by ${rt.identity().name}: ${d.reason}`);
    }
    rt.log.info({ event: "flow_allowed", side: "receiver", flow: describeFlow(flow), ...who(flow), ...ext, rule: d.rule?.text, reason: d.reason }, "flow allowed by policy");
    this.decided({ event: "flow_allowed", side: "receiver", flow, ...ext, rule: d.rule?.text, reason: d.reason });
    const target = this.targetOf(open);
    if ("refusal" in target) {
      this.counters.refused++;
      rt.log.warn({ event: "flow_no_service", flow: describeFlow(flow), reason: target.refusal }, "flow refused: no such service");
      this.decided({ event: "flow_no_service", flow, reason: target.refusal });
      return stream.refuse(FLOW_CODE.NO_SERVICE, target.refusal);
    }
    this.counters.accepted++;
    const live: LiveFlow = { peer: peerName, stream, open, flow };
    this.live.add(live);
    stream.once("close", () => this.live.delete(live));
    if (target.listener) {
      stream.accept();
      target.listener({ stream, peer: flow.from, port: open.port, protocol: open.protocol, ...(target.service ? { service: target.service } : {}) });
      return;
    }
    const svc = this.opts.services.get(target.service!)!;
    if (!svc.to) return stream.refuse(FLOW_CODE.NO_SERVICE, `service ${svc.name} on ${rt.identity().name} has no listener now`);
    // Accept only once the local service answered, so a dead service is a refusal the client can read.
    connectService(stream, svc.to, open.protocol, rt.log.child({ service: svc.name, peer: peerName }), {
      onReady: () => stream.accept(),
      onFail: (reason) => stream.refuse(FLOW_CODE.SERVICE_UNREACHABLE, `service ${svc.name} on ${rt.identity().name}: ${reason}`),
    });
  }

  /**
   * The flow as policy sees it: the peer's principal (its verified certificate, or the person logged in on it,
   * from a user certificate bound to that device; or `external` for an edge's external flow, external-flow.ts),
   * this node's machine as target; a refusal when no decision may be made.
   */
  private incomingFlow(peerName: string, open: FlowOpen): Flow | { refusal: string } | undefined {
    const id = this.rt.peerIdentity(peerName);
    const from = this.rt.peerPrincipal(peerName);
    if (!id || !from) return undefined;
    const r = incomingFlowOf(id, from, this.rt.identity(), open);
    return "refusal" in r ? r : r.flow;
  }

  /** Which local service (or SDK listener) an allowed open reaches. */
  private targetOf(open: FlowOpen): { service?: string; listener?: (f: AcceptedFlow) => void } | { refusal: string } {
    const services = this.opts.services;
    const self = this.rt.identity().name;
    if (open.service !== undefined) {
      const listener = this.listeners.get(open.service);
      if (listener) return { service: open.service, listener };
      const s = services.get(open.service);
      if (!s) return { refusal: `${self} has no service "${open.service}" (services: ${services.list().map((x) => x.name).join(", ") || "none"})` };
      if (s.port !== open.port || transportOf(s.protocol) !== open.protocol) {
        return { refusal: `service ${open.service} on ${self} is ${transportOf(s.protocol)} port ${s.port}, not ${open.protocol} ${open.port}` };
      }
      return { service: s.name };
    }
    const s = services.byPort(open.port, open.protocol);
    if (s) return { service: s.name, ...(this.listeners.has(s.name) ? { listener: this.listeners.get(s.name) } : {}) };
    return { refusal: `nothing is served on ${open.protocol} port ${open.port} of ${self}` };
  }

  /** The rules changed: every live incoming flow is decided again; the ones now denied are cut. */
  private recheck(): void {
    for (const f of this.live) {
      const found = this.incomingFlow(f.peer, f.open);
      const flow = found && !("refusal" in found) ? found : undefined;
      const d = flow ? this.rt.policy.decide(flow) : undefined;
      if (d?.allow) continue;
      this.counters.cut++;
      const why = d ? d.reason : found && "refusal" in found ? found.refusal : "no verified session";
      const external = f.open.external ? { external: f.open.external.source } : {};
      this.rt.log.warn({ event: "flow_cut", flow: describeFlow(f.flow), ...who(f.flow), ...external, reason: why }, "live flow cut: the policy no longer allows it");
      this.decided({ event: "flow_cut", flow: f.flow, ...external, reason: why });
      this.live.delete(f);
      f.stream.destroy(new FlowError(`policy no longer allows this flow: ${why}`, FLOW_CODE.POLICY_CHANGED));
    }
  }

  /** Revoked or gone from the map: every stream with it ends now. */
  private dropPeer(name: string, why: string): void {
    const mux = this.muxes.get(name);
    for (const f of this.live) if (f.peer === name) this.live.delete(f);
    if (!mux) return;
    this.muxes.delete(name);
    const n = mux.stats().openStreams;
    this.counters.cut += n;
    this.rt.log.warn({ event: "flows_cut", peer: name, streams: n, reason: why }, "peer gone: its flows are cut");
    mux.destroy(FLOW_CODE.PEER_GONE, why);
  }
}

/** For decision logs: the person and the device a user's flow comes from. */
function who(f: Flow): { user?: string; device?: string } {
  return f.from.kind === "user" ? { user: f.from.name, device: f.from.device } : {};
}

/** Resolves once the peer accepted the stream; rejects with its refusal, a reset, or a timeout. */
function accepted(stream: Stream, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      stream.destroy();
      reject(new DialError("timeout", `no answer to the open within ${timeoutMs} ms`));
    }, timeoutMs);
    const onAccepted = () => { cleanup(); resolve(); };
    const onError = (err: Error) => { cleanup(); reject(err); };
    const onClose = () => { cleanup(); reject(new DialError("unreachable", "the stream closed before the peer answered")); };
    const cleanup = () => { clearTimeout(timer); stream.off("accepted", onAccepted); stream.off("error", onError); stream.off("close", onClose); };
    stream.once("accepted", onAccepted);
    stream.once("error", onError);
    stream.once("close", onClose);
  });
}

const REFUSAL_CODES: Record<number, DialErrorCode> = {
  [FLOW_CODE.DENIED]: "denied",
  [FLOW_CODE.NO_SERVICE]: "refused",
  [FLOW_CODE.SERVICE_UNREACHABLE]: "refused",
  [FLOW_CODE.BAD_REQUEST]: "bad_request",
  [FLOW_CODE.PEER_GONE]: "unreachable",
  [ERROR_CODE.IDLE_TIMEOUT]: "timeout",
};

function dialErrorFrom(err: unknown, peer: string): DialError {
  if (err instanceof DialError) return err;
  if (err instanceof StreamRefusedError) return new DialError(REFUSAL_CODES[err.code] ?? "refused", err.reason || err.message);
  if (err instanceof TransportError) return new DialError(REFUSAL_CODES[err.code] ?? "unreachable", `${peer}: ${err.message}`);
  return new DialError("unreachable", `${peer}: ${(err as Error).message}`);
}
