// Policy engine figures: decide() per flow (time and heap growth), visiblePeers over 10,000 principals,
// parsing a large policy. Run: npx tsx bench/policy.ts   (prints; asserts nothing)
import { canReach, decide, parsePolicy, visiblePeers, type Principal } from "../src/policy/index.js";

const TEAMS = 200;
const NODES = 10_000;

function policyText(teams: number): string {
  const lines = ["version: 1", "rules:"];
  for (let t = 0; t < teams; t++) lines.push(`  - allow: {source: "@team-${t}", target: "@team-${t}", protocol: any}`);
  for (let t = 0; t + 1 < teams; t += 2) lines.push(`  - allow: {source: "@team-${t}", target: "@svc-${t + 1}", protocol: tcp, ports: [443, "8000-8100"]}`);
  lines.push(`  - allow: {source: "tenant:acme", target: "tenant:globex", protocol: https}`);
  return lines.join("\n") + "\n";
}

const principals: Principal[] = Array.from({ length: NODES }, (_, i) => ({
  name: `node-${i}`, tenant: i % 10 === 0 ? "globex" : "acme", groups: [`team-${i % TEAMS}`, ...(i % 7 === 0 ? [`svc-${i % TEAMS}`] : [])],
}));

function time<T>(label: string, fn: () => T, reps = 1): T {
  let out!: T;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) out = fn();
  const ms = (performance.now() - t0) / reps;
  console.log(`${label.padEnd(58)} ${ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(1)} ms`}`);
  return out;
}

const text = policyText(TEAMS);
const parsed = time(`parsePolicy: ${TEAMS * 1.5 + 1} rules (${(text.length / 1024).toFixed(0)} KiB)`, () => parsePolicy(text), 5);
if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors.slice(0, 3)));
const policy = parsed.policy;

// decide(): a mix of allowed (early, late rule) and denied (full scan) flows.
const flows: [Principal, Principal, number, "tcp" | "udp" | "https"][] = [];
for (let i = 0; i < 1000; i++) {
  const a = principals[(i * 7919) % NODES], b = principals[(i * 104729) % NODES];
  flows.push([a, b, [443, 8050, 22, 53][i % 4], (["tcp", "https", "udp", "tcp"] as const)[i % 4]]);
}
const N = 1_000_000;
let allowed = 0;
for (let i = 0; i < 100_000; i++) decide(policy, ...flows[i % flows.length]); // warm up
const heap0 = process.memoryUsage().heapUsed;
const t0 = performance.now();
for (let i = 0; i < N; i++) if (decide(policy, ...flows[i % flows.length]).allow) allowed++;
const ns = ((performance.now() - t0) * 1e6) / N;
const heapKiB = (process.memoryUsage().heapUsed - heap0) / 1024;
console.log(`${`decide(): ${N} flows over ${policy.rules.length} rules (${((allowed / N) * 100).toFixed(0)}% allowed)`.padEnd(58)} ${ns.toFixed(0)} ns/flow, heap +${heapKiB.toFixed(0)} KiB total`);

const self = principals[14];
const peers = time(`visiblePeers: 1 node against ${NODES} principals`, () => visiblePeers(policy, self, principals), 20);
console.log(`  (${peers.length} visible peers)`);
time(`visiblePeers for 100 nodes against ${NODES} (full map rebuild x100)`, () => { for (let i = 0; i < 100; i++) visiblePeers(policy, principals[i * 97], principals); });
time(`canReach: 1,000,000 pairs`, () => { let n = 0; for (let i = 0; i < 1_000_000; i++) if (canReach(policy, principals[i % NODES], principals[(i * 31) % NODES])) n++; return n; });
