// A day in the life of a mesh (issue 24): started once, then used at random moments by several independent
// actors, each resting 0-150 s between uses (past the 25 s+ NAT holds, the 45 s session rest, the 60 s stream
// idle and the 120 s rekey), as people use it. Every use gets one try: a failure on the first try is a failure.
//
// The mesh, behind the lab's NATs: srv (EIM NAT) serves web and big over HTTP; blk sits behind a router that
// blocks UDP (relay only) and serves web; cli (EIM NAT) has the SOCKS5 proxy and a standing forward; sdk embeds
// a node with the SDK; tun1 and tun2 run TUN; an edge on a public host publishes srv's web to ext, an outside
// host with no identity. DAY_S sets the length (default 540 s, ~10 minutes of CI with set-up); DAY_SEED replays.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Lab, type Host, type ServerHost } from "./lab.js";
import { EmberLab, type LabNode } from "./ember-mesh.js";
import { renderDay, restedPast, runDay, THRESHOLDS_S, type Actor } from "./day-schedule.js";
import { tempDir } from "../helpers/pki.js";
import { makeEdgePki } from "../edge/pki.js";
import { EMBER } from "../helpers/cli.js";
import { builtSdk } from "../helpers/built.js";
import { loadNativeAddon } from "../../src/native/addon.js";

const avail = Lab.available();
const addon = loadNativeAddon();
const skip = !avail.ok ? `day-in-the-life test skipped: ${avail.why}` : !addon.addon ? `day-in-the-life test skipped: the native addon is not loaded (${addon.reason})` : "";
if (skip) console.log(skip);

const DAY_S = Number(process.env.DAY_S ?? 540);
const SEED = Number(process.env.DAY_SEED ?? Date.now() % 100_000);
const USE_TIMEOUT_S = 15;
const PROXY_PORT = 1080;
const WEB_PORT = 8080;
const BIG_BYTES = 1 << 20;

const POLICY = `version: 1
rules:
  - allow: {source: "*", target: "*"}
  - allow: {source: external, target: "service:site"}
services:
  site: {node: srv, port: 443, protocol: https}
`;

/** What /big answers: BIG_BYTES of a fixed pattern, so the client can check every byte. */
function bigBody(): Buffer {
  const b = Buffer.alloc(BIG_BYTES);
  for (let i = 0; i < b.length; i++) b[i] = (i * 31 + (i >> 11)) & 0xff;
  return b;
}
const BIG_SHA = createHash("sha256").update(bigBody()).digest("hex");

/** An HTTP server on 127.0.0.1:PORT: "/" answers "web on NAME", "/big" the pattern. */
function webServer(name: string): string {
  return `const http = require("node:http");
const big = Buffer.alloc(${BIG_BYTES}); for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 11)) & 0xff;
http.createServer((q, s) => { if (q.url === "/big") return s.end(big); s.end("web on ${name}\\n"); })
  .listen(${WEB_PORT}, "127.0.0.1", () => console.log("ready"));`;
}

/** An application with an embedded node (the SDK): one JSON line in = one dial + HTTP GET, one JSON line out. */
function sdkApp(dir: string, coord: string, token: string): string {
  return `import { EmberNode } from ${JSON.stringify(builtSdk())};
import { createInterface } from "node:readline";
const node = await EmberNode.start({ stateDir: ${JSON.stringify(dir)}, coord: ${JSON.stringify(coord)}, token: ${JSON.stringify(token)}, name: "sdk", logLevel: "info" });
console.log(JSON.stringify({ ready: true }));
createInterface({ input: process.stdin }).on("line", async (line) => {
  const { id, target } = JSON.parse(line);
  const t0 = Date.now();
  try {
    const s = await node.dial(target);
    const chunks = [];
    s.on("data", (c) => chunks.push(c));
    await new Promise((res, rej) => { s.on("end", res); s.on("error", rej); s.end("GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n"); });
    console.log(JSON.stringify({ id, ok: true, body: Buffer.concat(chunks).toString().split("\\r\\n\\r\\n")[1] ?? "", ms: Date.now() - t0 }));
  } catch (err) {
    console.log(JSON.stringify({ id, ok: false, error: String(err && err.message || err), ms: Date.now() - t0 }));
  }
});`;
}

