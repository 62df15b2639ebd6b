// External access through a public edge in the NAT lab (docs/external-access.md). Every process is real: a
// coordination server and relays on "internet" hosts, a node `srv` behind a NAT serving plain HTTP services,
// a node `cli` behind another NAT, `ember edge` on a public address, and outside hosts `ext` and `ext2` with no
// mesh identity at all, running curl. Shown: a published service fetched through the edge; client-certificate
// auth (refused without, served with); an unpublished hostname and a service whose external rule was removed
// are unreachable and never answer with another service's bytes; unpublishing and rule removal close live
// connections (figures printed); a bounded flood from one outside host is rate-limited and logged while mesh
// pings and another outside client's fetch keep working.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Lab, type Host, type ServerHost } from "./lab.js";
import { EmberLab, type LabNode } from "./ember-mesh.js";
import { controlRequest } from "../../src/node/control-socket.js";
import { EMBER } from "../helpers/cli.js";
import { tempDir } from "../helpers/pki.js";
import { makeEdgePki } from "../edge/pki.js";

const avail = Lab.available();
if (!avail.ok) console.log(`natlab edge tests skipped: ${avail.why}`);

const FLOOD_ATTEMPTS = 2_000;
const FLOOD_MS = 5_000;

const BASE_RULES = `version: 1
rules:
  - allow: {source: "*", target: "*"}
`;
function policy(externalFor: string[]): string {
  const rules = externalFor.map((s) => `  - allow: {source: external, target: "service:${s}"}\n`).join("");
  return `${BASE_RULES}${rules}services:
  status-page: {node: srv, port: 443, protocol: https}
  partner-api: {node: srv, port: 8443, protocol: https}
  secret-admin: {node: srv, port: 9443, protocol: https}
`;
}

/** A plain HTTP server on 127.0.0.1:PORT answering MARKER; /stream sends a line every 100 ms until the client goes. */
function httpService(port: number, marker: string): string {
  return `const http = require("node:http");
http.createServer((q, s) => {
  if (q.url === "/stream") { s.writeHead(200); const t = setInterval(() => s.write("${marker} tick\\n"), 100); s.on("close", () => clearInterval(t)); return; }
  s.end("${marker}\\n");
}).listen(${port}, "127.0.0.1", () => console.log("ready"));`;
}

/** From the outside host: FLOOD_ATTEMPTS TCP connections to the edge within FLOOD_MS, each closed at once. */
function floodScript(ip: string): string {
  return `const net = require("node:net");
const n = ${FLOOD_ATTEMPTS}, perTick = Math.ceil(n / (${FLOOD_MS} / 50));
let started = 0, done = 0, connected = 0, reset = 0; const t0 = Date.now();
function one() {
  const s = net.connect(443, "${ip}");
  s.setTimeout(3000, () => s.destroy());
  s.on("connect", () => { connected++; s.end(); });
  s.on("error", () => { reset++; });
  s.on("close", () => { if (++done === n) console.log(JSON.stringify({ attempts: n, connected, reset, ms: Date.now() - t0 })); });
}
const iv = setInterval(() => { for (let k = 0; k < perTick && started < n; k++, started++) one(); if (started >= n) clearInterval(iv); }, 50);`;
}

