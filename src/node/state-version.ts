// The state directory's format (docs/operations.md "Upgrades"): state.json names the format and the release that
// wrote it. Release 0.1.0 wrote none: a directory with credentials and no state.json is format 1, and is migrated
// in place (its files are read as they are; only state.json is added). A directory written by a newer release is
// refused with a clear message rather than read, so a downgrade never corrupts it. decideState is the rule, pure;
// openStateDir reads, decides and writes.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeAtomic } from "../coord-client/state-files.js";
import { RELEASE } from "../release.js";

export const STATE_MARKER = "state.json";
/** The format this release writes. 1: release 0.1.0 (no state.json); 2: state.json added, every other file as in 1. */
export const STATE_FORMAT = 2;
/** Files whose presence means a node lived here (its credentials), whatever release wrote them. */
const NODE_FILES = ["cert.pem", "key.pem"];

export interface StateMarker { format: number; writtenBy: string }

export type StateDecision =
  | { action: "write"; why: "fresh" | "migrate"; from?: number }
  | { action: "keep" }
  | { action: "refuse"; reason: string };

/** marker: the parsed state.json, "none" when absent, or the reason it could not be read. */
export function decideState(dir: string, marker: StateMarker | "none" | { unreadable: string }, hasNodeFiles: boolean): StateDecision {
  if (marker === "none") return hasNodeFiles ? { action: "write", why: "migrate", from: 1 } : { action: "write", why: "fresh" };
  if ("unreadable" in marker) {
    return { action: "refuse", reason: `${join(dir, STATE_MARKER)} is unreadable (${marker.unreadable}): restore it from a backup, or remove it if this directory was written by ember 0.1.x` };
  }
  if (marker.format > STATE_FORMAT) {
    return {
      action: "refuse",
      reason: `state directory ${dir} was written by ember ${marker.writtenBy} (state format ${marker.format}; ember ${RELEASE.version} reads up to ${STATE_FORMAT}): ` +
        `a downgrade would corrupt it; run ember ${marker.writtenBy} or newer, or enroll this node again into a new --state directory`,
    };
  }
  return marker.format < STATE_FORMAT ? { action: "write", why: "migrate", from: marker.format } : { action: "keep" };
}

function readMarker(dir: string): StateMarker | "none" | { unreadable: string } {
  const path = join(dir, STATE_MARKER);
  if (!existsSync(path)) return "none";
  let x: unknown;
  try { x = JSON.parse(readFileSync(path, "utf8")); } catch (err) { return { unreadable: (err as NodeJS.ErrnoException).code ?? "not JSON" }; }
  const m = x as Partial<StateMarker> | null;
  if (!m || typeof m !== "object" || !Number.isInteger(m.format) || (m.format as number) < 1 || typeof m.writtenBy !== "string") {
    return { unreadable: "expected {format, writtenBy}" };
  }
  return { format: m.format as number, writtenBy: m.writtenBy };
}

export class StateVersionError extends Error {}

/**
 * Checks the state directory (which must exist) before anything in it is read, migrates a previous release's
 * directory in place, and marks a fresh one. Returns what it did; throws StateVersionError on a refusal.
 */
export function openStateDir(dir: string): StateDecision {
  const decision = decideState(dir, readMarker(dir), NODE_FILES.some((f) => existsSync(join(dir, f))));
  if (decision.action === "refuse") throw new StateVersionError(decision.reason);
  if (decision.action === "write") {
    const marker: StateMarker = { format: STATE_FORMAT, writtenBy: RELEASE.version };
    writeAtomic(dir, STATE_MARKER, JSON.stringify(marker) + "\n", 0o600);
  }
  return decision;
}
