// Reaching services by name across real NATs: curl through a node's SOCKS5 and HTTP proxy to an HTTPS
// server on a node behind another NAT, and 100 MB through `ember forward` byte-exact (sha256 on both ends)
// over a direct path, over the relay, across forced relay -> direct -> relay switches in mid-transfer, under
// 5% and 20% random loss, and through a link whose MTU is 1280 (no datagram fragmented on the way).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { Lab, type Host } from "./lab.js";
import { EmberLab, type LabNode } from "./ember-mesh.js";
import { startTool, type ToolProc } from "./tools.js";
import { byteExact, transferThroughForward, type Progress, type TransferResult } from "./forward-transfer.js";
import { ResultTable } from "./table.js";
import { tempDir } from "../helpers/pki.js";

const avail = Lab.available();
if (!avail.ok) console.log(`natlab stream tests skipped: ${avail.why}`);

const MB = 1024 * 1024;
const TRANSFER = 100 * MB;
const PROXY_PORT = 1080;
const SINK_PORT = 9000;
const HTTPS_PORT = 8443;


describe.skipIf(!avail.ok)("services by name across NATs", () => {
  let lab: Lab;
  let tmp: ReturnType<typeof tempDir>;
  let m: EmberLab;
  let srv: LabNode, cli: LabNode, small: LabNode;
  let cliHost: Host, srvHost: Host;
  const tools: ToolProc[] = [];
  const table = new ResultTable();

  beforeAll(async () => {
    tmp = tempDir("ember-natlab-streams-");
    lab = await Lab.create();
    m = new EmberLab(lab, join(tmp.dir, "mesh"));
    await m.startServices();
    srvHost = await lab.addHost("srv", await lab.addRouter("rsrv", "eim"));
    cliHost = await lab.addHost("cli", await lab.addRouter("rcli", "eim"));
    const smallRouter = await lab.addRouter("rsmall", "none");
    await lab.setWanMtu(smallRouter, 1280);
    const smallHost = await lab.addHost("small", smallRouter);
    [srv, cli, small] = await Promise.all([
      m.startNode("srv", srvHost),
      m.startNode("cli", cliHost, {}, ["--proxy", String(PROXY_PORT)]),
      m.startNode("small", smallHost),
    ]);
    // Services on srv, in its own namespace: an HTTPS server and a sink that hashes what it receives.
    const cert = join(tmp.dir, "dash.crt"), key = join(tmp.dir, "dash.key");
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=dashboard.srv",
      "-keyout", key, "-out", cert], { stdio: "ignore" });
    for (const args of [["sink", "--port", String(SINK_PORT)], ["https", "--port", String(HTTPS_PORT), "--cert", cert, "--key", key, "--text", "dashboard on srv"]]) {
      const t = startTool(lab, srvHost, "transfer", args);
      tools.push(t);
      expect(await t.nextJson(20_000)).toMatchObject({ ready: true });
    }
    await m.request(srv, "serve", { name: "dashboard", to: `127.0.0.1:${HTTPS_PORT}`, protocol: "https" });
    await m.request(srv, "serve", { name: "sink", to: `127.0.0.1:${SINK_PORT}`, protocol: "tcp" });
    for (const n of [cli, small]) {
      const t0 = Date.now();
      while (Date.now() - t0 < 20_000) {
        const p = (await m.request<any[]>(n, "peers")).find((x) => x.name === "srv");
        if (p?.services?.length === 2) break;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }, 240_000);

  afterAll(async () => {
    console.log(`\nservices by name across NATs\n${table.render()}\n`);
    await lab?.destroy();
    if (lab) expect(lab.existingNamespaces()).toEqual([]);
    tmp?.cleanup();
  }, 60_000);

  /** Sends TRANSFER bytes through a forward on `from` to sink.srv; `during` runs alongside. */
  function transfer(from: LabNode, host: Host, during?: (progress: Progress) => Promise<string>): Promise<{ r: TransferResult; note: string }> {
    return transferThroughForward(m, from, host, { target: "sink.srv", bytes: TRANSFER, peers: [srv], during });
  }

  function check(label: string, expected: string, x: { r: TransferResult; note: string }, extraOk = true): void {
    const exact = byteExact(x.r, TRANSFER);
    table.add({ scenario: label, expected, observed: `${exact ? "sha256 equal" : "MISMATCH"}, ${x.r.mbps} Mbit/s${x.note ? `; ${x.note}` : ""}`, ms: x.r.ms, ok: exact && extraOk });
    expect(x.r.remoteBytes).toBe(TRANSFER);
    expect(x.r.remoteSha256).toBe(x.r.sha256);
    expect(extraOk, x.note).toBe(true);
  }

  it("curl reaches an HTTPS server on a node behind another NAT by name: SOCKS5 and HTTP CONNECT", async () => {
    const socks = await lab.run(cliHost, ["curl", "-sSk", "--max-time", "20", "--socks5-hostname", `127.0.0.1:${PROXY_PORT}`, "https://dashboard.srv/"], { timeoutMs: 30_000 });
    expect(socks.stderr).toBe("");
    expect(socks.stdout).toBe("dashboard on srv\n");
    const connect = await lab.run(cliHost, ["curl", "-sSk", "--max-time", "20", "-x", `http://127.0.0.1:${PROXY_PORT}`, "https://dashboard.srv/"], { timeoutMs: 30_000 });
    expect(connect.stdout).toBe("dashboard on srv\n");
    table.add({ scenario: "curl https://dashboard.srv/ (SOCKS5, CONNECT)", expected: "page", observed: "page both ways", ms: null, ok: true });
  }, 60_000);

  it("100 MB through ember forward over a direct path", async () => {
    expect((await m.waitPath(cli, srv, (p) => p === "direct", 20_000)).path).toBe("direct");
    check("100 MB, direct (eim <-> eim)", "byte-exact", await transfer(cli, cliHost));
  }, 300_000);

  it("100 MB over the relay", async () => {
    const cut = await lab.cutUdp(cliHost, srvHost);
    try {
      expect((await m.waitPathPinging(cli, srv, (p) => p.startsWith("relay:"), 10_000)).path).toMatch(/^relay:/);
      check("100 MB, relay (UDP cut between the NATs)", "byte-exact", await transfer(cli, cliHost));
    } finally {
      await cut.restore();
    }
  }, 300_000);

  it("100 MB across forced relay -> direct -> relay switches in mid-transfer", async () => {
    let cut = await lab.cutUdp(cliHost, srvHost);
    await m.waitPathPinging(cli, srv, (p) => p.startsWith("relay:"), 10_000);
    const seen: string[] = [];
    const x = await transfer(cli, cliHost, async (progress) => {
      await progress(20 * MB);
      seen.push(await m.path(cli, srv));
      await cut.restore();
      seen.push((await m.waitPath(cli, srv, (p) => p === "direct", 15_000)).path);
      await progress(60 * MB);
      cut = await lab.cutUdp(cliHost, srvHost);
      seen.push((await m.waitPath(cli, srv, (p) => p.startsWith("relay:"), 10_000)).path);
      return `paths ${seen.join(" -> ")}`;
    });
    await cut.restore();
    check("100 MB, relay -> direct -> relay mid-transfer", "byte-exact, 2 switches", x,
      seen.length === 3 && seen[0].startsWith("relay:") && seen[1] === "direct" && seen[2].startsWith("relay:"));
  }, 300_000);

  for (const loss of [5, 20]) {
    it(`100 MB under ${loss}% random loss`, async () => {
      await m.waitPath(cli, srv, (p) => p === "direct", 20_000);
      await lab.setLoss(cliHost.router, loss);
      try {
        const x = await transfer(cli, cliHost);
        const dropped = lab.lossCounters(cliHost.router);
        check(`100 MB, ${loss}% loss each way`, "byte-exact", { ...x, note: `${dropped.in + dropped.out} packets dropped` }, dropped.in + dropped.out > 0);
      } finally {
        await lab.clearLoss(cliHost.router);
      }
    }, 600_000);
  }

  it("100 MB through a 1280-byte MTU link: byte-exact, and no datagram needed fragmenting", async () => {
    const frags = lab.countFragments();
    const x = await transfer(small, small.host);
    const n = frags.read();
    check("100 MB, 1280-byte MTU link on the path", "byte-exact, 0 fragments", { ...x, note: `${n} fragments at the core` }, n === 0);
  }, 300_000);
});
