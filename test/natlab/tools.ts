// Running the lab's node tools (test/natlab/tools/*.ts) inside lab namespaces and reading their JSON lines.
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { dirname, join, resolve } from "node:path";
import type { Lab, Node } from "./lab.js";

const HERE = dirname(fileURLToPath(import.meta.url));
/** Repository root: tools run with cwd here so `--import tsx` resolves from node_modules. */
export const REPO_ROOT = resolve(HERE, "..", "..");

export type ToolName = "reflector" | "probe" | "punch" | "transfer" | "ext-ip-stun" | "portmap-client";

export function toolArgv(tool: ToolName, args: string[]): string[] {
  return [process.execPath, "--import", "tsx", join(HERE, "tools", `${tool}.ts`), ...args];
}

export interface ToolProc {
  child: ChildProcess;
  /** Resolves with the next JSON line the tool prints (rejects on exit or timeout first). */
  nextJson<T = any>(timeoutMs: number): Promise<T>;
  send(line: string): void;
  stderr(): string;
}

/** Starts a tool in a namespace, tracked by the lab (killed on destroy). */
export function startTool(lab: Lab, node: Node, tool: ToolName, args: string[]): ToolProc {
  return jsonLines(lab.spawn(node, toolArgv(tool, args), { cwd: REPO_ROOT }), `${tool} in ${node.ns}`);
}

/** Reads a child's stdout as JSON lines (other lines are skipped) and feeds its stdin: any lab program. */
export function jsonLines(child: ChildProcess, label: string): ToolProc {
  const queue: unknown[] = [];
  const waiters: ((v: unknown) => void)[] = [];
  let err = "";
  child.stderr!.on("data", (d) => { err += d.toString(); });
  createInterface({ input: child.stdout! }).on("line", (line) => {
    let v: unknown;
    try { v = JSON.parse(line); } catch { return; }
    const w = waiters.shift();
    if (w) w(v); else queue.push(v);
  });
  return {
    child,
    stderr: () => err,
    send: (line) => { child.stdin!.write(line + "\n"); },
    nextJson: <T>(timeoutMs: number) => new Promise<T>((res, rej) => {
      if (queue.length) return res(queue.shift() as T);
      const timer = setTimeout(() => {
        const i = waiters.indexOf(waiter);
        if (i >= 0) waiters.splice(i, 1);
        child.off("exit", onExit);
        rej(new Error(`${label}: no output within ${timeoutMs} ms; stderr: ${err.trim()}`));
      }, timeoutMs);
      const waiter = (v: unknown) => { clearTimeout(timer); child.off("exit", onExit); res(v as T); };
      const onExit = (code: number | null) => {
        // stdout may still hold the last line after "exit": wait for the stream to close before giving up.
        const fail = () => {
          const i = waiters.indexOf(waiter);
          if (i < 0) return; // answered meanwhile
          waiters.splice(i, 1);
          clearTimeout(timer);
          rej(new Error(`${label} exited (${code}) without output; stderr: ${err.trim()}`));
        };
        if (child.stdout!.readableEnded) setImmediate(fail); else child.stdout!.once("close", () => setImmediate(fail));
      };
      child.once("exit", onExit);
      waiters.push(waiter);
    }),
  };
}

/** Runs a tool to completion and returns its (last) JSON result line. */
export async function runTool<T = any>(lab: Lab, node: Node, tool: ToolName, args: string[], timeoutMs = 20_000): Promise<T> {
  const p = startTool(lab, node, tool, args);
  return p.nextJson<T>(timeoutMs);
}
