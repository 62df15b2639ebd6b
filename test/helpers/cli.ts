// Runs the real `ember` binary in a child process, as a user would.
import { spawnSync } from "node:child_process";
import { join } from "node:path";

export const EMBER = join(import.meta.dirname, "..", "..", "bin", "ember.mjs");

export function ember(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) {
  const r = spawnSync(process.execPath, [EMBER, ...args], {
    input: opts.input, env: { ...process.env, ...opts.env }, encoding: "utf8", timeout: opts.timeoutMs ?? 30_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function emberJson<T = any>(args: string[]): T {
  const r = ember([...args, "--json"]);
  if (r.code !== 0) throw new Error(`ember ${args.join(" ")} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as T;
}
