// The IPv6 underlay on loopback: two daemons with static peers on [::1] handshake and ping both ways, through
// the native data plane and through the TypeScript one; status and peers print [v6]:port.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import type { CaMaterial } from "../../src/pki/index.js";
import { makeCa, makeLeaf, tempDir } from "../helpers/pki.js";
import { freeUdpPort, startNode, writeCreds, type NodeProc } from "../helpers/nodes.js";
import { ember } from "../helpers/cli.js";

let tmp: ReturnType<typeof tempDir>;
let ca: CaMaterial;
const nodes: NodeProc[] = [];

beforeAll(async () => {
  tmp = tempDir();
  ca = await makeCa(tmp.dir);
  for (const n of ["v6-a", "v6-b"]) writeCreds(join(tmp.dir, n), ca, await makeLeaf(ca, n));
});
afterEach(async () => { await Promise.all(nodes.splice(0).map((n) => n.stop())); });
afterAll(() => tmp.cleanup());

describe("two daemons on [::1]", () => {
  for (const plane of ["native", "typescript"]) {
    it(`handshake and ping both ways (${plane} data plane)`, async () => {
      const [pa, pb] = [await freeUdpPort(), await freeUdpPort()];
      const env = plane === "typescript" ? { EMBER_NATIVE: "off" } : {};
      Object.assign(process.env, env);
      try {
        const a = await startNode({ name: "v6-a", dir: join(tmp.dir, "v6-a"), host: "::1", port: pa, peers: { "v6-b": pb } });
        const b = await startNode({ name: "v6-b", dir: join(tmp.dir, "v6-b"), host: "::1", port: pb, peers: { "v6-a": pa } });
        nodes.push(a, b);
      } finally {
        delete process.env.EMBER_NATIVE;
      }
      const [a, b] = nodes;
      const ping = ember(["ping", "v6-b", "--state", a.dir, "-c", "2", "--json"]);
      expect(ping.code, ping.stderr + ping.stdout).toBe(0);
      expect(JSON.parse(ping.stdout).rttMs).toHaveLength(2);
      expect((await b.request("ping", { name: "v6-a" })).rttMs).toBeGreaterThan(0);
      const st = JSON.parse(ember(["status", "--state", a.dir, "--json"]).stdout);
      expect(st.listen).toBe(`[::1]:${pa}`);
      expect(st.peers[0]).toMatchObject({ name: "v6-b", state: "connected", path: "direct", endpoint: `[::1]:${pb}` });
    });
  }

  for (const plane of ["native", "typescript"]) {
    it(`dual-stack sockets: a reaches b over IPv6, b reaches a over IPv4, one session (${plane} data plane)`, async () => {
      const [pa, pb] = [await freeUdpPort(), await freeUdpPort()];
      if (plane === "typescript") process.env.EMBER_NATIVE = "off";
      try {
        // Listening on "[::]:P" opens an IPv4 and an IPv6 socket on P.
        nodes.push(await startNode({ name: "v6-a", dir: join(tmp.dir, "v6-a"), host: "::", port: pa, peers: {}, extraArgs: ["--peer", `v6-b=[::1]:${pb}`] }));
        nodes.push(await startNode({ name: "v6-b", dir: join(tmp.dir, "v6-b"), host: "::", port: pb, peers: {}, extraArgs: ["--peer", `v6-a=127.0.0.1:${pa}`] }));
      } finally {
        delete process.env.EMBER_NATIVE;
      }
      const [a, b] = nodes;
      const st = JSON.parse(ember(["status", "--state", a.dir, "--json"]).stdout);
      expect(st.sockets).toEqual([`0.0.0.0:${pa}`, `[::]:${pa}`]);
      if (plane === "native") expect(st.dataPlane.backend).toBe("native");
      expect((await a.request("ping", { name: "v6-b" })).rttMs).toBeGreaterThan(0);
      expect((await b.request("ping", { name: "v6-a" })).rttMs).toBeGreaterThan(0);
      const peers = await a.request<any[]>("peers");
      expect(peers[0]).toMatchObject({ name: "v6-b", state: "connected" });
      expect(peers[0].handshakes).toBeLessThanOrEqual(2);
    });
  }
});
