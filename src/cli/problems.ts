// The problems part of `ember status` and what it says when no daemon answers. A module of its own, without
// the health verbs' imports (the coordination client, admin flags), so `ember status` starts fast.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Problem } from "../wire/coord/telemetry.js";

export function printProblems(problems: Problem[]): void {
  if (!problems.length) { process.stdout.write("problems    none\n"); return; }
  process.stdout.write(`problems    ${problems.length}\n`);
  for (const p of problems) process.stdout.write(`  ${p.severity === "error" ? "ERROR" : "WARN "} ${p.code}: ${p.summary}\n        fix: ${p.fix}\n`);
}

/** What `ember status` says when no daemon answers: the failure `ember up` left behind, if any. */
export function lastStartFailure(stateDir: string | undefined): { at: string; error: string; problems: Problem[] } | undefined {
  const f = stateDir ? join(stateDir, "diagnostics.json") : undefined;
  if (!f || !existsSync(f)) return undefined;
  try { return JSON.parse(readFileSync(f, "utf8")); } catch { return undefined; }
}
