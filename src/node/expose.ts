// `ember expose`: the control methods that publish this node's services to public edges through the
// coordination server (docs/external-access.md). The node only relays the request over its mTLS connection;
// the server decides (an external rule must allow the service) and the server's refusal is passed on verbatim.
import { EDGE_PATHS } from "../wire/coord/api.js";
import type { ClientAuth } from "../wire/coord/edge.js";
import type { ControlMethods } from "./control.js";
import type { Daemon } from "./daemon.js";

/** Reasons from the server ("no_external_rule: ...") read better without the HTTP wrapping. */
async function ask<T>(d: Daemon, path: string, method: "GET" | "POST", body?: unknown): Promise<T> {
  const mesh = d.mesh;
  if (!mesh) throw new Error("this node runs without a coordination server (--coord): there is nothing to publish to");
  try {
    return await mesh.coord.request(path, method, body);
  } catch (err) {
    const e = err as { code?: string; detail?: string; message: string };
    throw new Error(e.detail ? `${e.code}: ${e.detail}` : e.message);
  }
}

export function registerExposeMethods(methods: ControlMethods, d: Daemon): void {
  methods.register("expose", async (params) => {
    const name = String(params.service ?? "");
    const s = d.services.get(name);
    if (!s) throw new Error(`no service "${name.slice(0, 63)}" on this node: serve it first (ember serve ${name.slice(0, 63) || "NAME"} --to HOST:PORT)`);
    if (s.protocol === "udp") throw new Error(`service ${name} is udp: a public edge carries TCP services only`);
    const clientAuth = (params.clientAuth ?? "none") as ClientAuth;
    // The CLI reads --client-ca FILE itself (the daemon may run elsewhere in the file system) and sends the PEM.
    const clientCaPem = typeof params.clientCaPem === "string" ? params.clientCaPem : undefined;
    if (clientAuth === "cert" && !clientCaPem) throw new Error("--client-auth cert needs --client-ca FILE (the CA whose certificates the edge accepts)");
    return ask(d, EDGE_PATHS.expose, "POST", {
      service: name, port: s.port, protocol: s.protocol, clientAuth,
      ...(typeof params.hostname === "string" ? { hostname: params.hostname } : {}), ...(clientCaPem ? { clientCaPem } : {}),
    });
  });
  methods.register("unexpose", (params) => ask(d, EDGE_PATHS.unexpose, "POST", { service: String(params.service ?? "") }));
  methods.register("exposed", () => ask(d, EDGE_PATHS.exposed, "GET"));
  methods.register("expose-token", (params) => ask(d, EDGE_PATHS.exposeToken, "POST", {
    service: String(params.service ?? ""), ...(params.ttlMs !== undefined ? { ttlMs: params.ttlMs } : {}),
  }));
}
