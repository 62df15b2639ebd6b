// `ember forward LOCAL NAME:PORT` in the foreground, as a user runs it: the real CLI against two real daemons.
// It stays up until Ctrl-C (it used to exit at once with rc 13, an unsettled top-level await, leaving the forward
// registered), the daemon drops the forward whenever the CLI ends (Ctrl-C, SIGTERM, kill -9), the CLI prints why
// the daemon refused a client (a policy denial with its reason), and it says so when the daemon goes away.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { connect, createServer, type Server } from "node:net";
import { createInterface } from "node:readline";
import { EMBER, ember } from "../helpers/cli.js";
import { eventually } from "../helpers/nodes.js";
import { startStaticMesh, type StaticMesh } from "../helpers/static-mesh.js";

const POLICY = `rules:\n  - allow: {source: "@clients", target: b, protocol: tcp, ports: [9000]}\n`;
const STACK = /\n\s+at /;

interface ForwardProc { proc: ChildProcess; port: number; stdout: string[]; stderr: string[]; exited: Promise<number | null> }

/** `ember forward 0 TARGET --state DIR` as a child; resolves once it printed its forwarding line. */
function forward(target: string, dir: string): Promise<ForwardProc> {
  const proc = spawn(process.execPath, [EMBER, "forward", "0", target, "--state", dir], { stdio: ["ignore", "pipe", "pipe"] });
  const stdout: string[] = [], stderr: string[] = [];
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  createInterface({ input: proc.stderr! }).on("line", (l) => stderr.push(l));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`ember forward printed nothing: ${stderr.join("\n")}`)), 20_000);
    createInterface({ input: proc.stdout! }).on("line", (l) => {
      stdout.push(l);
      const m = /^forwarding 127\.0\.0\.1:(\d+) -> /.exec(l);
      if (m) { clearTimeout(t); resolve({ proc, port: Number(m[1]), stdout, stderr, exited }); }
    });
    void exited.then((code) => { clearTimeout(t); reject(new Error(`ember forward exited ${code}: ${stderr.join("\n")}`)); });
  });
}

/** Sends `text` through the local port; the echo comes back, or the error (a reset) is returned. */
function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    let got = "";
    const c = connect(port, "127.0.0.1", () => c.write(text));
    c.setEncoding("utf8");
    c.on("data", (d: string) => { got += d; if (got.length >= text.length) c.end(); });
    c.on("close", () => resolve(got));
    c.on("error", (err: NodeJS.ErrnoException) => resolve(`error ${err.code}`));
  });
}

const forwardsOf = async (mesh: StaticMesh) => (await mesh.a.request<{ forwards: { listen: string }[] }>("access")).forwards;

describe("ember forward in the foreground", () => {
  let mesh: StaticMesh;
  let echo: Server;
  const children: ForwardProc[] = [];

  beforeAll(async () => {
    mesh = await startStaticMesh("ember-forward-", POLICY);
    echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    await mesh.b.request("serve", { name: "echo", to: `127.0.0.1:${(echo.address() as { port: number }).port}`, port: 9000 });
  }, 60_000);

  afterAll(async () => {
    for (const c of children) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
    echo?.close();
    await mesh?.stop();
  }, 30_000);

  it("stays up until Ctrl-C, carries bytes, and leaves the port free when it ends", async () => {
    const f = await forward("b:9000", mesh.a.dir);
    children.push(f);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(f.proc.exitCode, `it exited: ${f.stderr.join("\n")}`).toBeNull();
    expect(f.stdout[0]).toMatch(/-> b:9000\/tcp \(tcp\); Ctrl-C stops it$/);
    expect(await roundTrip(f.port, "hello through the mesh")).toBe("hello through the mesh");

    f.proc.kill("SIGINT");
    expect(await f.exited).toBe(0);
    expect(f.stderr.join("\n")).not.toMatch(STACK);
    expect(await forwardsOf(mesh)).toEqual([]);
    // The same port again: not "already in use".
    const again = ember(["forward", String(f.port), "b:9000", "--detach", "--state", mesh.a.dir]);
    expect(again.code, again.stderr).toBe(0);
    expect(ember(["forward", String(f.port), "x", "--remove", "--state", mesh.a.dir]).code).toBe(0);
  }, 60_000);

  it("the daemon drops the forward when the CLI is killed (SIGTERM or kill -9)", async () => {
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      const f = await forward("b:9000", mesh.a.dir);
      children.push(f);
      expect((await forwardsOf(mesh)).map((x) => x.listen)).toEqual([`127.0.0.1:${f.port}`]);
      f.proc.kill(signal);
      await f.exited;
      await eventually(async () => (await forwardsOf(mesh)).length === 0, 5_000, `the forward dropped after ${signal}`);
      expect(await roundTrip(f.port, "x")).toBe("error ECONNREFUSED");
    }
  }, 60_000);

  it("prints the daemon's reason when a client is refused by policy", async () => {
    const f = await forward("b:9001", mesh.a.dir);
    children.push(f);
    expect(await roundTrip(f.port, "denied?")).toMatch(/^(error ECONNRESET|)$/);
    const line = await eventually(() => f.stderr.find((l) => /refused/.test(l)), 5_000, "the refusal on the CLI's stderr");
    expect(line).toMatch(/^ember: 127\.0\.0\.1:\d+ -> b:9001\/tcp refused \(denied\): policy denies a\.acme -> b\.acme:9001\/tcp: default deny/);
    f.proc.kill("SIGINT");
    expect(await f.exited).toBe(0);
  }, 60_000);

  it("exits 1 with a message when the daemon stops under it", async () => {
    const f = await forward("b:9000", mesh.a.dir);
    children.push(f);
    await mesh.a.stop();
    expect(await f.exited).toBe(1);
    expect(f.stderr.join("\n")).toMatch(/^ember: the daemon closed the forward on 127\.0\.0\.1:\d+ \(it stopped\?\)$/m);
    expect(f.stderr.join("\n")).not.toMatch(STACK);
  }, 60_000);
});
