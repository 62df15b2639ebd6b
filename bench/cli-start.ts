// CLI start-up (issue 11): how long `ember --version`, `ember --help` and `ember status` take from exec to exit,
// beside `node -e 0` (the floor: Node itself) in the same run. `ember status` runs against a live daemon
// (a node started here on loopback with a static, empty mesh), so it includes the control-socket round trip.
//   npm run bench:cli                  (BENCH_CLI_RUNS=15 runs per command)
//   BENCH_SMOKE=1 npm run bench:cli    3 runs per command (CI's smoke)
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeCa, makeLeaf, tempDir } from "../test/helpers/pki.js";
import { startNode, writeCreds } from "../test/helpers/nodes.js";
import { knob } from "./smoke.js";

const EMBER = fileURLToPath(new URL("../bin/ember.mjs", import.meta.url));
const RUNS = knob("BENCH_CLI_RUNS", 15, 3);

/** Milliseconds from exec to exit; a command that fails ends the bench (its time would measure the failure). */
function timeRun(argv: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, argv, { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(" ")} exited ${r.status ?? r.signal}: ${r.stderr.trim().split("\n").pop()}`);
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const tmp = tempDir("ember-bench-cli-");
  const state = join(tmp.dir, "bench-1");
  const ca = await makeCa(tmp.dir);
  writeCreds(state, ca, await makeLeaf(ca, "bench-1"));
  const daemon = await startNode({ name: "bench-1", dir: state });
  try {
    const cases: [string, string[]][] = [
      ["node -e 0 (reference)", ["-e", "0"]],
      ["ember --version", [EMBER, "--version"]],
      ["ember --help", [EMBER, "--help"]],
      ["ember status (live daemon)", [EMBER, "status", "--state", state]],
    ];
    timeRun(cases[1][1]); // warm the page cache
    console.log(`\nCLI start-up, exec to exit, median of ${RUNS} runs (Node ${process.version})\n`);
    console.log("| command | median ms | min ms |\n|---|---|---|");
    for (const [name, argv] of cases) {
      const t = Array.from({ length: RUNS }, () => timeRun(argv));
      console.log(`| ${name} | ${median(t).toFixed(0)} | ${Math.min(...t).toFixed(0)} |`);
    }
  } finally {
    await daemon.stop();
    tmp.cleanup();
  }
}

void main().then(() => process.exit(0), (err) => { console.error(`bench:cli: ${(err as Error).message}`); process.exit(1); });
