// `ember nodes list` (GET /v1/admin/nodes): every enrolled node as stored, with what the live peer maps know
// now (online, last seen, endpoints, home relay). Revoking one is revocation.ts.
import type { CoordContext } from "./context.js";
import { sendJson } from "./http.js";
import type { Call } from "./routes.js";

export async function listNodes(ctx: CoordContext, c: Call): Promise<void> {
  const hub = ctx.hub();
  const nodes = (await ctx.store.listNodes()).map((n) => {
    const live = hub.peer(n.name);
    const lastSeen = live?.lastSeen ?? n.lastSeen;
    return {
      name: n.name, tenant: n.tenant, groups: n.groups, roles: n.roles, status: n.status,
      online: hub.isOnline(n.name), lastSeen: lastSeen ? new Date(lastSeen).toISOString() : undefined,
      endpoints: live?.endpoints ?? n.endpoints, homeRelay: live?.homeRelay ?? n.homeRelay, overlayIp: n.overlayIp, serial: n.serial,
      certExpires: new Date(n.notAfter).toISOString(), enrolledAt: new Date(n.enrolledAt).toISOString(),
      // As its last status report announced it; none yet: it has not reported since enrolling (or this server's upgrade).
      protocol: n.protocol, version: n.version,
    };
  });
  sendJson(c.res, 200, { nodes });
}