describe.skipIf(!avail.ok)("external access through a public edge", () => {
  let lab: Lab;
  let tmp: ReturnType<typeof tempDir>;
  let m: EmberLab;
  let srv: LabNode, cli: LabNode;
  let edgeHost: ServerHost, ext: ServerHost, ext2: ServerHost, srvHost: Host;
  let edgeProc: ChildProcess;
  let edgeSocket = "";
  const edgeLog: string[] = [];
  let pki = "";
  const figures: string[] = [];

  const edgeStats = () => controlRequest<any>(edgeSocket, "edge", {}, 5_000);
  async function waitHostnames(want: (h: string[]) => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    const t0 = Date.now();
    while (Date.now() - t0 < timeoutMs) {
      if (want((await edgeStats()).hostnames)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`edge never had ${what}: ${JSON.stringify((await edgeStats()).hostnames)}`);
  }
  const curlArgs = (host: string, extra: string[] = [], path = "/") =>
    ["curl", "-sS", "--max-time", "10", "--resolve", `${host}:443:${edgeHost.address}`, "--cacert", join(pki, "pub-ca.crt"), ...extra, `https://${host}${path}`];
  const curl = (from: ServerHost, host: string, extra: string[] = []) => lab.run(from, curlArgs(host, extra), { timeoutMs: 20_000 });

  /** curl -N on /stream from `ext`: resolves when the first tick arrived; `closed` when curl exits. */
  async function liveStream(host: string): Promise<{ closed: Promise<number>; output: () => string }> {
    const child = lab.spawn(ext, [...curlArgs(host, ["-N", "--max-time", "60"], "/stream")]);
    let out = "";
    const closed = new Promise<number>((r) => child.once("exit", () => r(Date.now())));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no stream through ${host}: ${out}`)), 15_000);
      child.stdout!.on("data", (d) => { out += d; if (out.includes("tick")) { clearTimeout(t); resolve(); } });
      child.once("exit", () => { clearTimeout(t); reject(new Error(`curl ended before the stream began: ${out}`)); });
    });
    return { closed, output: () => out };
  }

  beforeAll(async () => {
    tmp = tempDir("ember-natlab-edge-");
    pki = join(tmp.dir, "pki");
    (await import("node:fs")).mkdirSync(pki);
    makeEdgePki(pki);
    lab = await Lab.create();
    m = new EmberLab(lab, join(tmp.dir, "mesh"));
    await m.startServices();
    await m.setPolicy(policy(["status-page", "partner-api", "secret-admin"]));
    srvHost = await lab.addHost("srv", await lab.addRouter("rsrv", "eim"));
    const cliHost = await lab.addHost("cli", await lab.addRouter("rcli", "eim"));
    edgeHost = await lab.addServerHost("edge");
    ext = await lab.addServerHost("ext");
    ext2 = await lab.addServerHost("ext2");
    [srv, cli] = await Promise.all([m.startNode("srv", srvHost), m.startNode("cli", cliHost)]);
    for (const [port, marker] of [[8080, "STATUS-PAGE"], [8081, "PARTNER-API"], [8082, "SECRET-ADMIN"]] as const) {
      const p = lab.spawn(srvHost, [process.execPath, "-e", httpService(port, marker)]);
      await new Promise<void>((r) => createInterface({ input: p.stdout! }).once("line", () => r()));
    }
    await m.request(srv, "serve", { name: "status-page", to: "127.0.0.1:8080", protocol: "https" });
    await m.request(srv, "serve", { name: "partner-api", to: "127.0.0.1:8081", protocol: "https", port: 8443 });
    await m.request(srv, "serve", { name: "secret-admin", to: "127.0.0.1:8082", protocol: "https", port: 9443 });

    // The edge: enrolled with role edge, public listener on its lab address.
    const edgeDir = join(tmp.dir, "mesh", "edge-1");
    edgeSocket = join(edgeDir, "ember.sock");
    const token = await m.token([], ["edge"]);
    edgeProc = lab.spawn(edgeHost, [process.execPath, EMBER, "edge", "--coord", m.coordUrl, "--token", token, "--name", "edge-1", "--state", edgeDir,
      "--listen", `${edgeHost.address}:443`, "--cert", join(pki, "edge.crt"), "--key", join(pki, "edge.key"), "--log-level", "info"]);
    createInterface({ input: edgeProc.stderr! }).on("line", (l) => edgeLog.push(l));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`edge did not start:\n${edgeLog.slice(-20).join("\n")}`)), 40_000);
      createInterface({ input: edgeProc.stdout! }).on("line", (l) => { if (/"event":"edge"/.test(l)) { clearTimeout(t); resolve(); } });
      edgeProc.once("exit", (c) => { clearTimeout(t); reject(new Error(`edge exited ${c}:\n${edgeLog.slice(-20).join("\n")}`)); });
    });

    await m.request(srv, "expose", { service: "status-page", hostname: "status.example.test" });
    await m.request(srv, "expose", { service: "partner-api", hostname: "partner.example.test", clientAuth: "cert", clientCaPem: readFileSync(join(pki, "client-ca.crt"), "utf8") });
    await m.request(srv, "expose", { service: "secret-admin", hostname: "secret.example.test" });
    await waitHostnames((h) => h.length === 3, "three publications");
  }, 240_000);

  afterAll(async () => {
    if (figures.length) console.log(`\nexternal access through a public edge\n${figures.map((f) => `  ${f}`).join("\n")}\n`);
    await lab?.destroy();
    if (lab) expect(lab.existingNamespaces()).toEqual([]);
    tmp?.cleanup();
  }, 60_000);

  it("serves a published service to an outside host with no mesh identity", async () => {
    const r = await curl(ext, "status.example.test");
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("STATUS-PAGE\n");
    const list = await m.request<any>(srv, "exposed");
    expect(list.publications.map((p: any) => [p.hostname, p.active])).toEqual([
      ["status.example.test", true], ["partner.example.test", true], ["secret.example.test", true],
    ]);
    expect(edgeLog.some((l) => /"event":"edge_connection"/.test(l) && /"decision":"allowed"/.test(l) && /"hostname":"status.example.test"/.test(l) && /"source":"198\.18\./.test(l))).toBe(true);
  }, 60_000);

  it("asks for a client certificate where the publication requires one: refused without, served with", async () => {
    const none = await curl(ext, "partner.example.test");
    expect(none.code).not.toBe(0);
    expect(none.stdout).not.toMatch(/PARTNER-API|STATUS-PAGE|SECRET-ADMIN/);
    figures.push(`partner.example.test without a client certificate: ${none.stderr.trim().replace(/^curl: /, "")}`);
    const stranger = await curl(ext, "partner.example.test", ["--cert", join(pki, "stranger.crt"), "--key", join(pki, "stranger.key")]);
    expect(stranger.stdout).not.toMatch(/PARTNER-API|STATUS-PAGE|SECRET-ADMIN/);
    const ok = await curl(ext, "partner.example.test", ["--cert", join(pki, "client.crt"), "--key", join(pki, "client.key")]);
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toBe("PARTNER-API\n");
  }, 60_000);

  it("with the CLI: token client auth answers 401 without `ember expose token`'s bearer token and serves with it", async () => {
    const ember = (args: string[]) => lab.run(srvHost, [process.execPath, EMBER, ...args, "--state", srv.dir], { timeoutMs: 30_000 });
    const pub = await ember(["expose", "status-page", "--public", "--hostname", "status.example.test", "--client-auth", "token", "--json"]);
    expect(pub.code, pub.stderr).toBe(0);
    expect(JSON.parse(pub.stdout)).toMatchObject({ hostname: "status.example.test", clientAuth: "token", active: true, edges: ["edge-1"] });
    const t0 = Date.now();
    let denied = await curl(ext, "status.example.test", ["-i"]);
    while (!/^HTTP\/1.1 401/.test(denied.stdout) && Date.now() - t0 < 10_000) denied = await curl(ext, "status.example.test", ["-i"]);
    expect(denied.stdout).toMatch(/^HTTP\/1.1 401 Unauthorized/);
    expect(denied.stdout).not.toMatch(/STATUS-PAGE/);
    const tok = await ember(["expose", "token", "status-page", "--ttl", "10m"]);
    expect(tok.code, tok.stderr).toBe(0);
    const ok = await curl(ext, "status.example.test", ["-H", `Authorization: Bearer ${tok.stdout.trim()}`]);
    expect(ok.stdout).toBe("STATUS-PAGE\n");
    const list = await ember(["expose", "--list"]);
    expect(list.stdout).toMatch(/status\.example\.test\s+status-page\s+443\s+token\s+active/);
    // Back to no client auth for the tests below.
    expect((await ember(["expose", "status-page", "--public", "--hostname", "status.example.test"])).code).toBe(0);
    const t1 = Date.now();
    while ((await curl(ext, "status.example.test")).stdout !== "STATUS-PAGE\n") {
      if (Date.now() - t1 > 10_000) throw new Error("status.example.test not open again");
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 90_000);

  it("never answers an unpublished hostname, nor with another service's bytes", async () => {
    const r = await curl(ext, "admin.example.test");
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toMatch(/PARTNER-API|STATUS-PAGE|SECRET-ADMIN/);
    figures.push(`unpublished admin.example.test: ${r.stderr.trim().replace(/^curl: /, "")}`);
    // The edge's own mesh address on the mesh port is not a way in either: nothing but TLS on 443 listens.
    const plain = await lab.run(ext, ["curl", "-sS", "--max-time", "5", `http://${edgeHost.address}:80/`], { timeoutMs: 10_000 });
    expect(plain.code).not.toBe(0);
  }, 60_000);

  it("closes a live connection when its external rule is removed, and the service is unreachable after", async () => {
    const live = await liveStream("secret.example.test");
    const t0 = Date.now();
    await m.setPolicy(policy(["status-page", "partner-api"]));
    const setAt = Date.now();
    const closedAt = await live.closed;
    // The CLI's own start-up is most of t0 -> setAt; the cut follows the server's map delta, often before the CLI exits.
    figures.push(`external rule removed: live connection closed ${closedAt - t0} ms after \`ember policy set\` started (it exited at ${setAt - t0} ms)`);
    expect(closedAt - setAt).toBeLessThan(1_000);
    expect(live.output()).not.toMatch(/STATUS-PAGE|PARTNER-API/);
    await waitHostnames((h) => !h.includes("secret.example.test"), "secret.example.test withdrawn");
    const after = await curl(ext, "secret.example.test");
    expect(after.code).not.toBe(0);
    expect(after.stdout).not.toMatch(/PARTNER-API|STATUS-PAGE|SECRET-ADMIN/);
    const list = await m.request<any>(srv, "exposed");
    expect(list.publications.find((p: any) => p.hostname === "secret.example.test")).toMatchObject({ active: false, reason: expect.stringMatching(/no external rule allows service:secret-admin on srv/) });
  }, 90_000);

  it("closes a live connection within 1 s of unpublishing", async () => {
    const live = await liveStream("status.example.test");
    const t0 = Date.now();
    await m.request(srv, "unexpose", { service: "status-page" });
    const closedAt = await live.closed;
    figures.push(`unpublished: live connection closed ${closedAt - t0} ms after \`unexpose\` was asked`);
    expect(closedAt - t0).toBeLessThan(1_000);
    const after = await curl(ext, "status.example.test");
    expect(after.code).not.toBe(0);
    expect(after.stdout).not.toMatch(/PARTNER-API|STATUS-PAGE|SECRET-ADMIN/);
    await m.request(srv, "expose", { service: "status-page", hostname: "status.example.test" });
    await waitHostnames((h) => h.includes("status.example.test"), "status.example.test again");
  }, 60_000);

  it("rate-limits a bounded flood from one outside host, logs it, and mesh traffic and other clients carry on", async () => {
    const before = await edgeStats();
    const flood = lab.spawn(ext, [process.execPath, "-e", floodScript(edgeHost.address)]);
    const result = new Promise<any>((resolve, reject) => {
      createInterface({ input: flood.stdout! }).once("line", (l) => resolve(JSON.parse(l)));
      flood.once("exit", (c) => { if (c !== 0) reject(new Error(`flood exited ${c}`)); });
    });
    // During the flood: mesh pings (edge -> srv through the edge's own daemon, cli -> srv) and another outside host's fetch.
    let pings = 0, fetches = 0;
    const during = (async () => {
      const end = Date.now() + FLOOD_MS;
      while (Date.now() < end) {
        await controlRequest(edgeSocket, "ping", { name: "srv", timeoutMs: 3_000 }, 5_000);
        await m.request(cli, "ping", { name: "srv", timeoutMs: 3_000 }, 5_000);
        pings += 2;
        const r = await curl(ext2, "status.example.test");
        expect(r.stdout).toBe("STATUS-PAGE\n");
        fetches++;
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    const [f] = await Promise.all([result, during]);
    const after = await edgeStats();
    const refused = after.refused - before.refused;
    const admitted = after.admitted - before.admitted;
    figures.push(`flood: ${f.attempts} connections in ${f.ms} ms from one host: ${refused} refused before TLS (rate ${after.refusedBy.rate - before.refusedBy.rate}), ${admitted} admitted; ` +
      `meanwhile ${pings} mesh pings and ${fetches} fetches from another outside host all answered`);
    expect(refused + admitted).toBeGreaterThanOrEqual(FLOOD_ATTEMPTS);
    expect(refused).toBeGreaterThan(FLOOD_ATTEMPTS * 0.8);
    expect(pings).toBeGreaterThanOrEqual(4);
    await new Promise((r) => setTimeout(r, 500));
    const logged = edgeLog.filter((l) => /"event":"edge_connection"/.test(l) && /"decision":"refused"/.test(l) && /"reason":"rate"/.test(l) && l.includes(`"source":"${ext.address}:`)).length;
    expect(logged).toBeGreaterThanOrEqual(refused * 0.95);
    // Still serving after it: the outside host's bucket refills.
    await new Promise((r) => setTimeout(r, 2_500));
    expect((await curl(ext, "status.example.test")).stdout).toBe("STATUS-PAGE\n");
  }, 120_000);
});