describe.skipIf(!!skip)("a day in the life of a mesh", () => {
  let lab: Lab;
  let tmp: ReturnType<typeof tempDir>;
  let m: EmberLab;
  const hosts: Record<string, Host> = {};
  const nodes: Record<string, LabNode> = {};
  let edgeHost: ServerHost, ext: ServerHost;
  let sdkProc: ChildProcess;
  const sdkWaiters = new Map<number, (r: any) => void>();
  let sdkSeq = 0;
  let forwardPort = 0;
  const netnsDirs: string[] = [];
  let pki = "";

  function serveWeb(host: Host, name: string): Promise<void> {
    const p = lab.spawn(host, [process.execPath, "-e", webServer(name)]);
    return new Promise<void>((r) => createInterface({ input: p.stdout! }).once("line", () => r()));
  }

  beforeAll(async () => {
    tmp = tempDir("ember-natlab-day-");
    pki = join(tmp.dir, "pki");
    mkdirSync(pki);
    makeEdgePki(pki);
    lab = await Lab.create();
    m = new EmberLab(lab, join(tmp.dir, "mesh"));
    await m.startServices();
    await m.setPolicy(POLICY);
    for (const [name, nat] of [["srv", "eim"], ["cli", "eim"], ["blk", "udp-blocked"], ["sdk", "eim"], ["tun1", "eim"], ["tun2", "eim"]] as const) {
      hosts[name] = await lab.addHost(name, await lab.addRouter(`r${name}`, nat));
    }
    edgeHost = await lab.addServerHost("edge");
    ext = await lab.addServerHost("ext");
    await Promise.all([serveWeb(hosts.srv, "srv"), serveWeb(hosts.blk, "blk")]);
    const started = await Promise.all([
      m.startNode("srv", hosts.srv),
      m.startNode("cli", hosts.cli, {}, ["--proxy", String(PROXY_PORT)]),
      m.startNode("blk", hosts.blk),
      m.startNode("tun1", hosts.tun1, {}, ["--tun", "ember0"]),
      m.startNode("tun2", hosts.tun2, {}, ["--tun", "ember0"]),
    ]);
    for (const n of started) nodes[n.name] = n;
    for (const n of ["srv", "blk"]) await m.request(nodes[n], "serve", { name: "web", to: `127.0.0.1:${WEB_PORT}`, port: 80, protocol: "tcp" });
    await m.request(nodes.srv, "serve", { name: "site", to: `127.0.0.1:${WEB_PORT}`, protocol: "https" });
    // A standing forward, as `ember forward 8000 web.srv` leaves it: the user comes back to it now and then.
    const f = await m.request<{ listen: string }>(nodes.cli, "forward", { listenPort: 0, host: "web.srv", protocol: "tcp" });
    forwardPort = Number(f.listen.split(":").pop());

    // The SDK application on its own host behind a NAT.
    const sdkDir = join(tmp.dir, "mesh", "sdk");
    mkdirSync(sdkDir, { recursive: true });
    const script = join(tmp.dir, "sdk-app.mjs");
    writeFileSync(script, sdkApp(sdkDir, m.coordUrl, await m.token()));
    sdkProc = lab.spawn(hosts.sdk, [process.execPath, script]);
    const sdkErr: string[] = [];
    createInterface({ input: sdkProc.stderr! }).on("line", (l) => { sdkErr.push(l); if (sdkErr.length > 50) sdkErr.shift(); });
    await new Promise<void>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`SDK app did not start:\n${sdkErr.join("\n")}`)), 40_000);
      createInterface({ input: sdkProc.stdout! }).on("line", (l) => {
        const msg = JSON.parse(l);
        if (msg.ready) { clearTimeout(t); res(); }
        sdkWaiters.get(msg.id)?.(msg);
      });
      sdkProc.once("exit", (c) => { clearTimeout(t); rej(new Error(`SDK app exited ${c}:\n${sdkErr.join("\n")}`)); });
    });

    // The edge on a public host; srv publishes its site there.
    const edgeDir = join(tmp.dir, "mesh", "edge-1");
    const edgeToken = await m.token([], ["edge"]);
    const edge = lab.spawn(edgeHost, [process.execPath, EMBER, "edge", "--coord", m.coordUrl, "--token", edgeToken, "--name", "edge-1", "--state", edgeDir,
      "--listen", `${edgeHost.address}:443`, "--cert", join(pki, "edge.crt"), "--key", join(pki, "edge.key"), "--log-level", "info"]);
    const edgeErr: string[] = [];
    createInterface({ input: edge.stderr! }).on("line", (l) => { edgeErr.push(l); if (edgeErr.length > 50) edgeErr.shift(); });
    await new Promise<void>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`edge did not start:\n${edgeErr.join("\n")}`)), 40_000);
      createInterface({ input: edge.stdout! }).on("line", (l) => { if (/"event":"edge"/.test(l)) { clearTimeout(t); res(); } });
      edge.once("exit", (c) => { clearTimeout(t); rej(new Error(`edge exited ${c}:\n${edgeErr.join("\n")}`)); });
    });
    await m.request(nodes.srv, "expose", { service: "site", hostname: "site.example.test" });

    // TUN names resolve through each node's own DNS (what `ip netns exec` puts over /etc/resolv.conf).
    for (const x of ["tun1", "tun2"]) {
      const t0 = Date.now();
      let ip = "";
      while (!ip && Date.now() - t0 < 30_000) {
        ip = (await m.request<any>(nodes[x], "status")).dataPlane?.native?.tun?.address ?? "";
        if (!ip) await new Promise((r) => setTimeout(r, 200));
      }
      expect(ip, `${x} has a TUN address`).toMatch(/^100\./);
      const dir = `/etc/netns/${hosts[x].ns}`;
      mkdirSync(dir, { recursive: true });
      netnsDirs.push(dir);
      writeFileSync(join(dir, "resolv.conf"), `nameserver ${ip}\nsearch ember\noptions timeout:2 attempts:1\n`);
    }
  }, 300_000);

  afterAll(async () => {
    sdkProc?.kill();
    await lab?.destroy();
    if (lab) expect(lab.existingNamespaces()).toEqual([]);
    for (const d of netnsDirs) rmSync(d, { recursive: true, force: true });
    tmp?.cleanup();
  }, 60_000);

  const curl = async (host: Host | ServerHost, args: string[]): Promise<string> => {
    const r = await lab.run(host, ["curl", "-sS", "--max-time", String(USE_TIMEOUT_S - 2), ...args], { timeoutMs: USE_TIMEOUT_S * 1000 });
    if (r.code !== 0) throw new Error(`curl ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const expectBody = (got: string, want: string): string => {
    if (got !== want) throw new Error(`wrong answer: ${JSON.stringify(got.slice(0, 80))}`);
    return "page";
  };
  const sdkDial = (target: string): Promise<string> => new Promise((res, rej) => {
    const id = ++sdkSeq;
    const t = setTimeout(() => { sdkWaiters.delete(id); rej(new Error(`SDK dial ${target}: no answer in ${USE_TIMEOUT_S} s`)); }, USE_TIMEOUT_S * 1000);
    sdkWaiters.set(id, (r) => {
      clearTimeout(t);
      sdkWaiters.delete(id);
      if (!r.ok) return rej(new Error(`SDK dial ${target}: ${r.error}`));
      try { res(expectBody(r.body, `web on ${target.split(".")[1]}\n`)); } catch (e) { rej(e); }
    });
    sdkProc.stdin!.write(JSON.stringify({ id, target }) + "\n");
  });

  const actors = (): Actor[] => [
    { name: "proxy web.srv", pair: "cli-srv", use: async () =>
      expectBody(await curl(hosts.cli, ["--socks5-hostname", `127.0.0.1:${PROXY_PORT}`, "http://web.srv/"]), "web on srv\n") },
    { name: "proxy web.blk", pair: "cli-blk", use: async () =>
      expectBody(await curl(hosts.cli, ["-x", `http://127.0.0.1:${PROXY_PORT}`, "http://web.blk/"]), "web on blk\n") },
    { name: "forward 1 MB", pair: "cli-srv:forward", use: async () => {
      const r = await lab.run(hosts.cli, ["sh", "-c", `curl -sS --max-time ${USE_TIMEOUT_S - 2} http://127.0.0.1:${forwardPort}/big | sha256sum`], { timeoutMs: USE_TIMEOUT_S * 1000 });
      if (!r.stdout.startsWith(BIG_SHA)) throw new Error(`forward: sha256 ${r.stdout.slice(0, 16)} (want ${BIG_SHA.slice(0, 16)}) ${r.stderr.trim()}`);
      return "1 MB sha256 equal";
    } },
    { name: "proxy 1 MB blk", pair: "cli-blk:big", use: async () => {
      const r = await lab.run(hosts.cli, ["sh", "-c", `curl -sS --max-time ${USE_TIMEOUT_S - 2} --socks5-hostname 127.0.0.1:${PROXY_PORT} http://web.blk/big | sha256sum`], { timeoutMs: USE_TIMEOUT_S * 1000 });
      if (!r.stdout.startsWith(BIG_SHA)) throw new Error(`proxy big: sha256 ${r.stdout.slice(0, 16)} (want ${BIG_SHA.slice(0, 16)}) ${r.stderr.trim()}`);
      return "1 MB sha256 equal";
    } },
    { name: "sdk web.srv", pair: "sdk-srv", use: () => sdkDial("web.srv") },
    { name: "sdk web.blk", pair: "sdk-blk", use: () => sdkDial("web.blk") },
    { name: "tun ping tun2", pair: "tun1-tun2", use: async () => {
      const r = await lab.run(hosts.tun1, ["ping", "-c", "1", "-W", "3", "tun2"], { timeoutMs: USE_TIMEOUT_S * 1000 });
      if (r.code !== 0) throw new Error(`ping tun2: ${(r.stdout + r.stderr).trim().split("\n").slice(-2).join(" ")}`);
      return /time=([\d.]+ ms)/.exec(r.stdout)?.[1] ?? "answered";
    } },
    { name: "tun ping tun1", pair: "tun2-tun1", use: async () => {
      const r = await lab.run(hosts.tun2, ["ping", "-c", "1", "-W", "3", "tun1"], { timeoutMs: USE_TIMEOUT_S * 1000 });
      if (r.code !== 0) throw new Error(`ping tun1: ${(r.stdout + r.stderr).trim().split("\n").slice(-2).join(" ")}`);
      return /time=([\d.]+ ms)/.exec(r.stdout)?.[1] ?? "answered";
    } },
    { name: "ember ping srv", pair: "blk-srv", use: async () => {
      const r = await lab.run(hosts.blk, [process.execPath, EMBER, "ping", "srv", "--state", nodes.blk.dir, "--json"], { timeoutMs: USE_TIMEOUT_S * 1000 });
      if (r.code !== 0) throw new Error(`ember ping srv: ${r.stderr.trim() || r.stdout.trim()}`);
      const rtts = [JSON.parse(r.stdout).rttMs].flat() as number[];
      return `${rtts.map((x) => x.toFixed(1)).join(", ")} ms`;
    } },
    { name: "edge site", pair: "edge-srv", use: async () =>
      expectBody(await curl(ext, ["--resolve", `site.example.test:443:${edgeHost.address}`, "--cacert", join(pki, "pub-ca.crt"), "https://site.example.test/"]), "web on srv\n") },
  ];

  it(`every use succeeds on the first try, across rests past every timer (${DAY_S} s, seed ${SEED})`, async () => {
    const uses = await runDay(actors(), DAY_S, SEED);
    console.log(`\na day in the life of a mesh (${DAY_S} s, seed ${SEED})\n${renderDay(uses)}\n`);
    const failed = uses.filter((u) => !u.ok);
    if (failed.length) console.log(await m.diagnose(Object.values(nodes), 40));
    expect(failed.map((u) => `${u.atS.toFixed(0)} s ${u.actor} after ${u.pairRestS.toFixed(0)} s: ${u.detail}`)).toEqual([]);
    // A run long enough to mean something rests past every threshold, several times.
    if (DAY_S >= 300) {
      expect(uses.length).toBeGreaterThanOrEqual(100);
      for (const t of THRESHOLDS_S) expect(restedPast(uses, t.s).length, `uses after a rest past ${t.s} s (${t.what})`).toBeGreaterThanOrEqual(5);
    }
  }, (DAY_S + 120) * 1000);
});
