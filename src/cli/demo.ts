// `ember demo`: the main job on the embedded defaults. On loopback it starts a coordination server with
// SQLite, a relay, and three nodes that enroll with one-time tokens; applies the demo policy; connects
// by identity name; prints who reaches whom, over which path, with what latency; fetches a web page from
// dashboard-1 by name through laptop-1's proxy and shows the fetch to db-1 refused with its reason; exits.
import { randomBytes } from "node:crypto";
import type { Command } from "commander";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../package-root.js";
import { spawn } from "node:child_process";
import { createServer as createHttpServer, request as httpRequest } from "node:http";
import { createServer as createTcpServer } from "node:net";
import { freeTcpPort, LocalMesh, type DemoNode } from "./demo-mesh.js";


const POLICY_FILE = join(PACKAGE_ROOT, "examples", "policy", "demo.yaml");
const DEMO_USER = "alice";
/** A throwaway password for a throwaway mesh: it lives as long as the demo's temporary directory. */
const DEMO_PASSWORD = randomBytes(18).toString("base64url");
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
  say(`[1/8] offline root + cluster intermediate CA for trust domain demo.embernet`);

  const relay = await mesh.startRelay("relay-1");
  await mesh.startCoord([{ name: "relay-1", port: relay.port, stunPort: relay.stunPort }]);
  say(`[2/8] coordination server ${mesh.coordUrl} (SQLite, mTLS; only enrollment and health are open)`);
  await mesh.start("relay", ["relay", "--name", "relay-1", "--listen", `127.0.0.1:${relay.port}`, "--stun", `127.0.0.1:${relay.stunPort}`,
    "--cert", relay.certFlags.cert, "--key", relay.certFlags.key, "--ca", relay.certFlags.ca, "--coord", mesh.coordUrl], /listen/);
  say(`[3/8] relay relay-1 on 127.0.0.1:${relay.port} (TLS), STUN on udp/${relay.stunPort}`);

  const nodes: DemoNode[] = [
    { name: "laptop-1", groups: ["engineering-team"] },
    { name: "dashboard-1", groups: ["edge-dashboard"] },
    { name: "db-1", groups: ["databases"] },
  ].map((n) => ({ ...n, dir: join(mesh.dir, n.name), socket: join(mesh.dir, n.name, "ember.sock") }));
  const proxyPort = await freeTcpPort();
  for (const n of nodes) await mesh.startNode(n, TENANT, n.name === "laptop-1" ? ["--proxy", String(proxyPort)] : []);
  say(`[4/8] nodes enrolled with one-time tokens (keys made on the node, only CSRs sent): ${nodes.map((n) => `${n.name} (@${n.groups[0]})`).join(", ")}`);

  // A person of the mesh, before the policy (its embedded tests name user:alice): step 8 logs her in on laptop-1.
  await mesh.admin().putMeshUser({ username: DEMO_USER, password: DEMO_PASSWORD, tenant: TENANT, groups: ["engineering-team"] });
  const policy = readFileSync(POLICY_FILE, "utf8");
  await mesh.admin().setPolicy(policy);
  say(`[5/8] policy applied from examples/policy/demo.yaml (its embedded tests passed)`);

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
      note = visible ? `visible (another rule lets ${from} reach it), this flow denied: ${check.reason ?? "default deny"}` : `${to} is not in ${from}'s peer map: ${check.reason ?? "default deny"}`;
    }
    rows.push([from, to, flow, check.allow ? "allow" : "deny", path, latency, note]);
    result.push({ from, to, flow, allow: check.allow, path, latency, note });
  }
  say(`[6/8] connecting by identity name over end-to-end encrypted sessions:\n`);
  printTableTo(say, ["FROM", "TO", "FLOW", "POLICY", "PATH", "LATENCY", "WHY"], rows);
  say("");

  const fetches = await fetchByName(mesh, byName, proxyPort, say);
  say("");
  // Each node's release and what each peer announced in its handshake (docs/decisions.md "Compatibility"), with the
  // address family of a direct path: what an operator reads before and during a rolling upgrade.
  const statuses = [];
  for (const n of nodes) {
    const st = await mesh.request<any>(n, "status");
    const peers = (await mesh.request<any[]>(n, "peers")).map((p) => ({
      name: p.name as string, state: p.state as string, path: p.path as string, family: p.family as string | undefined,
      protocol: p.version?.protocol as number | undefined,
    }));
    statuses.push({ name: n.name, release: st.release, peers });
    const peerText = peers.map((p) => {
      const details = [p.family, p.protocol !== undefined ? `protocol ${p.protocol}` : undefined].filter(Boolean);
      return `${p.name} ${p.state} via ${p.path}${details.length ? ` (${details.join(", ")})` : ""}`;
    }).join("; ");
    say(`${n.name} (ember ${st.release.version}, protocol ${st.release.protocol}${st.user ? `; user ${st.user.name} logged in` : ""}): ` +
      `${st.identity}, home relay ${st.coordination?.homeRelay ?? "-"}, peers: ${peerText || "none (policy hides everyone)"}`);
  }
  say("\nstopping every process; nothing keeps running after this.");
  return { coordUrl: mesh.coordUrl, flows: result, fetches, nodes: statuses };
}

/**
 * Step 7: applications reach services by name. dashboard-1 serves a web page and db-1 a database port (both
 * on loopback, exposed with `ember serve`); an HTTP client on laptop-1's side fetches through its proxy.
 */
