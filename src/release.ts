// Which release this is: the package's semver version, the commit it was built from (stamped into
// dist/release.json by scripts/stamp-build.mjs at every build, so an installed tarball knows it without git)
// and the protocol it speaks. `ember --version`, the handshake payload and status reports say these.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PACKAGE_ROOT } from "./package-root.js";
import { PROTOCOL_VERSION } from "./wire/protocol.js";

export interface Release {
  /** package.json's version (semver, CHANGELOG.md). */
  version: string;
  /** The git commit of the build, "-dirty" when the tree had uncommitted changes; "unknown" without a build. */
  commit: string;
  protocol: number;
}

/** File the build writes beside the compiled code: {"commit": "..."}. */
export const BUILD_STAMP = join("dist", "release.json");

function readJson(path: string): Record<string, unknown> | undefined {
  try { return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>; } catch { return undefined; }
}

function load(): Release {
  const pkg = readJson(join(PACKAGE_ROOT, "package.json"));
  const stamp = readJson(join(PACKAGE_ROOT, BUILD_STAMP));
  return {
    version: typeof pkg?.version === "string" ? pkg.version : "0.0.0",
    commit: typeof stamp?.commit === "string" ? stamp.commit : "unknown",
    protocol: PROTOCOL_VERSION,
  };
}

export const RELEASE: Release = load();

/** The one line `ember --version` prints. */
export function versionLine(r: Release = RELEASE): string {
  return `ember ${r.version} (commit ${r.commit}, protocol ${r.protocol})`;
}
