// A two-node static mesh on loopback (no coordination server): credentials from a test CA, a local policy,
// real `ember up` children. For CLI tests that need a live peer behind a daemon.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeCa, makeLeaf, tempDir } from "./pki.js";
import { freeUdpPort, startNode, writeCreds, type NodeProc } from "./nodes.js";

export interface StaticMesh { dir: string; a: NodeProc; b: NodeProc; policyFile: string; stop(): Promise<void> }

/** Nodes a (group clients) and b (group servers), each the other's static peer, under `policy` (YAML rules). */
export async function startStaticMesh(prefix: string, policy: string, extra: { a?: string[]; b?: string[] } = {}): Promise<StaticMesh> {
  const tmp = tempDir(prefix);
  const ca = await makeCa(tmp.dir);
  const [pa, pb] = [await freeUdpPort(), await freeUdpPort()];
  const policyFile = join(tmp.dir, "policy.yaml");
  writeFileSync(policyFile, policy);
  writeCreds(join(tmp.dir, "a"), ca, await makeLeaf(ca, "a", { groups: ["clients"] }));
  writeCreds(join(tmp.dir, "b"), ca, await makeLeaf(ca, "b", { groups: ["servers"] }));
  const b = await startNode({ name: "b", dir: join(tmp.dir, "b"), port: pb, peers: { a: pa }, extraArgs: ["--policy", policyFile, ...(extra.b ?? [])] });
  const a = await startNode({ name: "a", dir: join(tmp.dir, "a"), port: pa, peers: { b: pb }, extraArgs: ["--policy", policyFile, ...(extra.a ?? [])] });
  return {
    dir: tmp.dir, a, b, policyFile,
    stop: async () => { await Promise.all([a.stop(), b.stop()]); tmp.cleanup(); },
  };
}
