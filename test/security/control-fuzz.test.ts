// Property-based fuzzing of the node's control socket (the local API `ember` talks to): arbitrary lines,
// JSON of every shape, known methods with hostile parameters, oversized and unterminated requests. A live
// daemon must answer every line with one JSON object (a result or an error naming the problem) or close an
// oversized request, never crash, never hang, and still answer `status` afterwards. Bounded: a fixed seed
// and a few hundred cases.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { spawn, type ChildProcess } from "node:child_process";
import { createConnection } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { controlRequest } from "../../src/node/control-socket.js";
import { EMBER } from "../helpers/cli.js";
import { writeCreds } from "../helpers/nodes.js";
import { makeCa, makeLeaf, tempDir } from "../helpers/pki.js";

const SEED = 31_337;
const METHODS = ["status", "peers", "ping", "netcheck", "serve", "unserve", "services", "resolve", "forward", "unforward", "access", "nope", ""];

/**
 * Sends raw bytes on a fresh connection; collects answer lines until `expect` arrived, the daemon closed,
 * or nothing came for quietMs. A reset while we still write (the daemon refused mid-request) counts as closed.
 */
function exchange(path: string, bytes: Buffer | string, expect = Infinity, quietMs = 1_500): Promise<{ lines: string[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    let buf = "";
    let closed = false;
    let timer: NodeJS.Timeout | undefined;
    const lines = () => buf.split("\n").filter(Boolean);
    const done = () => { clearTimeout(timer); c.destroy(); resolve({ lines: lines(), closed }); };
    const arm = () => { clearTimeout(timer); timer = setTimeout(done, quietMs); };
    c.setEncoding("utf8");
    c.on("connect", () => { c.write(bytes); arm(); });
    c.on("data", (d: string) => { buf += d; if (lines().length >= expect) done(); else arm(); });
    c.on("close", () => { closed = true; done(); });
    c.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNRESET" || err.code === "EPIPE") { closed = true; done(); } else reject(err);
    });
  });
}

describe("control socket fuzz", () => {
  let tmp: ReturnType<typeof tempDir>;
  let daemon: ChildProcess;
  let sock: string;
  let stderr = "";

  beforeAll(async () => {
    tmp = tempDir("ember-ctl-fuzz-");
    const ca = await makeCa(tmp.dir);
    const dir = join(tmp.dir, "n");
    writeCreds(dir, ca, await makeLeaf(ca, "fuzz-node"));
    daemon = spawn(process.execPath, [EMBER, "up", "--state", dir, "--listen", "127.0.0.1:0", "--peer", "other=127.0.0.1:9"], { stdio: ["ignore", "pipe", "pipe"] });
    const up = await new Promise<string>((resolve, reject) => {
      createInterface({ input: daemon.stdout! }).once("line", resolve);
      daemon.once("exit", (code) => reject(new Error(`daemon exited ${code}`)));
    });
    sock = JSON.parse(up).control;
    daemon.stderr!.on("data", (d: Buffer) => { stderr += d.toString(); if (stderr.length > 20_000) stderr = stderr.slice(-10_000); });
    daemon.on("exit", (code, sig) => { stderr += `\n[daemon exited ${code ?? sig}]`; });
  }, 60_000);

  afterAll(() => {
    if (daemon?.exitCode === null) daemon.kill("SIGKILL");
    tmp?.cleanup();
  });

  it("every request line gets one JSON answer; the daemon survives and still answers status", async () => {
    const jsonValue = fc.jsonValue({ maxDepth: 3 });
    const request = fc.oneof(
      // known and unknown methods with hostile parameters
      fc.record({ id: jsonValue, method: fc.constantFrom(...METHODS), params: fc.dictionary(fc.constantFrom("name", "to", "port", "protocol", "listenPort", "host", "timeoutMs"), jsonValue) })
        .map((r) => JSON.stringify(r)),
      // any JSON at all
      jsonValue.map((v) => JSON.stringify(v)),
      // not JSON
      fc.string({ maxLength: 200 }).filter((s) => !s.includes("\n")),
    );
    await fc.assert(fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 4 }), async (lines) => {
      if (daemon.exitCode !== null) throw new Error(`the daemon died: ${stderr.slice(-3_000)}`);
      const r = await exchange(sock, lines.map((l) => l + "\n").join(""), lines.length).catch((err) => {
        throw new Error(`${(err as Error).message} after ${JSON.stringify(lines).slice(0, 400)}; daemon log: ${stderr.slice(-2_000)}`);
      });
      expect(r.lines.length, `answers to ${JSON.stringify(lines).slice(0, 300)}`).toBe(lines.length);
      for (const a of r.lines) {
        const o = JSON.parse(a);
        expect(o !== null && typeof o === "object" && ("result" in o || typeof o.error === "string")).toBe(true);
      }
    }), { seed: SEED, numRuns: 150, interruptAfterTimeLimit: 60_000 });
    expect((await controlRequest<{ name: string }>(sock, "status")).name).toBe("fuzz-node");
  }, 120_000);

  it("an oversized or unterminated request is refused without buffering it; the daemon keeps serving", async () => {
    const big = await exchange(sock, "x".repeat(200 * 1024));
    expect(big.closed).toBe(true);
    expect(big.lines.map((l) => JSON.parse(l).error)).toEqual(["request too large"]);
    const partial = await exchange(sock, '{"method":"status"', Infinity, 300);
    expect(partial.lines).toEqual([]);
    expect((await controlRequest<{ name: string }>(sock, "status")).name).toBe("fuzz-node");
  }, 30_000);
});
