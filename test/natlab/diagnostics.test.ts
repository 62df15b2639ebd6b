// The common failures, provoked in the NAT lab and named by `ember status` and on the node's console page
// (docs/diagnostics.md): outbound 443 blocked, UDP blocked, a clock 10 minutes behind (libfaketime), and a
// flow whose rule was removed from the policy. Each node is a real `ember up` in its own namespace; the
// console is asked through its JSON API with a password session, from the coordination server's namespace.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Lab, type Host, type Node } from "./lab.js";
import { EmberLab, type LabNode } from "./ember-mesh.js";
import { ResultTable } from "./table.js";
import { natRuleset } from "./nft.js";
import { EMBER } from "../helpers/cli.js";
import { tempDir } from "../helpers/pki.js";

const avail = Lab.available();
if (!avail.ok) console.log(`natlab diagnostics tests skipped: ${avail.why}`);
const FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const PASSWORD = "lab console password";

describe.skipIf(!avail.ok)("diagnostics in the NAT lab", () => {
  let lab: Lab;
  let tmp: ReturnType<typeof tempDir>;
  let m: EmberLab;
  const table = new ResultTable();
  let jar = "";

  beforeAll(async () => {
    process.env.EMBER_TELEMETRY_INTERVAL_MS = "1000";
    tmp = tempDir("ember-natlab-diag-");
    lab = await Lab.create();
    m = new EmberLab(lab, join(tmp.dir, "mesh"));
    await m.startServices();
    jar = join(tmp.dir, "console.jar");
    const admin = m.adminFlags();
    const create = await runIn(m.coordHost, [process.execPath, EMBER, "admin", "create", "ops", "--password-stdin", ...admin], `${PASSWORD}\n`);
    expect(create.code, create.stderr).toBe(0);
    const login = await lab.run(m.coordHost, ["curl", "-sk", "-c", jar, "-H", "x-ember-console: 1", "-H", "content-type: application/json",
      "-d", JSON.stringify({ username: "ops", password: PASSWORD }), `${m.coordUrl}/ui/api/login`]);
    expect(JSON.parse(login.stdout)).toMatchObject({ user: "ops" });
  }, 240_000);

  afterAll(async () => {
    console.log(`\ndiagnostics in the NAT lab\n${table.render()}\n`);
    delete process.env.EMBER_TELEMETRY_INTERVAL_MS;
    await lab?.destroy();
    if (lab) expect(lab.existingNamespaces()).toEqual([]);
    tmp?.cleanup();
  }, 60_000);

  /** Runs a command with stdin in a namespace (lab.run has no stdin). */
  function runIn(host: Node, argv: string[], input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = lab.spawn(host, argv);
      let stdout = "", stderr = "";
      child.stdout!.on("data", (d) => { stdout += d; });
      child.stderr!.on("data", (d) => { stderr += d; });
      child.on("exit", (code) => resolve({ code, stdout, stderr }));
      child.stdin!.end(input);
    });
  }

  /** `ember status --json` of a node, run from the root namespace on its control socket. */
  async function status(dir: string): Promise<any> {
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync(process.execPath, [EMBER, "status", "--state", dir, "--json"], { encoding: "utf8", timeout: 30_000 });
    return { code: r.status, json: r.stdout ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
  }

  async function problemIn(dir: string, code: string, timeoutMs: number): Promise<{ problem: any; ms: number }> {
    const t0 = Date.now();
    let last: any;
    while (Date.now() - t0 < timeoutMs) {
      last = await status(dir);
      const probs = last.json?.problems ?? last.json?.lastStartFailure?.problems ?? [];
      const p = probs.find((x: any) => x.code === code);
      if (p) return { problem: p, ms: Date.now() - t0 };
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`no ${code} from ember status within ${timeoutMs} ms: ${JSON.stringify(last?.json?.problems ?? last)}`);
  }

  async function consoleProblem(name: string, code: string, timeoutMs: number): Promise<any> {
    const t0 = Date.now();
    let last = "";
    while (Date.now() - t0 < timeoutMs) {
      const r = await lab.run(m.coordHost, ["curl", "-sk", "-b", jar, `${m.coordUrl}/ui/api/nodes/${name}`]);
      last = r.stdout;
      try {
        const p = JSON.parse(r.stdout).problems?.find((x: any) => x.code === code);
        if (p) return p;
      } catch { /* retry */ }
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`console page of ${name} shows no ${code} within ${timeoutMs} ms: ${last.slice(0, 400)}`);
  }

  it("UDP blocked: a node behind a firewall that passes only TCP 443 runs on the relay, and says why; at rest, the problem clears by itself once UDP passes", async () => {
    const router = await lab.addRouter("rub", "udp-blocked");
    const host = await lab.addHost("ub", router);
    const n = await m.startNode("ub", host);
    const s = await problemIn(n.dir, "udp_blocked", 30_000);
    expect(s.problem.summary).toMatch(/UDP is blocked: no STUN server answered/);
    expect(s.problem.fix).toMatch(/allow outbound UDP/);
    const c = await consoleProblem("ub", "udp_blocked", 20_000);
    expect(c.summary).toBe(s.problem.summary.replace(/\(\d+ now\)/, c.summary.match(/\(\d+ now\)/)?.[0] ?? ""));
    table.add({ scenario: "UDP blocked (router passes TCP 443 only)", expected: "udp_blocked", observed: `status + console: ${s.problem.code}`, ms: s.ms, ok: true });

    // The firewall opens while the node rests (no peer active, so no netcheck for activity): the diagnosis must
    // not stay until someone runs `ember netcheck` (it used to).
    const st = await status(n.dir);
    expect(st.json.peers.every((p: any) => p.activity === "idle"), "the node is at rest").toBe(true);
    lab.nft(router, natRuleset("eim"));
    const t0 = Date.now();
    let still = true;
    while (still && Date.now() - t0 < 120_000) {
      await new Promise((r) => setTimeout(r, 1_000));
      still = ((await status(n.dir)).json?.problems ?? []).some((p: any) => p.code === "udp_blocked");
    }
    expect(still, "udp_blocked cleared at rest without ember netcheck").toBe(false);
    table.add({ scenario: "UDP opens while the node rests", expected: "udp_blocked cleared", observed: "status: cleared", ms: Date.now() - t0, ok: true });
    await m.stopNode(n);
  }, 240_000);

  it("a removed rule: the denied flow is named with the nearest rule, by ember status and on the console", async () => {
    const [ha, hb] = [await lab.addHost("pa", await lab.addRouter("rpa", "eim")), await lab.addHost("pb", await lab.addRouter("rpb", "eim"))];
    const [a, b] = await Promise.all([m.startNode("pa", ha), m.startNode("pb", hb)]);
    const rule22 = `  - allow: {source: pa, target: pb, protocol: tcp, ports: [22]}\n`;
    await m.setPolicy(`version: 1\nrules:\n  - allow: {source: "*", target: "*"}\n${rule22}`);
    const f = await m.request<{ listen: string }>(a, "forward", { listenPort: 0, host: "pb", port: 5432, protocol: "tcp" });
    const port = f.listen.split(":").pop()!;
    const dial = () => lab.run(ha, ["curl", "-s", "--max-time", "3", `http://127.0.0.1:${port}/`]);
    await dial(); // allowed (nothing listens there: refused by pb's service table, not by policy)
    expect((await status(a.dir)).json.problems.find((p: any) => p.code === "policy_missing")).toBeUndefined();
    // The rule the flow needs goes away.
    await m.setPolicy(`version: 1\nrules:\n${rule22}`);
    const t0 = Date.now();
    let s: { problem: any; ms: number } | undefined;
    while (!s && Date.now() - t0 < 20_000) {
      await dial();
      s = await problemIn(a.dir, "policy_missing", 1_000).catch(() => undefined);
    }
    expect(s, "policy_missing after the rule was removed").toBeDefined();
    expect(s!.problem.summary).toMatch(/flow pa\.lab -> pb\.lab:5432\/tcp denied by policy/);
    expect(s!.problem.summary).toMatch(/nearest rule 1 .*port: the rule allows 22, the flow is to 5432/);
    const c = await consoleProblem("pa", "policy_missing", 20_000);
    expect(c.summary).toMatch(/pa\.lab -> pb\.lab:5432\/tcp/);
    expect(c.summary).toMatch(/nearest rule 1/);
    table.add({ scenario: "rule removed, flow pa -> pb:5432", expected: "policy_missing + nearest rule", observed: "status + console: rule 1, port 22 vs 5432", ms: Date.now() - t0, ok: true });
    await m.setPolicy("version: 1\nrules:\n  - allow: {source: \"*\", target: \"*\"}\n");
    await Promise.all([m.stopNode(a), m.stopNode(b)]);
  }, 120_000);

  it("outbound 443 blocked: the restarted node names the blocked port; the console shows it offline with the cause", async () => {
    const router = await lab.addRouter("rfw", "eim");
    const host = await lab.addHost("fw", router);
    const n = await m.startNode("fw", host);
    await m.stopNode(n);
    lab.nft(router, `add table ip natlab_block\ndelete table ip natlab_block\ntable ip natlab_block {\n  chain block443 {\n    type filter hook forward priority filter - 5; policy accept;\n    iifname "lan0" tcp dport 443 counter reject with tcp reset\n  }\n}\n`);
    const again = restart(host, n);
    try {
      const s = await problemIn(n.dir, "coord_unreachable", 30_000);
      // A firewall that rejects with a reset looks like a server that is not running: with no relay known to compare
      // (the restarted node has not had its map yet), both are named, and the fix says what to allow.
      expect(s.problem.summary).toMatch(new RegExp(`not running or refusing at ${m.coordHost.address.replaceAll(".", "\\.")}:443 .*a firewall rejects it`));
      expect(s.problem.fix).toMatch(new RegExp(`allow outbound TCP to ${m.coordHost.address}:443`));
      const c = await consoleProblem("fw", "offline", 20_000);
      expect(c.fix).toMatch(/TCP 443/);
      table.add({ scenario: "outbound TCP 443 blocked", expected: "coord_unreachable", observed: `status: ${s.problem.code}; console: offline (TCP 443)`, ms: s.ms, ok: true });
    } finally {
      again.kill("SIGTERM");
      lab.nft(router, "add table ip natlab_block\ndelete table ip natlab_block\n");
    }
  }, 90_000);

  it.skipIf(!existsSync(FAKETIME_LIB))("a clock 10 minutes behind (libfaketime): ember up refuses with the measured offset, ember status and the console say so", async () => {
    const host = await lab.addHost("sk", await lab.addRouter("rsk", "eim"));
    const n = await m.startNode("sk", host);
    await m.stopNode(n);
    const child = lab.spawn(host, ["env", `LD_PRELOAD=${FAKETIME_LIB}`, "FAKETIME=-10m", "FAKETIME_DONT_FAKE_MONOTONIC=1",
      process.execPath, EMBER, "up", "--coord", m.coordUrl, "--state", n.dir, "--listen", "0.0.0.0:0"]);
    let stderr = "";
    child.stderr!.on("data", (d) => { stderr += d; });
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    expect(code, stderr).toBe(1);
    expect(stderr).toMatch(/clock_skew: this host's clock is 10\.\d min \(\d+\.\d s\) behind the coordination server's/);
    const s = await status(n.dir);
    expect(s.code).toBe(1);
    const p = s.json.lastStartFailure.problems.find((x: any) => x.code === "clock_skew");
    expect(Math.abs(p.detail.offsetMs + 600_000)).toBeLessThan(5_000);
    expect(p.fix).toMatch(/NTP/);
    const c = await consoleProblem("sk", "clock_skew", 20_000);
    expect(Math.abs(c.detail.offsetMs + 600_000)).toBeLessThan(5_000);
    table.add({ scenario: "clock 10 min behind (libfaketime)", expected: "clock_skew, offset ~ -600 s", observed: `status + console: ${(p.detail.offsetMs / 1000).toFixed(1)} s`, ms: null, ok: true });
  }, 90_000);

  /** `ember up` again on an enrolled state directory (no token), in the node's namespace. */
  function restart(host: Host, n: LabNode) {
    return lab.spawn(host, [process.execPath, EMBER, "up", "--coord", m.coordUrl, "--state", n.dir, "--listen", "0.0.0.0:0", "--log-level", "debug"]);
  }
});
