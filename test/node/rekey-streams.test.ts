// Streams ride above the session: a transfer through `ember forward` stays byte-exact across several rekeys
// (keys replaced every second here), between two real daemons of a static mesh with a local policy.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { freeUdpPort } from "../../src/cli/demo-mesh.js";
import { controlRequest } from "../../src/node/control-socket.js";
import { EMBER, ember } from "../helpers/cli.js";
import { tempDir } from "../helpers/pki.js";

const TRANSFER_TOOL = join(import.meta.dirname, "..", "natlab", "tools", "transfer.ts");
const TIMERS = JSON.stringify({ rekeyAfterTimeMs: 1_000, rejectAfterTimeMs: 8_000, handshakeTimeoutMs: 500 });

function started(proc: ChildProcess, ready: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const err: string[] = [];
    createInterface({ input: proc.stderr! }).on("line", (l) => err.push(l));
    createInterface({ input: proc.stdout! }).on("line", (l) => { if (ready.test(l)) resolve(l); });
    proc.once("exit", (code) => reject(new Error(`exited ${code}: ${err.slice(-20).join("\n")}`)));
  });
}

describe("streams across rekeys", () => {
  let tmp: ReturnType<typeof tempDir>;
  const procs: ChildProcess[] = [];
  const spawnTracked = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
    const p = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    procs.push(p);
    return p;
  };

  beforeAll(() => { tmp = tempDir("ember-rekey-"); });
  afterAll(() => {
    for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
    tmp?.cleanup();
  });

  it("60 MB through ember forward while the session rekeys every second: byte-exact, no new stream", async () => {
    const dir = tmp.dir;
    expect(ember(["ca", "init", "--dir", join(dir, "ca"), "--trust-domain", "rekey.test"]).code).toBe(0);
    for (const [name, groups] of [["a", "clients"], ["b", "servers"]]) {
      mkdirSync(join(dir, name));
      expect(ember(["cert", "issue", "--ca-dir", join(dir, "ca"), "--name", name, "--tenant", "t", "--groups", groups, "--out", join(dir, name, "id")]).code).toBe(0);
      renameSync(join(dir, name, "id.crt"), join(dir, name, "cert.pem"));
      renameSync(join(dir, name, "id.key"), join(dir, name, "key.pem"));
      copyFileSync(join(dir, "ca", "bundle.pem"), join(dir, name, "bundle.pem"));
    }
    writeFileSync(join(dir, "policy.yaml"), `rules:\n  - allow: {source: "@clients", target: b, protocol: tcp, ports: [9000]}\n`);
    const [pa, pb] = [await freeUdpPort(), await freeUdpPort()];
    const sinkPort = JSON.parse(await started(spawnTracked([process.execPath, "--import", "tsx", TRANSFER_TOOL, "sink", "--port", "0"]), /ready/)).port;
    writeFileSync(join(dir, "b.yaml"), `state: ${join(dir, "b")}\nlisten: 127.0.0.1:${pb}\npolicy: ${join(dir, "policy.yaml")}\n`
      + `peers: {a: "127.0.0.1:${pa}"}\nservices:\n  sink: {to: "127.0.0.1:${sinkPort}", port: 9000}\n`);
    const env = { EMBER_TEST_TIMERS: TIMERS };
    await started(spawnTracked([process.execPath, EMBER, "up", "--config", join(dir, "b.yaml")], env), /"event":"up"/);
    await started(spawnTracked([process.execPath, EMBER, "up", "--state", join(dir, "a"), "--listen", `127.0.0.1:${pa}`,
      "--policy", join(dir, "policy.yaml"), "--peer", `b=127.0.0.1:${pb}`], env), /"event":"up"/);
    const sock = join(dir, "a", "ember.sock");
    const f = await controlRequest<{ listen: string }>(sock, "forward", { listenPort: 0, host: "b", port: 9000, protocol: "tcp" });
    const port = Number(f.listen.split(":").pop());
    const before = (await controlRequest<any[]>(sock, "peers")).find((p) => p.name === "b")?.handshakes ?? 0;
    const send = spawnTracked([process.execPath, "--import", "tsx", TRANSFER_TOOL, "send", "--port", String(port), "--bytes", String(60 << 20)]);
    const r = JSON.parse(await started(send, /"bytes"/));
    const after = (await controlRequest<any[]>(sock, "peers")).find((p) => p.name === "b")?.handshakes ?? 0;
    const st = await controlRequest<any>(sock, "status");
    console.log(`rekeys during the transfer: ${after - before}; ${r.mbps} Mbit/s over ${r.ms} ms`);
    expect(r.remoteBytes).toBe(60 << 20);
    expect(r.remoteSha256).toBe(r.sha256);
    expect(after - before).toBeGreaterThanOrEqual(Math.min(2, Math.floor(r.ms / 1_500)));
    expect(st.flows.peers.b.streamsOpened).toBe(1); // one stream carried it all: no reconnect
  }, 120_000);
});
