// The record the mixed-version test reads (CHANGELOG.md) and its refusal when git history lacks the commit.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../helpers/built.js";
import { checkCommitPresent, parseChangelog, previousRelease } from "./previous-release.js";

describe("CHANGELOG.md as the record of releases", () => {
  const entries = parseChangelog(readFileSync(join(ROOT, "CHANGELOG.md"), "utf8"));
  const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

  it("its newest heading is this package's version, and an older release names the commit it was cut from", () => {
    expect(entries[0].version).toBe(version);
    const prev = previousRelease(entries, version);
    expect(prev.version).not.toBe(version);
    expect(prev.commit).toMatch(/^[0-9a-f]{40}$/);
    checkCommitPresent(prev.commit, prev.version); // this clone has it (CI deepens a shallow clone first)
  });

  it("parses headings with and without a commit, and refuses a changelog with no earlier release", () => {
    const text = "# Changelog\n\n## [1.3.0] - Unreleased\n\n## [1.2.0] - 2027-01-02 - commit abcdef1234567\n\n## [1.1.0] - 2026-12-01 - commit 1234567\n";
    expect(parseChangelog(text)).toEqual([
      { version: "1.3.0", date: "Unreleased" },
      { version: "1.2.0", date: "2027-01-02", commit: "abcdef1234567" },
      { version: "1.1.0", date: "2026-12-01", commit: "1234567" },
    ]);
    expect(previousRelease(parseChangelog(text), "1.3.0").version).toBe("1.2.0");
    expect(previousRelease(parseChangelog(text), "1.2.0").version).toBe("1.1.0");
    expect(() => previousRelease(parseChangelog("## [1.0.0] - Unreleased\n"), "1.0.0")).toThrow(/names no release with a commit before 1\.0\.0/);
  });

  it("a commit missing from git history fails with what to do, it does not skip", () => {
    expect(() => checkCommitPresent("0123456789abcdef0123456789abcdef01234567", "9.9.9"))
      .toThrow(/the previous release 9\.9\.9 \(commit 0123456789abcdef0123456789abcdef01234567, CHANGELOG\.md\) is not in this clone's git history: (the clone is shallow; run git fetch --unshallow|fetch the branch that holds it)/);
  });
});
