// A local mesh for the at-rest benches (bench:memory, bench/idle-loopback.ts): a coordination server, one relay and
// `count` nodes on 127.0.0.1 under an allow-all policy, every pair having exchanged one ping.
import { join } from "node:path";
import { LocalMesh, type DemoNode } from "../src/cli/demo-mesh.js";

const ALLOW_ALL = "version: 1\nrules:\n  - allow: {source: \"*\", target: \"*\"}\n";

export async function startRestingMesh(mesh: LocalMesh, dir: string, prefix: string, count: number, started?: (n: DemoNode) => void): Promise<DemoNode[]> {
  await mesh.init(`${prefix}.bench`);
  const relay = await mesh.startRelay("relay-1");
  await mesh.startCoord([{ name: "relay-1", port: relay.port, stunPort: relay.stunPort }]);
  await mesh.start("relay", ["relay", "--name", "relay-1", "--listen", `127.0.0.1:${relay.port}`, "--stun", `127.0.0.1:${relay.stunPort}`,
    "--cert", relay.certFlags.cert, "--key", relay.certFlags.key, "--ca", relay.certFlags.ca, "--coord", mesh.coordUrl], /listen/);
  await mesh.admin().setPolicy(ALLOW_ALL);
  const nodes: DemoNode[] = [];
  for (let i = 0; i < count; i++) {
    const n: DemoNode = { name: `${prefix[0]}${i}`, groups: [], dir: join(dir, `${prefix[0]}${i}`), socket: join(dir, `${prefix[0]}${i}`, "ember.sock") };
    nodes.push(n);
    await mesh.startNode(n, "t1");
    started?.(n);
  }
  for (const a of nodes) for (const b of nodes) {
    if (a === b) continue;
    for (let t = 0; ; t++) {
      if (await mesh.request(a, "ping", { name: b.name, timeoutMs: 1_000 }).then(() => true, () => false)) break;
      if (t > 30) throw new Error(`no pong ${a.name} -> ${b.name}`);
    }
  }
  return nodes;
}
