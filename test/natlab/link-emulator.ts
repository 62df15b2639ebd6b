// The lab's link emulator (test/natlab/linkemu/linkemu.c): built with the system compiler on first use,
// run in a router's link namespace between two TAP devices, read through its JSON lines. Why C and why
// Ethernet bridging: docs/natlab.md "Link emulation".
import { execFileSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { directionSpec, type LinkProfile } from "./link-profiles.js";
import { jsonLines, type ToolProc } from "./tools.js";

const SOURCE = join(dirname(fileURLToPath(import.meta.url)), "linkemu", "linkemu.c");

/** Counters of one direction, as the emulator prints them. */
export interface LinkDirectionStats {
  rx: number; rxBytes: number; other: number; lost: number; outageDrops: number; queueDrops: number;
  delivered: number; deliveredBytes: number; writeErrors: number; maxQueueBytes: number; inFlight: number;
  /** Frames that left more than 1 ms after their due time, and the latest one (timing accuracy). */
  lateOver1ms: number; lateMaxUs: number;
}
export interface LinkStats {
  uptimeMs: number; outagesBegun: number; inOutage: boolean;
  up: LinkDirectionStats; down: LinkDirectionStats;
}

let built: string | undefined;

/** The emulator binary, compiled once per source version (cached in the temp dir by the source's hash). */
export function linkEmulatorBinary(): string {
  if (built) return built;
  const src = readFileSync(SOURCE);
  const out = join(tmpdir(), "embernet-linkemu", `linkemu-${createHash("sha256").update(src).digest("hex").slice(0, 12)}`);
  if (!existsSync(out)) {
    mkdirSync(dirname(out), { recursive: true });
    const partial = `${out}.${process.pid}.tmp`;
    try {
      execFileSync("cc", ["-O2", "-Wall", "-Wextra", "-Werror", "-o", partial, SOURCE], { stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      throw new Error(`cannot build the link emulator with cc (install gcc): ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`);
    }
    renameSync(partial, out); // atomic: parallel test files never run a half-written binary
  }
  built = out;
  return out;
}

/** Whether a link emulator can run here: a C compiler and /dev/net/tun. */
export function linkEmulatorAvailable(): { ok: true } | { ok: false; why: string } {
  if (!existsSync("/dev/net/tun")) return { ok: false, why: "no /dev/net/tun (the link emulator uses TAP devices)" };
  try { linkEmulatorBinary(); } catch (e) { return { ok: false, why: (e as Error).message }; }
  return { ok: true };
}

/** argv for an emulator between `routerSide` (frames from it go up) and `coreSide` TAP devices. */
export function linkEmulatorArgv(profile: LinkProfile, routerSide: string, coreSide: string, seed: number): string[] {
  const argv = [linkEmulatorBinary(), "--a", routerSide, "--b", coreSide, "--seed", String(seed),
    "--ab", directionSpec(profile.up), "--ba", directionSpec(profile.down)];
  if (profile.outageEveryMs && profile.outageMs) argv.push("--outage-every", String(profile.outageEveryMs), "--outage", String(profile.outageMs));
  return argv;
}

/** A running emulator: its profile, counters on demand. Killed with the lab. */
export class LinkEmulator {
  private readonly proc: ToolProc;
  private pending: Promise<unknown> = Promise.resolve();

  constructor(readonly profile: LinkProfile, child: ChildProcess, label: string) {
    this.proc = jsonLines(child, label);
  }

  get pid(): number | undefined { return this.proc.child.pid; }

  async ready(timeoutMs = 10_000): Promise<void> {
    const r = await this.proc.nextJson<{ ready?: boolean }>(timeoutMs);
    if (!r.ready) throw new Error(`link emulator said ${JSON.stringify(r)} instead of ready`);
  }

  /** Counters since start; "up" = router -> core. Requests are serialised: one answer per question. */
  stats(): Promise<LinkStats> {
    const next = this.pending.then(async () => {
      this.proc.send("stats");
      const r = await this.proc.nextJson<{ uptimeMs: number; outagesBegun: number; inOutage: boolean; ab: LinkDirectionStats; ba: LinkDirectionStats }>(5_000);
      return { uptimeMs: r.uptimeMs, outagesBegun: r.outagesBegun, inOutage: r.inOutage, up: r.ab, down: r.ba };
    });
    this.pending = next.catch(() => undefined);
    return next;
  }
}
