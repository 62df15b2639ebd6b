// The previous release, as CHANGELOG.md names it (the newest release heading with a commit, other than this
// package's version), built from git history: `git archive COMMIT` into a cache directory and its own `npm ci`
// (which builds its dist/ and native addon), once per machine: the directory is reused while its build marker
// names the commit. Nothing is registered in the repository (no worktree to prune if a run is killed).
// EMBER_PREVIOUS_RELEASE_DIR puts the build elsewhere (CI caches it between runs that way, if it likes).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers/built.js";

export interface ReleaseEntry { version: string; date: string; commit?: string }

/** Release headings of a Keep-a-Changelog file: `## [X.Y.Z] - DATE[ - commit HASH]`, newest first. */
export function parseChangelog(text: string): ReleaseEntry[] {
  const out: ReleaseEntry[] = [];
  for (const m of text.matchAll(/^## \[(\d+\.\d+\.\d+[0-9A-Za-z.+-]*)\] - (\S+)(?: - commit ([0-9a-f]{7,40}))?\s*$/gm)) {
    out.push({ version: m[1], date: m[2], ...(m[3] ? { commit: m[3] } : {}) });
  }
  return out;
}

/** The release this one must interoperate with: the newest listed with a commit that is not the current version. */
export function previousRelease(entries: ReleaseEntry[], currentVersion: string): ReleaseEntry & { commit: string } {
  const e = entries.find((r) => r.commit && r.version !== currentVersion);
  if (!e) throw new Error(`CHANGELOG.md names no release with a commit before ${currentVersion} ("## [X.Y.Z] - DATE - commit HASH")`);
  return e as ReleaseEntry & { commit: string };
}

export interface PreviousBuild { version: string; commit: string; root: string; bin: string; reused: boolean; buildMs: number }

const git = (args: string[]) => spawnSync("git", args, { cwd: ROOT, encoding: "utf8" });

/** Throws, naming the fix, when this clone's git history does not hold the release's commit. */
export function checkCommitPresent(commit: string, version: string): void {
  if (git(["cat-file", "-e", `${commit}^{commit}`]).status === 0) return;
  const shallow = git(["rev-parse", "--is-shallow-repository"]).stdout.trim() === "true";
  throw new Error(`the previous release ${version} (commit ${commit}, CHANGELOG.md) is not in this clone's git history` +
    (shallow ? ": the clone is shallow; run git fetch --unshallow (or clone without --depth)" : ": fetch the branch that holds it (git fetch origin main)"));
}

/** Builds (or reuses) the previous release; a clear error when git history does not hold its commit. */
export function buildPreviousRelease(log: (line: string) => void = console.log): PreviousBuild {
  const current = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
  const prev = previousRelease(parseChangelog(readFileSync(join(ROOT, "CHANGELOG.md"), "utf8")), current);
  checkCommitPresent(prev.commit, prev.version);
  const root = process.env.EMBER_PREVIOUS_RELEASE_DIR ?? join(tmpdir(), `embernet-release-${prev.version}-${prev.commit.slice(0, 12)}`);
  const marker = join(root, ".release-commit");
  const bin = join(root, "bin", "ember.mjs");
  if (existsSync(marker) && readFileSync(marker, "utf8").trim() === prev.commit && existsSync(join(root, "dist"))) {
    log(`previous release ${prev.version}: commit ${prev.commit} (CHANGELOG.md), reusing the build in ${root}`);
    return { version: prev.version, commit: prev.commit, root, bin, reused: true, buildMs: 0 };
  }
  log(`previous release ${prev.version}: commit ${prev.commit} (CHANGELOG.md), building it in ${root} (git archive, npm ci)`);
  const t0 = Date.now();
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const tar = execFileSync("git", ["archive", "--format=tar", prev.commit], { cwd: ROOT, maxBuffer: 512 * 1024 * 1024 });
  execFileSync("tar", ["-x", "-C", root], { input: tar });
  const ci = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: root, encoding: "utf8", timeout: 900_000 });
  if (ci.status !== 0) throw new Error(`npm ci of the previous release failed (exit ${ci.status}):\n${(ci.stdout + ci.stderr).slice(-3000)}`);
  if (!existsSync(join(root, "dist", "src", "cli", "main.js"))) throw new Error(`npm ci of the previous release built no dist/ in ${root}`);
  writeFileSync(marker, prev.commit + "\n");
  const buildMs = Date.now() - t0;
  log(`previous release ${prev.version} built in ${(buildMs / 1000).toFixed(0)} s`);
  return { version: prev.version, commit: prev.commit, root, bin, reused: false, buildMs };
}
