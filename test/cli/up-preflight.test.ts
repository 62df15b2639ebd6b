// `ember up` as an operator runs it, against what goes wrong on a real host: a port the user asked for is taken
// (it used to print the proxy's port was in use and keep running without a proxy), the state directory is
// missing (it failed with `listen EACCES ... ember.sock`), the coordination server is down while enrolling (it
// said only `connect ECONNREFUSED`, exit 2) or the UDP port is taken (found out after enrolling: the one-time
// token spent). Every failure is one line naming the cause and the fix, exits 1, leaves no daemon running, and
// a token is spent only when the node can run: the same token enrolls once the problem is fixed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { EMBER } from "../helpers/cli.js";
import { makeCa, makeLeaf, tempDir } from "../helpers/pki.js";
import { startNode, writeCreds } from "../helpers/nodes.js";
import { makeMesh, spawnCoord, type CoordProcess, type Mesh } from "../coord/helpers.js";

const STACK = /\n\s+at /;

/** `ember up ARGS` to its end (bounded): exit code, output and how long it took. */
function up(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [EMBER, "up", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.on("exit", (code) => { clearTimeout(t); resolve({ code, stdout, stderr, ms: Date.now() - t0 }); });
  });
}

function holdTcp(): Promise<Server> {
  return new Promise((r) => { const s = createServer(); s.listen(0, "127.0.0.1", () => r(s)); });
}
function holdUdp(): Promise<UdpSocket> {
  return new Promise((r) => { const s = createSocket("udp4"); s.bind(0, "127.0.0.1", () => r(s)); });
}
const tcpPort = (s: Server) => (s.address() as { port: number }).port;

/** One line on stderr naming the flag, the port and the fix; no stack trace, no daemon output. */
function expectOneLine(r: { code: number | null; stdout: string; stderr: string }, re: RegExp): void {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).not.toMatch(STACK);
  expect(r.stderr.trim().split("\n").filter((l) => l.startsWith("ember:"))).toHaveLength(1);
  expect(r.stderr).toMatch(re);
  expect(r.stdout).not.toMatch(/"event":"up"/);
}

