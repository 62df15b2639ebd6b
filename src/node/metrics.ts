// Prometheus metrics of a node (docs/operations.md#metrics), opt-in: `ember up --metrics 127.0.0.1:9101`
// serves GET /metrics on plain HTTP, loopback only (like the proxy: whoever can connect can read it, and a
// node opens no port to the network but its overlay socket). Every value is read from the daemon's own
// counters when scraped (prom-client collect callbacks): nothing on the data path changes for metrics.
import type { Server } from "node:http";
import { Counter, Gauge, Registry } from "prom-client";
import { serveRegistry } from "../net/metrics-http.js";
import type { Daemon } from "./daemon.js";

export async function startNodeMetrics(d: Daemon, host: string, port: number): Promise<{ server: Server; port: number }> {
  const reg = new Registry();
  reg.setDefaultLabels({ node: d.name });
  const peers = () => [...d.device.peers.values()];
  const sum = (f: (p: ReturnType<typeof peers>[number]) => number) => peers().reduce((a, p) => a + f(p), 0);

  new Gauge({ name: "ember_node_sessions", help: "Peers with an established session", registers: [reg], collect() { this.set(peers().filter((p) => !!p.current).length); } });
  new Gauge({ name: "ember_node_peers", help: "Peers known (peer map and static)", registers: [reg], collect() { this.set(d.device.peers.size); } });
  new Counter({
    name: "ember_node_handshakes_total", help: "Completed handshakes (ok) and refused ones by reason", labelNames: ["result", "reason"], registers: [reg],
    collect() {
      this.reset();
      this.inc({ result: "ok", reason: "" }, sum((p) => p.stats.handshakes));
      for (const [k, v] of d.device.drops) if (k.startsWith("handshake_")) this.inc({ result: "failed", reason: k.slice("handshake_".length) }, v);
    },
  });
  new Counter({
    name: "ember_node_bytes_total", help: "Encrypted bytes sent and received", labelNames: ["direction"], registers: [reg],
    collect() { this.reset(); this.inc({ direction: "tx" }, sum((p) => p.stats.txBytes)); this.inc({ direction: "rx" }, sum((p) => p.stats.rxBytes)); },
  });
  new Counter({
    name: "ember_node_drops_total", help: "Datagrams dropped, by reason", labelNames: ["reason"], registers: [reg],
    collect() { this.reset(); for (const [k, v] of d.device.drops) if (!k.startsWith("handshake_")) this.inc({ reason: k }, v); },
  });
  new Counter({
    name: "ember_node_path_changes_total", help: "Path switches between relay and direct, all peers", registers: [reg],
    collect() { this.reset(); this.inc(peers().reduce((a, p) => a + (d.mesh?.paths.describe(p.name)?.switches ?? 0), 0)); },
  });
  new Counter({ name: "ember_node_rotations_total", help: "Certificate renewals", registers: [reg], collect() { this.reset(); this.inc(d.mesh?.coord.stats.renewals ?? 0); } });
  new Counter({
    name: "ember_node_policy_decisions_total", help: "Policy decisions on new flows, by verdict and side", labelNames: ["verdict", "side"], registers: [reg],
    collect() { this.reset(); for (const [k, v] of d.health.decisionCounts) { const [verdict, side] = k.split("|"); this.inc({ verdict, side }, v); } },
  });
  new Gauge({
    name: "ember_node_peer_rtt_ms", help: "Last measured round trip per peer and path", labelNames: ["peer", "path"], registers: [reg],
    collect() { this.reset(); for (const p of d.health.peers()) if (p.rttMs !== undefined) this.set({ peer: p.name, path: p.path }, p.rttMs); },
  });
  new Gauge({
    name: "ember_node_coordination_connected", help: "1 while the peer-map stream to the coordination server is up", registers: [reg],
    collect() { this.set(d.health.facts().coord?.connected ? 1 : 0); },
  });
  new Counter({
    name: "ember_node_telemetry_events_total", help: "Telemetry events sent, and dropped by the bounded queue/spool", labelNames: ["result"], registers: [reg],
    collect() { this.reset(); const s = d.health.telemetry?.stats; if (s) { this.inc({ result: "sent" }, s.events); this.inc({ result: "dropped" }, s.dropped); } },
  });
  new Gauge({ name: "ember_node_problems", help: "Diagnosed problems now, by code", labelNames: ["code"], registers: [reg], collect() { this.reset(); for (const p of d.health.problems()) this.inc({ code: p.code }); } });

  const server = await serveRegistry(reg, host, port);
  return { server, port: (server.address() as { port: number }).port };
}
