// Relay counters, read by `GET /status` (JSON) and `GET /metrics` (Prometheus text) on the optional
// --metrics listener (plain HTTP: bind it to loopback or a management network, it carries no secrets).
import { createServer, type Server } from "node:http";
import { bindAnyFamily } from "../src/net/any-address.js";
import type { AddressInfo } from "node:net";
import type { GuardSnapshot } from "../src/net/conn-guard.js";

export const DROP_REASONS = ["rate_limited", "queue_full", "unknown_peer", "frame_error"] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export class RelayCounters {
  connectedNodes = 0;
  connectionsAccepted = 0;
  refused: Record<string, number> = {};
  closedByReason: Record<string, number> = {};
  framesForwarded = 0;
  bytesForwarded = 0;
  drops: Record<DropReason, number> = { rate_limited: 0, queue_full: 0, unknown_peer: 0, frame_error: 0 };
  dropBytes: Record<DropReason, number> = { rate_limited: 0, queue_full: 0, unknown_peer: 0, frame_error: 0 };
  stunRequests = 0;
  stunAnswered = 0;
  stunDropped = 0;
  revocationListNumber = -1;

  drop(reason: DropReason, bytes: number): void {
    this.drops[reason]++;
    this.dropBytes[reason] += bytes;
  }

  bump(map: Record<string, number>, key: string): void {
    map[key] = (map[key] ?? 0) + 1;
  }

  snapshot(): Record<string, unknown> {
    return {
      connectedNodes: this.connectedNodes, connectionsAccepted: this.connectionsAccepted, refused: { ...this.refused },
      closedByReason: { ...this.closedByReason }, framesForwarded: this.framesForwarded, bytesForwarded: this.bytesForwarded,
      drops: { ...this.drops }, dropBytes: { ...this.dropBytes }, stunRequests: this.stunRequests, stunAnswered: this.stunAnswered,
      stunDropped: this.stunDropped, revocationListNumber: this.revocationListNumber,
    };
  }

  prometheus(relayName: string): string {
    const l = `relay="${relayName}"`;
    const lines = [
      `ember_relay_connected_nodes{${l}} ${this.connectedNodes}`,
      `ember_relay_connections_accepted_total{${l}} ${this.connectionsAccepted}`,
      `ember_relay_frames_forwarded_total{${l}} ${this.framesForwarded}`,
      `ember_relay_bytes_forwarded_total{${l}} ${this.bytesForwarded}`,
      ...DROP_REASONS.map((r) => `ember_relay_drops_total{${l},reason="${r}"} ${this.drops[r]}`),
      ...Object.entries(this.refused).map(([r, n]) => `ember_relay_refused_total{${l},reason="${r}"} ${n}`),
      `ember_relay_stun_requests_total{${l}} ${this.stunRequests}`,
      `ember_relay_stun_answered_total{${l}} ${this.stunAnswered}`,
      `ember_relay_revocation_list_number{${l}} ${this.revocationListNumber}`,
    ];
    return lines.join("\n") + "\n";
  }
}

export async function startMetricsServer(host: string, port: number, counters: RelayCounters, relayName: string, extra: () => Record<string, unknown>,
  guard?: () => GuardSnapshot): Promise<{ server: Server; address: AddressInfo }> {
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/status") {
      const body = JSON.stringify({ relay: relayName, ...extra(), counters: counters.snapshot() });
      res.writeHead(200, { "content-type": "application/json" }).end(body);
    } else if (req.method === "GET" && req.url === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(counters.prometheus(relayName) + (guard ? guardMetrics(relayName, guard()) : ""));
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: GET /status or /metrics\n");
    }
  });
  await bindAnyFamily(host, (h) => new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, h, () => { server.off("error", reject); resolve(); });
  }));
  return { server, address: server.address() as AddressInfo };
}

function guardMetrics(relayName: string, g: GuardSnapshot): string {
  const l = `relay="${relayName}"`;
  return [
    `ember_relay_tcp_connections{${l}} ${g.connections}`,
    `ember_relay_tcp_pending{${l}} ${g.pending}`,
    `ember_relay_tcp_max_connections{${l}} ${g.maxConnections}`,
    `ember_relay_tcp_max_pending{${l}} ${g.maxPending}`,
  ].join("\n") + "\n";
}
