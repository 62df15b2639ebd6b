// `ember nodes list|revoke`: the enrolled nodes as the coordination server sees them.
import type { Command } from "commander";
import { AdminClient, type AdminConnectionFlags } from "../coord-client/admin-client.js";
import { adminCall, withAdminFlags } from "./admin.js";
import { versionLabel } from "../wire/protocol.js";
import { humanDuration, printFields, printJson, printTable } from "./output.js";

interface NodeRow {
  name: string; tenant: string; groups: string[]; status: string; online: boolean; lastSeen?: string;
  endpoints: string[]; homeRelay?: string; overlayIp?: string; certExpires: string; serial: string;
  protocol?: number; version?: string;
}

export function registerNodes(program: Command): void {
  const nodes = program.command("nodes").description("enrolled nodes (coordination server)");

  withAdminFlags(nodes.command("list")
    .description("every node: name, tenant, overlay address, groups, online, version, last seen, endpoints, certificate expiry")
    .option("--json", "machine-readable output"))
    .action(async (o: AdminConnectionFlags & { json?: boolean }) => {
      const r = await adminCall(() => new AdminClient(o).listNodes()) as { nodes: NodeRow[] };
      if (o.json) return printJson(r.nodes);
      const now = Date.now();
      printTable(["NAME", "TENANT", "OVERLAY IP", "GROUPS", "STATUS", "ONLINE", "VERSION", "LAST SEEN", "ENDPOINTS", "CERT EXPIRES"], r.nodes.map((n) => [
        n.name, n.tenant, n.overlayIp ?? "-", n.groups.join(",") || "-", n.status, n.online ? "yes" : "no", versionLabel(n),
        n.lastSeen ? `${humanDuration(now - Date.parse(n.lastSeen))} ago` : "never", n.endpoints.join(",") || "-",
        `${n.certExpires} (${humanDuration(Date.parse(n.certExpires) - now)})`,
      ]));
    });

  withAdminFlags(nodes.command("revoke")
    .description("revoke a node: its certificates go on the signed revocation list, pushed to every node at once")
    .argument("<name>", "node name")
    .option("--json", "machine-readable output"))
    .action(async (name: string, o: AdminConnectionFlags & { json?: boolean }) => {
      const r = await adminCall(() => new AdminClient(o).revoke(name));
      if (o.json) return printJson(r);
      printFields([["revoked", r.name], ["serials", r.serials.join(", ") || "-"], ["list number", r.number]]);
    });
}
