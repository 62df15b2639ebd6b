// `ember demo`: the main job on the embedded defaults. On loopback it starts a coordination server with
// SQLite, a relay, and three nodes that enroll with one-time tokens; applies the demo policy; connects
// by identity name; prints who reaches whom, over which path, with what latency; and exits cleanly.
import type { Command } from "commander";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LocalMesh, type DemoNode } from "./demo-mesh.js";


const POLICY_FILE = fileURLToPath(new URL("../../examples/policy/demo.yaml", import.meta.url));
const TENANT = "demo";

export function registerDemo(program: Command): void {
  program.command("demo")
    .description("run a complete local mesh on loopback (coordination server, relay, three nodes), print its status, clean up")
    .option("--keep", "keep the demo directory (logs, SQLite database, node state)")
    .option("--json", "machine-readable result")
    .action(async (o: { keep?: boolean; json?: boolean }) => {
      const dir = mkdtempSync(join(tmpdir(), "ember-demo-"));
      const say = (line: string) => { if (!o.json) process.stdout.write(line + "\n"); };
      const mesh = new LocalMesh(dir, say);
      let failed = false;
      try {
        const result = await runDemo(mesh, say);
        if (o.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
      } catch (err) {
        failed = true;
        process.stderr.write(`ember demo: ${(err as Error).message}\n`);
      } finally {
        await mesh.stop();
        if (o.keep) say(`kept ${dir}`);
        else rmSync(dir, { recursive: true, force: true });
      }
      if (failed) process.exitCode = 1;
    });
}

async function runDemo(mesh: LocalMesh, say: (l: string) => void) {
  say("EmberNet local mesh demo: every process on 127.0.0.1, state in a temporary directory\n");
  await mesh.init("demo.embernet");
  say(`[1/6] offline root + cluster intermediate CA for trust domain demo.embernet`);

  const relay = await mesh.startRelay("relay-1");
  await mesh.startCoord([{ name: "relay-1", port: relay.port, stunPort: relay.stunPort }]);
  say(`[2/6] coordination server ${mesh.coordUrl} (SQLite, mTLS; only enrollment and health are open)`);
  await mesh.start("relay", ["relay", "--name", "relay-1", "--listen", `127.0.0.1:${relay.port}`, "--stun", `127.0.0.1:${relay.stunPort}`,
    "--cert", relay.certFlags.cert, "--key", relay.certFlags.key, "--ca", relay.certFlags.ca, "--coord", mesh.coordUrl], /listen/);
  say(`[3/6] relay relay-1 on 127.0.0.1:${relay.port} (TLS), STUN on udp/${relay.stunPort}`);

  const nodes: DemoNode[] = [
    { name: "laptop-1", groups: ["engineering-team"] },
    { name: "dashboard-1", groups: ["edge-dashboard"] },
    { name: "db-1", groups: ["databases"] },
  ].map((n) => ({ ...n, dir: join(mesh.dir, n.name), socket: join(mesh.dir, n.name, "ember.sock") }));
  for (const n of nodes) await mesh.startNode(n, TENANT);
  say(`[4/6] nodes enrolled with one-time tokens (keys made on the node, only CSRs sent): ${nodes.map((n) => `${n.name} (@${n.groups[0]})`).join(", ")}`);

  const policy = readFileSync(POLICY_FILE, "utf8");
  await mesh.admin().setPolicy(policy);
  say(`[5/6] policy applied from examples/policy/demo.yaml (its embedded tests passed)`);

  const pairs: [string, string, string][] = [
    ["laptop-1", "dashboard-1", "dashboard-1:443/https"],
    ["laptop-1", "db-1", "db-1:5432/tcp"],
    ["dashboard-1", "db-1", "db-1:5432/tcp"],
  ];
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const rows: (string | number)[][] = [];
  const result: Record<string, unknown>[] = [];
  for (const [from, to, flow] of pairs) {
    const check = await mesh.admin().checkPolicy(from, flow);
    const fromNode = byName.get(from)!;
    let path = "-", latency = "-", note = "";
    if (check.allow) {
      const t0 = Date.now();
      await waitForPing(mesh, fromNode, to);
      const firstPath = await pathOf(mesh, fromNode, to);
      const connectMs = Date.now() - t0;
      // The session starts on the relay; path discovery moves it to a direct path once one answers.
      const direct = await waitFor(async () => ((await pathOf(mesh, fromNode, to)) === "direct" ? true : undefined), 8_000);
      const finalPath = await pathOf(mesh, fromNode, to);
      const rtt = await waitForPing(mesh, fromNode, to);
      path = firstPath === finalPath ? finalPath : `${firstPath} -> ${finalPath}`;
      latency = `${rtt.toFixed(2)} ms`;
      note = `${check.rule?.text ? `rule ${check.rule.text}; ` : ""}first pong ${connectMs} ms${direct ? "" : "; no direct path answered"}`;
    } else {
      const peers = await mesh.request<any[]>(fromNode, "peers");
      const visible = peers.some((x) => x.name === to);
      note = visible ? "visible but flow denied" : `${to} is not in ${from}'s peer map: ${check.reason ?? "default deny"}`;
    }
    rows.push([from, to, flow, check.allow ? "allow" : "deny", path, latency, note]);
    result.push({ from, to, flow, allow: check.allow, path, latency, note });
  }
  say(`[6/6] connecting by identity name over end-to-end encrypted sessions:\n`);
  printTableTo(say, ["FROM", "TO", "FLOW", "POLICY", "PATH", "LATENCY", "WHY"], rows);
  say("");
  for (const n of nodes) {
    const st = await mesh.request<any>(n, "status");
    say(`${n.name}: ${st.identity}, home relay ${st.coordination?.homeRelay ?? "-"}, peers: ${st.peers.map((p: any) => `${p.name} ${p.state} via ${p.path}`).join(", ") || "none (policy hides everyone)"}`);
  }
  say("\nstopping every process; nothing keeps running after this.");
  return { coordUrl: mesh.coordUrl, flows: result };
}

function printTableTo(say: (l: string) => void, header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  for (const r of cells) say(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join("  "));
}

async function pathOf(mesh: LocalMesh, from: DemoNode, to: string): Promise<string> {
  const peers = await mesh.request<any[]>(from, "peers");
  return peers.find((x) => x.name === to)?.path ?? "-";
}

async function waitFor<T>(fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T | undefined> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}

async function waitForPing(mesh: LocalMesh, from: DemoNode, to: string): Promise<number> {
  const end = Date.now() + 30_000;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const r = await mesh.request<{ rttMs: number }>(from, "ping", { name: to, timeoutMs: 2_000 });
      return r.rttMs;
    } catch (err) { last = err; }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${from.name} could not reach ${to} within 30 s: ${(last as Error)?.message}`);
}