describe("ember up refuses what it cannot serve, before it starts", () => {
  let tmp: ReturnType<typeof tempDir>;
  let creds: string;
  let tcp: Server, udp: UdpSocket;

  beforeAll(async () => {
    tmp = tempDir("ember-preflight-");
    const ca = await makeCa(tmp.dir);
    creds = join(tmp.dir, "creds");
    writeCreds(creds, ca, await makeLeaf(ca, "solo"));
    [tcp, udp] = [await holdTcp(), await holdUdp()];
  });
  afterAll(() => { tcp?.close(); udp?.close(); tmp?.cleanup(); });

  const credFlags = () => ["--cert", join(creds, "cert.pem"), "--key", join(creds, "key.pem"), "--ca", join(creds, "bundle.pem")];

  it("--proxy, --metrics and --listen on a taken port: exit 1 naming the flag and the port, nothing left running", async () => {
    for (const [flag, value, proto] of [["--proxy", String(tcpPort(tcp)), "TCP"], ["--metrics", `127.0.0.1:${tcpPort(tcp)}`, "TCP"], ["--listen", `127.0.0.1:${udp.address().port}`, "UDP"]]) {
      const state = join(tmp.dir, `taken${flag}`);
      const args = ["--state", state, ...credFlags(), "--listen", "127.0.0.1:0", flag, value];
      const r = await up(args);
      const port = value.split(":").pop();
      expectOneLine(r, new RegExp(`^ember: ${flag} 127\\.0\\.0\\.1:${port}: ${proto} port ${port} is already in use by another program .*pick another port with ${flag}`, "m"));
      expect(r.ms).toBeLessThan(15_000);
      expect(existsSync(join(state, "ember.sock")), "no control socket left behind").toBe(false);
    }
  }, 90_000);

  it("a missing state directory is created (0700) and the node runs", async () => {
    const state = join(tmp.dir, "does", "not", "exist");
    const n = await startNode({ name: "solo", dir: state, extraArgs: credFlags() });
    try {
      expect(statSync(state).mode & 0o777).toBe(0o700);
      expect((await n.request("status")).name).toBe("solo");
    } finally { await n.stop(); }
  }, 30_000);

  it("a state directory that is a file or not writable is named with its fix", async () => {
    const file = join(tmp.dir, "a-file");
    writeFileSync(file, "x");
    const r = await up(["--state", file, ...credFlags(), "--listen", "127.0.0.1:0"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ember: state directory .*a-file: a file is in the way, not a directory: remove it or give another --state DIR$/m);
    expect(r.stderr).not.toMatch(STACK);
  }, 30_000);
});

describe("enrolling: the token is spent only when the node can run", () => {
  let mesh: Mesh;
  let coord: CoordProcess;
  let udp: UdpSocket;

  beforeAll(async () => {
    mesh = await makeMesh();
    coord = await spawnCoord(mesh);
    udp = await holdUdp();
  }, 60_000);
  afterAll(async () => { udp?.close(); await coord?.kill9(); mesh?.cleanup(); });

  it("server down, UDP port taken: one line each, exit 1, and the same token enrolls once fixed", async () => {
    const { token } = await mesh.admin().createToken({ tenant: "acme", groups: ["eng"], roles: [], ttlMs: 600_000, uses: 1, certTtlMs: 3_600_000 });
    const state = join(mesh.dir, "web-1");
    const closed = await holdTcp();
    const closedPort = tcpPort(closed);
    await new Promise<void>((r) => closed.close(() => r()));

    const down = await up(["--coord", `https://127.0.0.1:${closedPort}`, "--token", token, "--name", "web-1", "--state", state, "--listen", "127.0.0.1:0"]);
    expectOneLine(down, new RegExp(`^ember: cannot enroll \\(the token is not spent\\): the coordination server is not running or refusing at 127\\.0\\.0\\.1:${closedPort} \\(connection refused.*; fix: start it`, "m"));

    const taken = await up(["--coord", coord.url, "--token", token, "--name", "web-1", "--state", state, "--listen", `127.0.0.1:${udp.address().port}`]);
    expectOneLine(taken, new RegExp(`^ember: --listen 127\\.0\\.0\\.1:${udp.address().port}: UDP port \\d+ is already in use`, "m"));
    expect(existsSync(join(state, "cert.pem")), "not enrolled").toBe(false);

    const n = await startNode({ name: "web-1", dir: state, extraArgs: ["--coord", coord.url, "--token", token, "--name", "web-1"] });
    try {
      expect((await n.request("status")).name).toBe("web-1");
    } finally { await n.stop(); }
  }, 90_000);

  it.skipIf(!existsSync("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"))("a clock 10 minutes off: refused before the token is spent, naming the offset and NTP", async () => {
    const { token } = await mesh.admin().createToken({ tenant: "acme", groups: ["eng"], roles: [], ttlMs: 600_000, uses: 1, certTtlMs: 3_600_000 });
    const state = join(mesh.dir, "skewed");
    mkdirSync(state, { recursive: true });
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [EMBER, "up", "--coord", coord.url, "--token", token, "--name", "skewed", "--state", state, "--listen", "127.0.0.1:0"], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, LD_PRELOAD: "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", FAKETIME: "-10m", FAKETIME_DONT_FAKE_MONOTONIC: "1" },
      });
      let stderr = "";
      p.stderr.on("data", (d) => (stderr += d));
      const t = setTimeout(() => p.kill("SIGKILL"), 20_000);
      p.on("exit", (code) => { clearTimeout(t); resolve({ code, stderr }); });
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^ember: cannot enroll \(the token is not spent\): this host's clock is 10\.0 min \(\d+\.\d s\) behind the coordination server's.*NTP/m);
    expect(r.stderr).not.toMatch(STACK);
    const n = await startNode({ name: "skewed", dir: state, extraArgs: ["--coord", coord.url, "--token", token, "--name", "skewed"] });
    await n.stop();
  }, 60_000);
});