async function fetchByName(mesh: LocalMesh, byName: Map<string, DemoNode>, proxyPort: number, say: (l: string) => void) {
  const web = createHttpServer((req, res) => {
    res.setHeader("content-type", "text/html");
    res.end(`<!doctype html><title>edge dashboard</title><h1>EmberNet demo dashboard on dashboard-1</h1><p>${req.method} ${req.url}</p>\n`);
  });
  const db = createTcpServer((s) => s.end("not an HTTP server\n"));
  await Promise.all([listenLocal(web), listenLocal(db)]);
  try {
    await mesh.request(byName.get("dashboard-1")!, "serve", { name: "web", to: `127.0.0.1:${portOf(web)}`, port: 8080, protocol: "tcp" });
    await mesh.request(byName.get("db-1")!, "serve", { name: "postgres", to: `127.0.0.1:${portOf(db)}`, port: 5432, protocol: "tcp" });
    const laptop = byName.get("laptop-1")!;
    // The services reach laptop-1's map with the nodes' next status reports.
    await waitFor(async () => ((await mesh.request<any[]>(laptop, "peers")).find((p) => p.name === "dashboard-1")?.services.length ? true : undefined), 10_000);
    say(`[7/8] applications reach services by name through laptop-1's proxy (127.0.0.1:${proxyPort}, SOCKS5 and HTTP):\n`);
    const out: Record<string, unknown>[] = [];
    for (const url of ["http://web.dashboard-1/", "http://db-1:5432/"]) {
      const r = await httpViaProxy(url, proxyPort);
      out.push({ url, ...r });
      if (r.status === 200) {
        say(`  GET ${url} -> ${r.status}, ${r.bytes} bytes in ${r.ms} ms with ${r.client}: ${firstLine(r.body)}`);
      } else {
        say(`  GET ${url} -> ${r.status} refused in ${r.ms} ms: ${firstLine(r.body)}`);
      }
    }
    out.push(...await userStep(mesh, byName, proxyPort, say));
    return out;
  } finally {
    web.close();
    db.close();
  }
}

/**
 * Step 8: a person logs in. db-1's admin page is allowed to user:alice only: laptop-1 as a machine is refused;
 * once alice logs in on laptop-1 (a user certificate bound to laptop-1's key), its flows are hers.
 */
async function userStep(mesh: LocalMesh, byName: Map<string, DemoNode>, proxyPort: number, say: (l: string) => void) {
  const admin = createHttpServer((_req, res) => res.end(`<!doctype html><title>db admin</title><h1>db-1 admin, for alice only</h1>\n`));
  await listenLocal(admin);
  try {
    const laptop = byName.get("laptop-1")!;
    await mesh.request(byName.get("db-1")!, "serve", { name: "admin", to: `127.0.0.1:${portOf(admin)}`, port: 8443, protocol: "tcp" });
    await waitFor(async () => ((await mesh.request<any[]>(laptop, "peers")).find((p) => p.name === "db-1")?.services.length === 2 ? true : undefined), 10_000);
    say(`\n[8/8] people: db-1's admin page is allowed to user:${DEMO_USER} only (examples/policy/demo.yaml):\n`);
    const url = "http://admin.db-1/";
    const before = await httpViaProxy(url, proxyPort);
    say(`  as the machine laptop-1: GET ${url} -> ${before.status}: ${firstLine(before.body)}`);
    const login = await mesh.request<{ user: string; groups: string[]; notAfter: string }>(laptop, "login", { username: DEMO_USER, password: DEMO_PASSWORD });
    say(`  ember login --user ${login.user} on laptop-1: a user certificate bound to laptop-1's key, groups ${login.groups.join(", ")}, until ${login.notAfter}`);
    // Peers learn the login from their next map delta (milliseconds).
    let after = await httpViaProxy(url, proxyPort);
    for (let i = 0; i < 20 && after.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await httpViaProxy(url, proxyPort);
    }
    say(`  as ${DEMO_USER} on laptop-1:      GET ${url} -> ${after.status}, ${after.bytes} bytes in ${after.ms} ms: ${firstLine(after.body)}`);
    return [{ url, as: "laptop-1", ...before }, { url, as: `user:${DEMO_USER}`, ...after }];
  } finally {
    admin.close();
  }
}

/** curl through SOCKS5 when it is installed, else Node's own client through the HTTP proxy. */
async function httpViaProxy(url: string, proxyPort: number): Promise<{ status: number; bytes: number; ms: number; body: string; client: string }> {
  const t0 = performance.now();
  // Asynchronously: the web server answering it runs in this very process.
  const curl = await run("curl", ["-sS", "--max-time", "15", "--socks5-hostname", `127.0.0.1:${proxyPort}`, "-o", "-", "-w", "\n%{http_code}", url]);
  if (curl.status === 0) {
    const at = curl.stdout.lastIndexOf("\n");
    const body = curl.stdout.slice(0, at);
    return { status: Number(curl.stdout.slice(at + 1)), bytes: Buffer.byteLength(body), ms: Math.round(performance.now() - t0), body, client: "curl --socks5-hostname" };
  }
  // No curl, or curl refused (SOCKS5 says only "not allowed"): ask the HTTP proxy, which answers with the reason.
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port: proxyPort, path: url, headers: { host: new URL(url).host }, timeout: 15_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes: Buffer.byteLength(body), ms: Math.round(performance.now() - t0), body, client: "node:http via the HTTP proxy" }));
    });
    req.on("error", reject);
    req.end();
  });
}

function run(cmd: string, args: string[]): Promise<{ status: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "ignore"] });
    let stdout = "";
    p.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    p.on("error", () => resolve({ status: null, stdout }));
    p.on("close", (status) => resolve({ status, stdout }));
  });
}

function firstLine(s: string): string {
  return s.replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim().slice(0, 160);
}

function listenLocal(s: { listen(port: number, host: string, cb: () => void): unknown }): Promise<void> {
  return new Promise((r) => s.listen(0, "127.0.0.1", r));
}

function portOf(s: { address(): unknown }): number {
  return (s.address() as { port: number }).port;
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
