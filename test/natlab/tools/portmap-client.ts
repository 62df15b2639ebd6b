// The port mapper's clients run by hand in a lab namespace (test/natlab/portmap.test.ts).
//   portmap-client.ts --gateway IP --protocol nat-pmp|pcp|upnp --port N
//     maps UDP port N, prints {"mapping":{...}}, waits for a line on stdin, deletes it, prints {"removed":true}
//   portmap-client.ts --gateway IP --list     prints {"entries":[...]} (UPnP GetGenericPortMappingEntry)
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { mapBy, type PortmapProtocol } from "../../../src/nat/portmap/portmapper.js";
import { discoverIgd, upnpMappingEntry, type PortMappingEntry } from "../../../src/nat/portmap/upnp.js";
import { PortmapError } from "../../../src/nat/portmap/errors.js";
import { UPNP_ERR_INVALID_INDEX, UPNP_ERR_NO_SUCH_ENTRY } from "../../../src/nat/portmap/constants.js";

const { values } = parseArgs({ options: { gateway: { type: "string" }, protocol: { type: "string" }, port: { type: "string" }, list: { type: "boolean" } } });
const gateway = values.gateway!;

async function list(): Promise<PortMappingEntry[]> {
  const igd = await discoverIgd(gateway);
  const out: PortMappingEntry[] = [];
  for (let i = 0; i < 64; i++) {
    try { out.push(await upnpMappingEntry(igd, i)); } catch (err) {
      // Past the last entry: 713 (SpecifiedArrayIndexInvalid), or 714 on some IGDs.
      if (err instanceof PortmapError && (err.result === UPNP_ERR_INVALID_INDEX || err.result === UPNP_ERR_NO_SUCH_ENTRY)) break;
      throw err;
    }
  }
  return out;
}

try {
  if (values.list) {
    console.log(JSON.stringify({ entries: await list() }));
  } else {
    const h = await mapBy(values.protocol as PortmapProtocol, gateway, Number(values.port), 600);
    console.log(JSON.stringify({ mapping: h.mapping }));
    const rl = createInterface({ input: process.stdin });
    await new Promise<void>((res) => rl.once("line", () => res()));
    rl.close();
    await h.remove();
    console.log(JSON.stringify({ removed: true }));
  }
} catch (err) {
  console.log(JSON.stringify({ error: (err as Error).message }));
  process.exitCode = 1;
}
