// Prints vitest's totals as one plain closing line ("N passed, N failed, N skipped") for CI readers.
import { readFileSync } from "node:fs";
const r = JSON.parse(readFileSync(".vitest-report.json", "utf8"));
const skipped = r.numPendingTests + r.numTodoTests;
console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
process.exitCode = r.numFailedTests > 0 || r.numTotalTests === 0 ? 1 : 0;
