// What nodes tell the coordination server about themselves, and the stream it tells them the mesh on: the
// peer-map stream (GET /v1/map, held open, resumable) and status reports (POST /v1/status: endpoints, home
// relay, NAT type, services). The one owner of statuses not yet saved: they reach the store in batches
// (STATUS_FLUSH_MS), so a burst of reports costs one transaction.
import { MAX_ENDPOINT_CHARS, MAX_ENDPOINTS, type HealthAnswer } from "../wire/coord/api.js";
import { PING_INTERVAL_MS } from "../wire/coord/map.js";
import { PROTOCOL_VERSION, VERSION_HEADERS, announcedProtocol, announcedSoftware } from "../wire/protocol.js";
import { RELEASE } from "../release.js";
import { ENDPOINT_PATTERN, NAME_PATTERN } from "../wire/coord/names.js";
import { checkServices, type MapService } from "../wire/coord/services.js";
import type { CoordContext } from "./context.js";
import { FrameCoalescer } from "./frame-coalescer.js";
import { HttpError, readJson, sendJson } from "./http.js";
import { FRAME_COALESCE_MS, MAX_BODY_BYTES } from "./limits.js";
import type { Call, OpenCall } from "./routes.js";
import type { StatusUpdate } from "./store.js";

/**
 * Status reports (endpoints, home relay) are written to the store in batches this often: on PostgreSQL the
 * other replicas learn a node's new endpoint from that write, so it bounds how late they hear of it (within 1 s).
 */
export const STATUS_FLUSH_MS = 500;

export class NodeStatus {
  private readonly coalescer = new FrameCoalescer(FRAME_COALESCE_MS);
  private pending = new Map<string, StatusUpdate>();

  constructor(private readonly ctx: CoordContext) {}

  /** GET /v1/health (no certificate). */
  health(c: OpenCall): void {
    const answer: HealthAnswer = { ok: true, trustDomain: this.ctx.ca.trustDomain, nodes: this.ctx.hub().connectedCount, time: Date.now() };
    sendJson(c.res, 200, answer);
  }

  /** GET /v1/map?epoch=E&seq=N: the node's peer map as a stream of frames (src/wire/coord/map.ts). */
  async mapStream(c: Call): Promise<void> {
    const { ctx } = this;
    const { id, req, res } = c;
    const hub = ctx.hub();
    const node = await ctx.store.getNode(id.name);
    if (!node || node.status !== "active" || !(await ctx.store.isSerialOf(id.serial, id.name, node.enrollmentId)) || !hub.peer(id.name)) {
      throw new HttpError(403, "not_enrolled", `certificate ${id.serial} does not belong to the current enrollment of "${id.name}"`);
    }
    const epoch = c.url.searchParams.get("epoch");
    const seq = Number(c.url.searchParams.get("seq"));
    const resume = epoch && Number.isSafeInteger(seq) && seq >= 0 ? { epoch, seq } : undefined;
    res.writeHead(200, {
      "content-type": "application/vnd.embernet.map+msgpack", "cache-control": "no-store", "x-ember-map-version": "1",
      [VERSION_HEADERS.protocol]: String(PROTOCOL_VERSION), [VERSION_HEADERS.software]: RELEASE.version,
    });
    res.flushHeaders();
    req.socket.setNoDelay(true);
    // TCP keepalive only as a backstop behind the hub's ping frames: probing sooner than a ping interval would
    // cost a resting node a probe and an acknowledgement every 30 s on top of the ping (docs/nat.md "At rest").
    req.socket.setKeepAlive(true, 2 * PING_INTERVAL_MS);
    const sink = this.coalescer.sink(res);
    // The stream lives no longer than the certificate that opened it.
    const expiry = setTimeout(() => res.destroy(), Math.max(0, id.notAfter.getTime() + ctx.verifier.skewMs - Date.now()));
    expiry.unref();
    res.on("close", () => {
      clearTimeout(expiry);
      sink.discard();
      hub.detach(id.name, sink);
      this.pending.set(id.name, { ...this.currentStatus(id.name), lastSeen: Date.now() });
      ctx.log.debug({ event: "map_closed", name: id.name });
    });
    const r = hub.attach(id.name, sink, resume);
    ctx.log.debug({ event: "map_opened", name: id.name, resumed: r.resumed, frames: r.frames });
  }

  /** POST /v1/status (api.ts StatusReport): pushed to the peers at once, saved with the next batch. */
  async report(c: Call): Promise<void> {
    const { id } = c;
    const body = await readJson(c.req, MAX_BODY_BYTES);
    const eps = body.endpoints;
    if (!Array.isArray(eps) || eps.length > MAX_ENDPOINTS || !eps.every((e) => typeof e === "string" && e.length <= MAX_ENDPOINT_CHARS && ENDPOINT_PATTERN.test(e))) {
      throw new HttpError(400, "bad_status", `"endpoints" must be a list of at most ${MAX_ENDPOINTS} host:port strings`);
    }
    const homeRelay = body.homeRelay;
    if (homeRelay !== undefined && (typeof homeRelay !== "string" || !NAME_PATTERN.test(homeRelay))) throw new HttpError(400, "bad_status", `"homeRelay" must be a relay name`);
    const natType = body.natType;
    if (natType !== undefined && (typeof natType !== "string" || natType.length > 64)) throw new HttpError(400, "bad_status", `"natType" must be a short string`);
    let services: MapService[] | undefined;
    try { services = body.services === undefined ? undefined : checkServices(body.services); } catch (err) {
      throw new HttpError(400, "bad_status", (err as Error).message);
    }
    const hub = this.ctx.hub();
    if (!hub.peer(id.name)) throw new HttpError(403, "not_enrolled", `"${id.name}" is not an active node`);
    const now = Date.now();
    this.ctx.timePush("status", () => hub.status(id.name, { endpoints: eps as string[], homeRelay: homeRelay as string | undefined, services, lastSeen: now }));
    // The version it announced (release 0.1.0 announces nothing: protocol 1); a bad value reads as no announcement.
    const protocol = announcedProtocol(body.protocol), version = announcedSoftware(body.version);
    this.pending.set(id.name, { name: id.name, endpoints: eps as string[], homeRelay: homeRelay as string | undefined, natType: natType as string | undefined, lastSeen: now, protocol, version });
    sendJson(c.res, 200, { ok: true });
  }

  /** Saves the statuses reported since the last call, in one batch (a failure is logged; the next report retries). */
  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = [...this.pending.values()];
    this.pending.clear();
    try { await this.ctx.store.saveStatuses(batch); } catch (err) {
      this.ctx.log.error({ event: "status_save_failed", err: (err as Error).message });
    }
  }

  /** Stops coalescing frames (at close; the streams are closed by the hub). */
  stop(): void { this.coalescer.stop(); }

  private currentStatus(name: string): StatusUpdate {
    const p = this.ctx.hub().peer(name);
    return { name, endpoints: p?.endpoints ?? [], homeRelay: p?.homeRelay, lastSeen: p?.lastSeen ?? Date.now() };
  }
}
