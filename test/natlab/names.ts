// Names in the NAT lab: a small zone (natlab.test; .test is reserved for testing, RFC 6761) for the servers the
// nodes reach by name. The NAT64 site's DNS64 resolver serves it (nat64.ts); other hosts get the same names in
// their own /etc/hosts. Both are files under /etc/netns/<ns>/, which `ip netns exec` mounts over /etc for every
// process the lab starts in that namespace; the lab's sweep removes the directory with the namespace.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Node } from "./lab.js";

export const LAB_ZONE = "natlab.test";

/** A name in the zone: `labName("coord")` is "coord.natlab.test". */
export const labName = (name: string) => `${name}.${LAB_ZONE}`;

/** Name (relative to LAB_ZONE) -> its addresses (A for IPv4, AAAA for IPv6). */
export type LabRecords = Record<string, string[]>;

/** A zone file with the records. */
export function zoneFile(records: LabRecords): string {
  const lines = [`$ORIGIN ${LAB_ZONE}.`, "$TTL 60", `@ SOA ns.${LAB_ZONE}. hostmaster.${LAB_ZONE}. 1 3600 600 86400 60`, `@ NS ns.${LAB_ZONE}.`];
  for (const [name, addresses] of Object.entries(records)) {
    for (const a of addresses) lines.push(`${name} ${a.includes(":") ? "AAAA" : "A"} ${a}`);
  }
  return lines.join("\n") + "\n";
}

/** Writes one file of the namespace's own /etc (resolv.conf, hosts). */
export function writeNetnsEtc(node: Node, file: "resolv.conf" | "hosts", text: string): void {
  const dir = join("/etc/netns", node.ns);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, file), text);
}

/** The zone's names in the host's own /etc/hosts (beside localhost), for hosts without the lab's resolver. */
export function useLabHosts(node: Node, records: LabRecords): void {
  const lines = ["127.0.0.1 localhost", "::1 localhost"];
  for (const [name, addresses] of Object.entries(records)) for (const a of addresses) lines.push(`${a} ${labName(name)}`);
  writeNetnsEtc(node, "hosts", lines.join("\n") + "\n");
}
