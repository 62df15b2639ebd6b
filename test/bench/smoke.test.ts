// Every bench with an npm script runs here in its short mode (BENCH_SMOKE=1, bench/smoke.ts) as a real child
// process, `npm run <script>` as a person runs it: it must exit 0 and print its table, the header row and a row
// with figures for every system it compares. The figures are for people (docs/performance.md); this only proves
// that no bench broke. bench/README.md says what each check looks for. One bench at a time, in this file's order.
import { execFileSync, spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { loadNativeAddon } from "../../src/native/addon.js";
import { postgresSkipReason } from "../helpers/postgres.js";
import { Lab } from "../natlab/lab.js";

const ROOT = new URL("../..", import.meta.url).pathname;
/** After SIGTERM, how long a bench may take to remove its namespaces and children before the group is killed. */
const CLEANUP_GRACE_MS = 15_000;
/** A figure as the benches print it: 123, 4.56, 7.8 k, 1.10 M. */
const NUM = String.raw`\d+(?:\.\d+)?(?: [kM])?`;

interface BenchRun { code: number | null; signal: NodeJS.Signals | null; stdout: string; output: string }

/**
 * `npm run --silent <script>` with BENCH_SMOKE=1, in its own process group; past `timeoutMs` the group gets
 * SIGTERM (the benches clean up on it), then SIGKILL. `output` is stdout and stderr as they came, for a failure.
 */
function runBench(script: string, timeoutMs: number, env: NodeJS.ProcessEnv = {}): Promise<BenchRun> {
  const child = spawn("npm", ["run", "--silent", script], {
    cwd: ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"],
    // npm's update notice would land in the output; CI has no registry to ask anyway.
    env: { ...process.env, BENCH_SMOKE: "1", npm_config_update_notifier: "false", ...env },
  });
  let stdout = "", output = "";
  child.stdout.on("data", (c: Buffer) => { stdout += c; output += c; });
  child.stderr.on("data", (c: Buffer) => { output += c; });
  const signalGroup = (sig: NodeJS.Signals) => { try { process.kill(-child.pid!, sig); } catch { /* exited */ } };
  let kill: NodeJS.Timeout | undefined;
  const term = setTimeout(() => {
    output += `\n(smoke: ${timeoutMs / 1000} s passed, stopping the bench)\n`;
    signalGroup("SIGTERM");
    kill = setTimeout(() => signalGroup("SIGKILL"), CLEANUP_GRACE_MS);
  }, timeoutMs);
  return new Promise((resolve) => child.on("close", (code, signal) => {
    clearTimeout(term);
    clearTimeout(kill);
    resolve({ code, signal, stdout, output });
  }));
}

/** A table row: `| label | figure |...` where the label is literal text. */
const row = (label: string, figures: number) =>
  new RegExp(String.raw`^\| ${escape(label)} \|` + String.raw` (?:\S[^|]*?)?${NUM}[^|]* \|`.repeat(figures), "m");
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

type Check = [what: string, re: RegExp];
interface Bench { script: string; timeoutMs: number; skip?: string; expected: Check[]; forbidden?: Check[] }

/** Runs the bench and checks its exit and every expected line; a failure shows the end of what the bench printed. */
async function smoke(b: Bench): Promise<void> {
  const r = await runBench(b.script, b.timeoutMs);
  const tail = `--- npm run ${b.script} (BENCH_SMOKE=1), last output:\n${r.output.slice(-6_000)}`;
  expect(r.code, `exit ${r.code ?? r.signal}\n${tail}`).toBe(0);
  for (const [what, re] of b.expected) expect(re.test(r.stdout), `no ${what} (${re})\n${tail}`).toBe(true);
  for (const [what, re] of b.forbidden ?? []) expect(re.test(r.output), `${what} (${re})\n${tail}`).toBe(false);
}

// ------------------------------------------------------------------ why a bench cannot run here

const isRoot = process.getuid?.() === 0;
const addon = loadNativeAddon();
function missingTool(tools: string[]): string | undefined {
  for (const tool of tools) {
    try { execFileSync("which", [tool], { stdio: "ignore" }); } catch { return `${tool} is not installed (.ci/run installs it)`; }
  }
  return undefined;
}
/** The first reason in order, or undefined: the bench runs. */
const firstReason = (...reasons: (string | false | undefined)[]) => reasons.find((r): r is string => !!r);
const REFERENCES = ["iperf3", "wireguard-go", "wg", "nebula", "nebula-cert"];
const lab = Lab.available();
const labReason = lab.ok ? undefined : lab.why;
const skip = {
  peers: firstReason(!isRoot && "needs root (network namespaces, TUN)", missingTool([...REFERENCES, "ss"]),
    !addon.addon && `native addon not loaded: ${addon.reason}`),
  idle: firstReason(labReason && `needs the NAT lab: ${labReason}`, missingTool(REFERENCES.filter((t) => t !== "iperf3"))),
  nativeTunnel: firstReason(!isRoot && "needs root (network namespaces, TUN)", missingTool(["iperf3"]),
    !addon.addon && `native addon not loaded: ${addon.reason}`),
};
for (const [bench, why] of Object.entries(skip)) if (why) console.log(`bench smoke ${bench} skipped: ${why}`);
const pgSkip = postgresSkipReason();
if (pgSkip) console.log(`bench smoke coord: PostgreSQL rows not expected: ${pgSkip}`);

const rows = (labels: string[], figures: number): Check[] => labels.map((l) => [`${l} row`, row(l, figures)]);
const line = (what: string, re: string): Check => [what, new RegExp(re, "m")];

const BENCHES: Bench[] = [
  { script: "bench:cli", timeoutMs: 60_000, expected: [
    ["header", /^\| command \| median ms \| min ms \|$/m],
    ...rows(["node -e 0 (reference)", "ember --version", "ember --help", "ember status (live daemon)"], 2),
  ] },
  { script: "bench:dataplane", timeoutMs: 90_000, expected: [
    ["primitives header", /^size\s+\S+ seal/m],
    line("primitives row, 64 B", String.raw`^64 B\s+pkt/s\s+${NUM}`),
    line("primitives row, 1400 B", String.raw`^1400 B\s+pkt/s\s+${NUM}`),
    ["packet path header", /^size\s+stage\s+pkt\/s/m],
    line("packet path row", String.raw`^\s+both ends, one core\s+${NUM}`),
    ["handshakes", /^\s+\d+ handshakes\/s/m],
    ["loopback UDP header", /^size\s+mode\s+wall pkt\/s/m],
    line("plain UDP row", String.raw`^(?:\d+ B)?\s+plain\s+${NUM}`),
    line("EmberNet UDP row", String.raw`^\s+ember\s+${NUM}`),
    ...(addon.addon ? [line("native UDP row", String.raw`^\s+native\s+${NUM}`)] : []),
  ], forbidden: [["the UDP receiver refused packets", /!! receiver rejected/]] },
  { script: "bench:streams", timeoutMs: 170_000, expected: [
    ["header", /^figure\s+wall Mbit\/s\s+vs raw\s+capacity Mbit\/s/m],
    line("raw session row", String.raw`^1\. raw encrypted session datagrams, 1400 B\s+${NUM}`),
    line("plain TCP row", String.raw`^2\. plain TCP over loopback, 1 stream\s+${NUM}`),
    line("ember forward row", String.raw`^3\. ember forward, 1 stream\s+${NUM}`),
    line("ember forward 8 streams row", String.raw`^\s+ember forward, 8 streams\s+${NUM}`),
    // As root it runs in a private namespace with a loss rule; otherwise the bench says it skipped that row.
    isRoot ? line("loss row", String.raw`^4\. ember forward, 1 stream, 5% loss\s+${NUM}`) : ["loss row", /^4\. .* skipped \(not root\)/m],
    // Beside it, the kernel's TCP through the same loss rule (CUBIC at least), and the two ratios of the issue.
    ...(isRoot ? [line("kernel CUBIC loss row", String.raw`^\s+kernel TCP \(cubic\), 1 stream, 5% loss\s+${NUM}`),
      ["loss ratios", /^5% loss: ember forward at \d+% of its own no-loss wall rate \(target 40%\), \d+\.\d+x the kernel's CUBIC/m] as [string, RegExp]] : []),
    ["stream opens", /^5\. stream opens through ember forward: \d+\/s/m],
  ] },
  { script: "bench:coord", timeoutMs: 240_000, expected: [
    ["header", /^\| store \| N \| enrollment \| server CPU per enrollment \|/m],
    ["bare node:https row", row("bare node:https, no EmberNet code | 200", 2)],
    ...rows(["SQLite | 200", ...(pgSkip ? [] : ["PostgreSQL, 2 replicas | 200"])], 6),
    line("ratio to the floor", String.raw`^  server CPU per map stream / floor\s+${NUM}x  target <= 2x  (met|not met)$`),
    ...(pgSkip ? [] : [line("foreign enrollment ratio", String.raw`^  foreign enrollment / own \(CPU\)\s+${NUM}x  target <= 0.25x  (met|not met)$`)]),
  ] },
  { script: "bench:memory", timeoutMs: 120_000, expected: [
    ...["connected", "2 peers, at rest", "22 peers, map applied", "22 peers, at rest"]
      .map((l) => line(`"${l}" line`, String.raw`^${l}: RSS min ${NUM} max ${NUM} MB$`)),
    line("a node's breakdown", String.raw`^  m0: RSS ${NUM} \(anon ${NUM}, file ${NUM}\) threads \d+ \| heap`),
  ] },
  { script: "bench:native-tunnel", timeoutMs: 90_000, skip: skip.nativeTunnel, expected: [
    ["tunnel and raw veth figures", /^tunnel: \d+ Mbit\/s \(\d+ TCP retransmits\)\s+raw veth: \d+ Mbit\/s$/m],
    ["sender counters", /^A tx: \d+ packets from TUN/m],
    ["receiver counters", /^B rx: \d+ datagrams/m],
  ] },
  { script: "bench:idle", timeoutMs: 230_000, skip: skip.idle, expected: [
    ["header", /^\| system \| peers \| packets\/min \| bytes\/min \| RSS \(MB\) \| idle CPU s\/hour \|$/m],
    ...rows(["EmberNet | 1", "EmberNet behind EIM NATs | 1", "wireguard-go (keepalive 25 s) | 1", "nebula (lighthouse) | 1"], 4),
  ] },
  { script: "bench:peers", timeoutMs: 230_000, skip: skip.peers, expected: [
    ["TCP header", /^\| system \| tunnel MTU \| 1 stream Mbit\/s \| 4 streams Mbit\/s \|/m],
    line("raw veth row", String.raw`^\| raw veth \| \d+ \| ${NUM} \| ${NUM} \| - \| \d+/\d+ \|`),
    // Debian's wireguard-go always; upstream's too when WG_UPSTREAM names a binary (the line before the ratios says which).
    ...rows(["wireguard-go (Debian)", ...(process.env.WG_UPSTREAM ? ["wireguard-go (upstream)"] : []), "nebula (aes)", "EmberNet TUN (native addon)"], 4),
    process.env.WG_UPSTREAM
      ? line("the upstream reference line", String.raw`^wireguard-go references: upstream wireguard-go \S+ \(WG_UPSTREAM=`)
      : line("the reference line", String.raw`^wireguard-go reference: Debian's wireguard-go \S+ .*; upstream wireguard-go not given \(build it`),
    ["EmberNet forward row", row("EmberNet `ember forward` (userspace) | -", 2)],
    ["UDP header", /^\| system \| sent Mbit\/s \| received Mbit\/s \| lost \| CPU s\/GB \|$/m],
    ...["raw veth", "EmberNet TUN (native addon)"].map((l) => line(`${l} UDP row`, String.raw`^\| ${escape(l)} \| ${NUM} \| ${NUM} \| ${NUM}% \|`)),
  ] },
];

describe("every bench runs to its end in its short mode and prints its table", () => {
  for (const b of BENCHES) it.skipIf(!!b.skip)(b.script, () => smoke(b), b.timeoutMs + CLEANUP_GRACE_MS + 5_000);

  it("a knob that is not a number ends a bench with one line naming it", async () => {
    const r = await runBench("bench:cli", 30_000, { BENCH_CLI_RUNS: "0" });
    expect(r.code).toBe(2);
    expect(r.output.trim()).toBe("bench: BENCH_CLI_RUNS=0 is not a number >= 1; unset it for the default (3)");
  });
});
