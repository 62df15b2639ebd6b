// Real node daemons in child processes on loopback, with credentials from a test CA.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { EMBER } from "./cli.js";
import { controlRequest } from "../../src/node/control-socket.js";
import type { CaMaterial } from "../../src/pki/index.js";
import type { TestLeaf } from "./pki.js";

export interface NodeProc {
  name: string;
  dir: string;
  port: number;
  socket: string;
  proc: ChildProcess;
  logs: string[];
  request<T = any>(method: string, params?: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
  kill(): void;
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
}

const live = new Set<ChildProcess>();
process.on("exit", () => { for (const p of live) p.kill("SIGKILL"); });

export function writeCreds(dir: string, ca: CaMaterial, leaf: TestLeaf): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "cert.pem"), leaf.pem);
  writeFileSync(join(dir, "key.pem"), leaf.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, "bundle.pem"), ca.bundlePem);
}

export async function startNode(opts: {
  name: string; dir: string; port?: number; peers?: Record<string, number>; timers?: Record<string, number>; extraArgs?: string[];
  /** The loopback address to listen on and reach the static peers at (default 127.0.0.1; "::1" for IPv6). */
  host?: string;
}): Promise<NodeProc> {
  const host = opts.host ?? "127.0.0.1";
  const hp = (port: number) => (host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`);
  const args = [EMBER, "up", "--state", opts.dir, "--listen", hp(opts.port ?? 0), "--log-level", "debug"];
  for (const [n, p] of Object.entries(opts.peers ?? {})) args.push("--peer", `${n}=${hp(p)}`);
  args.push(...(opts.extraArgs ?? []));
  const proc = spawn(process.execPath, args, {
    env: { ...process.env, ...(opts.timers ? { EMBER_TEST_TIMERS: JSON.stringify(opts.timers) } : {}) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(proc);
  proc.on("exit", () => live.delete(proc));
  const logs: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  createInterface({ input: proc.stderr! }).on("line", (l) => {
    logs.push(l);
    for (const w of [...waiters]) if (w.re.test(l)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(l); }
  });
  const up = await new Promise<{ listen: { port: number }; control: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node ${opts.name} did not start:\n${logs.join("\n")}`)), 20_000);
    createInterface({ input: proc.stdout! }).once("line", (l) => { clearTimeout(timer); resolve(JSON.parse(l)); });
    proc.once("exit", (code) => { clearTimeout(timer); reject(new Error(`node ${opts.name} exited ${code}:\n${logs.join("\n")}`)); });
  });
  const node: NodeProc = {
    name: opts.name, dir: opts.dir, port: up.listen.port, socket: up.control, proc, logs,
    request: (method, params) => controlRequest(up.control, method, params ?? {}),
    stop: () => new Promise<void>((res) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return res();
      proc.once("exit", () => res());
      proc.kill("SIGTERM");
    }),
    kill: () => { proc.kill("SIGKILL"); },
    waitForLog: (re, timeoutMs = 10_000) => {
      const hit = logs.find((l) => re.test(l));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const w = { re, resolve: (l: string) => { clearTimeout(t); resolve(l); } };
        const t = setTimeout(() => { waiters.splice(waiters.indexOf(w), 1); reject(new Error(`no log matching ${re} from ${opts.name} within ${timeoutMs} ms`)); }, timeoutMs);
        waiters.push(w);
      });
    },
  };
  return node;
}

/** Polls until fn returns a truthy value or the time runs out (bounded). */
export async function eventually<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (err) { last = err; }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function freeUdpPort(host = "127.0.0.1"): Promise<number> {
  const { createSocket } = await import("node:dgram");
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, host, () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
