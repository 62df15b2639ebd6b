// Plain-HTTP GET /metrics for a prom-client registry (node and coordination server; the relay has its own
// listener in relay/metrics.ts). Bind it to loopback or a management network: it needs no credential.
import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

/** GET /metrics on plain HTTP for one registry (node and coordination server). */
export async function serveRegistry(reg: Registry, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== "GET" || req.url !== "/metrics") { res.writeHead(404, { "content-type": "text/plain" }).end("GET /metrics\n"); return; }
    reg.metrics().then((text) => res.writeHead(200, { "content-type": reg.contentType }).end(text), (err) => res.writeHead(500).end(String(err)));
  });
  server.maxConnections = 32;
  await new Promise<void>((resolve, reject) => { server.once("error", reject); server.listen(port, host, () => { server.off("error", reject); resolve(); }); });
  return server;
}
