#!/usr/bin/env node
// `npm test`: the vitest suite, one file at a time (vitest's choice on two cores: the NAT lab's timing tests
// stay unperturbed), with the long day-in-the-life test beside it in a second vitest process. That test spends
// nine minutes mostly resting between uses, as people do; run alone it would add those minutes to CI. Its
// output is printed after the main run's; both runs' totals are summed into one closing line. Arguments
// (file filters) go to the main run alone, and then the day-in-the-life test runs only when named.
import { spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";

const DAY = "test/natlab/day-in-the-life.test.ts";
const args = process.argv.slice(2);
const dayWanted = args.length === 0 || args.some((a) => DAY.includes(a) || a.includes("day-in-the-life"));
const vitest = (files, report, extra) => spawn(process.execPath, ["node_modules/vitest/vitest.mjs", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...extra, ...files], {
  stdio: report === ".vitest-report.json" ? "inherit" : ["ignore", "pipe", "pipe"],
});
const done = (child) => new Promise((resolve) => child.once("exit", (code) => resolve(code ?? 1)));

rmSync(".vitest-report-day.json", { force: true });
const mainFiles = args.filter((a) => !a.includes("day-in-the-life"));
const main = args.length && mainFiles.length === 0 ? undefined : vitest(mainFiles, ".vitest-report.json", args.length ? [] : ["--exclude", "**/day-in-the-life.test.ts"]);
let dayOut = "";
const day = dayWanted ? vitest([DAY], ".vitest-report-day.json", []) : undefined;
day?.stdout.on("data", (d) => { dayOut += d; });
day?.stderr.on("data", (d) => { dayOut += d; });

const [mainCode, dayCode] = await Promise.all([main ? done(main) : 0, day ? done(day) : 0]);
if (day) process.stdout.write(`\n--- ${DAY} (run beside the suite) ---\n${dayOut}`);

// One closing line for CI readers: the totals of both runs.
const totals = { passed: 0, failed: 0, skipped: 0, total: 0 };
for (const file of [".vitest-report.json", ".vitest-report-day.json"]) {
  let r;
  try { r = JSON.parse(readFileSync(file, "utf8")); } catch { continue; }
  totals.passed += r.numPassedTests;
  totals.failed += r.numFailedTests;
  totals.skipped += r.numPendingTests + r.numTodoTests;
  totals.total += r.numTotalTests;
}
console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exitCode = mainCode !== 0 || dayCode !== 0 || totals.failed > 0 || totals.total === 0 ? 1 : 0;
