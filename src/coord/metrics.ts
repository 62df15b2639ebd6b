// Prometheus metrics of the coordination server (docs/operations.md#metrics), opt-in with
// `ember coord --metrics 127.0.0.1:9102`: plain HTTP, no credential, so bind it to loopback or a management
// network. Values are read from the server's counters when scraped; peer-map push latency is a histogram
// the server observes around each change it fans out.
import type { Server } from "node:http";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { serveRegistry } from "../net/metrics-http.js";
import type { CoordServer } from "./server.js";

export class CoordMetrics {
  readonly registry = new Registry();
  /** Time to compute and write the map frames of one change (enrollment, renewal, status, policy, revocation). */
  readonly mapPush: Histogram<"change">;
  private server?: Server;

  constructor(private readonly s: CoordServer) {
    const reg = this.registry;
    this.mapPush = new Histogram({ name: "ember_coord_map_push_seconds", help: "Peer-map push latency: one change fanned out to the connected nodes", labelNames: ["change"], buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [reg] });
    new Gauge({ name: "ember_coord_nodes_connected", help: "Nodes holding a peer-map stream", registers: [reg], collect() { this.set(s.hub?.connectedCount ?? 0); } });
    new Counter({ name: "ember_coord_map_frames_total", help: "Peer-map frames sent", registers: [reg], collect() { this.reset(); this.inc(s.hub?.stats.framesSent ?? 0); } });
    new Counter({ name: "ember_coord_map_bytes_total", help: "Peer-map bytes sent", registers: [reg], collect() { this.reset(); this.inc(s.hub?.stats.bytesSent ?? 0); } });
    new Counter({
      name: "ember_coord_events_total", help: "Enrollments, certificate rotations, revocations and policy changes", labelNames: ["event"], registers: [reg],
      collect() { this.reset(); for (const [k, v] of Object.entries(s.counters)) this.inc({ event: k }, v); },
    });
    new Counter({
      name: "ember_coord_tokens_total", help: "M2M tokens: grants, refreshes, and refusals by reason", labelNames: ["result", "reason"], registers: [reg],
      collect() {
        this.reset();
        const c = s.telemetry.tokens.counters;
        this.inc({ result: "granted", reason: "" }, c.issued);
        this.inc({ result: "refreshed", reason: "" }, c.refreshed);
        for (const [r, n] of Object.entries(c.refused)) this.inc({ result: "refused", reason: r }, n);
      },
    });
    new Counter({
      name: "ember_coord_telemetry_events_total", help: "Telemetry events stored, and dropped by reason (over_quota, duplicate)", labelNames: ["result"], registers: [reg],
      collect() { this.reset(); const c = s.telemetry.counters; this.inc({ result: "stored" }, c.events); for (const [r, n] of Object.entries(c.dropped)) this.inc({ result: r }, n); },
    });
    new Counter({
      name: "ember_coord_telemetry_batches_total", help: "Telemetry batches accepted, and refused by reason (rate_limited, too_large, bad_telemetry)", labelNames: ["result"], registers: [reg],
      collect() { this.reset(); const c = s.telemetry.counters; this.inc({ result: "accepted" }, c.batches); for (const [r, n] of Object.entries(c.refusedBatches)) this.inc({ result: r }, n); },
    });
    new Counter({
      name: "ember_coord_console_logins_total", help: "Console logins by method, and failures", labelNames: ["result"], registers: [reg],
      collect() { this.reset(); const c = s.console.counters; this.inc({ result: "password" }, c.logins.password); this.inc({ result: "certificate" }, c.logins.certificate); this.inc({ result: "failed" }, c.loginFailures); },
    });
    new Gauge({
      name: "ember_coord_tcp_connections", help: "TCP connections by state (admission control)", labelNames: ["state"], registers: [reg],
      collect() { const g = s.guard.snapshot(); this.set({ state: "all" }, g.connections); this.set({ state: "pending" }, g.pending); },
    });
    new Gauge({
      name: "ember_coord_console_tcp_connections", help: "TCP connections of the console's own listener by state (admission control)", labelNames: ["state"], registers: [reg],
      collect() { const g = s.consoleGuard?.snapshot(); if (g) { this.set({ state: "all" }, g.connections); this.set({ state: "pending" }, g.pending); } },
    });
    new Counter({
      name: "ember_coord_console_connections_dropped_total", help: "Console connections refused or closed by admission control, by reason", labelNames: ["reason"], registers: [reg],
      collect() { this.reset(); for (const [r, n] of Object.entries(s.consoleGuard?.snapshot().dropped ?? {})) this.inc({ reason: r }, n); },
    });
  }

  async listen(host: string, port: number): Promise<number> {
    this.server = await serveRegistry(this.registry, host, port);
    return (this.server.address() as { port: number }).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
