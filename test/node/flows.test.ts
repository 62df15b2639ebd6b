// Application flows by identity name through real processes on loopback: a coordination server, a relay,
// a web node serving local HTTP and echo servers with `ember serve`, and a laptop node running the proxy.
// curl fetches through SOCKS5 and HTTP proxying; denials carry their reason and are logged; an outsider of
// another tenant with a valid certificate is refused by the receiving node itself for every service;
// a policy change and a revocation cut live flows within a second.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { connect, createServer as createTcpServer, type Server as TcpServer, type Socket } from "node:net";
import { join } from "node:path";
import { LocalMesh, freeTcpPort, type DemoNode } from "../../src/cli/demo-mesh.js";
import { EmberNode, DialError } from "../../src/sdk/index.js";
import { eventually } from "../helpers/nodes.js";
import { ember } from "../helpers/cli.js";
import { tempDir } from "../helpers/pki.js";
import { readN } from "../access/clients.js";

const POLICY = `rules:
  - allow: {source: "@eng", target: "@web", protocol: tcp, ports: [8080, 7000, 7001]}
  - allow: {source: "@eng", target: "@web", protocol: udp, ports: [5353]}
  - allow: {source: "tenant:globex", target: "tenant:acme", protocol: udp, ports: [9]}
`;

function curl(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn("curl", ["-sS", "--max-time", String(timeoutMs / 1000), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("flows by identity name", () => {
  let tmp: ReturnType<typeof tempDir>;
  let mesh: LocalMesh;
  let http: HttpServer;
  let echo: TcpServer;
  let httpPort = 0, echoPort = 0, proxyPort = 0;
  const web: DemoNode = { name: "web-1", groups: ["web"], dir: "", socket: "" };
  const laptop: DemoNode = { name: "laptop-1", groups: ["eng"], dir: "", socket: "" };
  const embedded: EmberNode[] = [];
  const logOf = (n: DemoNode) => readFileSync(join(n.dir, "..", `${n.name}.log`), "utf8");

  beforeAll(async () => {
    tmp = tempDir("ember-flows-");
    http = createHttpServer((req, res) => res.end(`hello from web-1: ${req.method} ${req.url}\n`));
    echo = createTcpServer((s: Socket) => s.pipe(s));
    await Promise.all([new Promise<void>((r) => http.listen(0, "127.0.0.1", r)), new Promise<void>((r) => echo.listen(0, "127.0.0.1", r))]);
    httpPort = (http.address() as { port: number }).port;
    echoPort = (echo.address() as { port: number }).port;
    proxyPort = await freeTcpPort();
    mesh = new LocalMesh(tmp.dir, () => undefined);
    await mesh.init("flows.test");
    const relay = await mesh.startRelay("relay-1");
    await mesh.startCoord([{ name: "relay-1", port: relay.port, stunPort: relay.stunPort }]);
    await mesh.start("relay", ["relay", "--name", "relay-1", "--listen", `127.0.0.1:${relay.port}`, "--stun", `127.0.0.1:${relay.stunPort}`,
      "--cert", relay.certFlags.cert, "--key", relay.certFlags.key, "--ca", relay.certFlags.ca, "--coord", mesh.coordUrl], /listen/);
    for (const n of [web, laptop]) Object.assign(n, { dir: join(tmp.dir, n.name), socket: join(tmp.dir, n.name, "ember.sock") });
    await mesh.startNode(web, "acme");
    await mesh.startNode(laptop, "acme", ["--proxy", String(proxyPort)]);
    await mesh.admin().setPolicy(POLICY);
    expect(ember(["serve", "web", "--to", `127.0.0.1:${httpPort}`, "--port", "8080", "--state", web.dir]).code).toBe(0);
    expect(ember(["serve", "echo", "--to", `127.0.0.1:${echoPort}`, "--port", "7000", "--state", web.dir]).code).toBe(0);
    // The laptop sees the web node's services once its status report reached the map.
    await eventually(async () => ((await mesh.request<any[]>(laptop, "peers")).find((p) => p.name === "web-1")?.services.length === 2 ? true : undefined),
      15_000, "web-1's services in laptop-1's map");
  }, 120_000);

  afterAll(async () => {
    await Promise.all(embedded.map((n) => n.close().catch(() => undefined)));
    await mesh?.stop();
    http?.close();
    echo?.close();
    if (process.env.KEEP_TMP) console.log("kept", tmp.dir); else tmp?.cleanup();
  }, 30_000);

  it("curl fetches by name through the SOCKS5 proxy (SERVICE.NAME and NAME:PORT) and through HTTP proxying", async () => {
    const a = await curl(["--socks5-hostname", `127.0.0.1:${proxyPort}`, "http://web.web-1/hello"]);
    expect(a.stderr).toBe("");
    expect(a.stdout).toBe("hello from web-1: GET /hello\n");
    const b = await curl(["--socks5-hostname", `127.0.0.1:${proxyPort}`, "http://web-1:8080/by-port"]);
    expect(b.stdout).toBe("hello from web-1: GET /by-port\n");
    const c = await curl(["-x", `http://127.0.0.1:${proxyPort}`, "http://web-1.acme:8080/absolute"]);
    expect(c.stdout).toBe("hello from web-1: GET /absolute\n");
    const d = await curl(["-p", "-x", `http://127.0.0.1:${proxyPort}`, "http://web.web-1/connect"]);
    expect(d.stdout).toBe("hello from web-1: GET /connect\n");
  }, 60_000);

  it("a denied flow is refused at once with its reason: SOCKS5 0x02, HTTP 403 with the reason", async () => {
    const s = await curl(["--socks5-hostname", `127.0.0.1:${proxyPort}`, "http://web-1:22/"]);
    expect(s.code).not.toBe(0);
    expect(s.stderr).toMatch(/Can.t complete SOCKS5 connection to web-1\. \(2\)/); // reply 0x02: not allowed by ruleset
    const h = await curl(["-i", "-x", `http://127.0.0.1:${proxyPort}`, "http://web-1:22/"]);
    expect(h.stdout).toMatch(/^HTTP\/1\.1 403/);
    expect(h.stdout).toMatch(/default deny/);
    const unknown = await curl(["-i", "-x", `http://127.0.0.1:${proxyPort}`, "http://nobody-here:80/"]);
    expect(unknown.stdout).toMatch(/nobody-here/);
    const log = logOf(laptop);
    expect(log).toMatch(/"event":"flow_denied","side":"sender","flow":"laptop-1.acme -> web-1.acme:22\/tcp","reason":"default deny"/);
  }, 30_000);

  it("ember resolve says what a name is and why, or why not", () => {
    const ok = ember(["resolve", "web.web-1", "--state", laptop.dir]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/web\.web-1 -> web-1 \(tenant acme\) port 8080\/tcp, service web/);
    const json = JSON.parse(ember(["resolve", "web-1", "--port", "7000", "--state", laptop.dir, "--json"]).stdout);
    expect(json).toMatchObject({ ok: true, peer: "web-1", tenant: "acme", port: 7000, protocol: "tcp" });
    const bad = ember(["resolve", "nobody-here", "--state", laptop.dir]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/nobody-here: cannot resolve \(unknown_name\)/);
  });

  it("ember forward carries a TCP stream byte-exact (1 MiB echoed) and stops on --remove", async () => {
    const f = ember(["forward", "0", "echo.web-1", "--detach", "--json", "--state", laptop.dir]);
    expect(f.code, f.stderr).toBe(0);
    const port = Number(JSON.parse(f.stdout).listen.split(":").pop());
    const data = randomBytes(1 << 20);
    const got = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let n = 0;
      const c = connect(port, "127.0.0.1", () => c.end(data));
      c.on("data", (d: Buffer) => { chunks.push(d); n += d.length; });
      c.on("end", () => resolve(Buffer.concat(chunks, n)));
      c.on("error", reject);
    });
    expect(createHash("sha256").update(got).digest("hex")).toBe(createHash("sha256").update(data).digest("hex"));
    expect(ember(["forward", String(port), "x", "--remove", "--state", laptop.dir]).code).toBe(0);
    await expect(new Promise((resolve, reject) => connect(port, "127.0.0.1", () => resolve(true)).on("error", reject))).rejects.toThrow(/ECONNREFUSED/);
    const missing = ember(["forward", String(port), "x", "--remove", "--state", laptop.dir]);
    expect(missing.stderr).toMatch(new RegExp(`no forward on local port ${port}`));
  }, 60_000);

  /** An in-process node (the SDK), enrolled in `tenant` with `groups`; its log in DIR/NAME.log. */
  async function sdkNode(name: string, tenant: string, groups: string[]): Promise<{ node: EmberNode; log: () => string }> {
    const stateDir = join(tmp.dir, name);
    const logFile = join(tmp.dir, `${name}.log`);
    const node = await EmberNode.start({ stateDir, coord: mesh.coordUrl, token: await mesh.token(tenant, groups), name, listen: "127.0.0.1:0", logLevel: "info", logFile });
    embedded.push(node);
    await node.waitForPeer("web-1", 15_000);
    return { node, log: () => readFileSync(logFile, "utf8") };
  }

  it("a valid certificate of another tenant is refused by the receiving node for every service, logged on both sides", async () => {
    const { node, log } = await sdkNode("intruder", "globex", ["eng"]);
    const flows = (node as any).daemon.flows; // skip the sender's own check: only web-1's decision stands
    for (const port of [8080, 7000, 7001, 22]) {
      const err = await flows.dial({ peer: "web-1", tenant: "acme", port, protocol: "tcp" }, { precheck: false }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DialError);
      expect(err.code).toBe("denied");
      expect(err.reason).toMatch(/denied by web-1: cross-tenant flow not named by any rule/);
    }
    // With its own check, the intruder's node refuses at once and logs why.
    const pre = await node.dial("web.web-1").catch((e: unknown) => e);
    expect(pre).toBeInstanceOf(DialError);
    expect((pre as DialError).code).toBe("denied");
    await eventually(() => (log().match(/"event":"flow_refused"/g)?.length === 4 ? true : undefined), 5_000, "intruder logs 4 refusals");
    await eventually(() => (/"event":"flow_denied","side":"sender","flow":"intruder.globex -> web-1.acme:8080\/tcp","reason":"cross-tenant flow not named by any rule"/.test(log()) ? true : undefined), 5_000, "the intruder's own denial logged");
    for (const port of [8080, 7000, 7001, 22]) {
      const line = `"event":"flow_denied","side":"receiver","flow":"intruder.globex -> web-1.acme:${port}/tcp","reason":"cross-tenant flow not named by any rule"`;
      await eventually(() => (logOf(web).includes(line) ? true : undefined), 5_000, `web-1 logs its denial of port ${port}`);
    }
  }, 60_000);

  it("200 concurrent streams over one session, each byte-exact", async () => {
    const { node } = await sdkNode("worker-1", "acme", ["eng"]);
    const one = async (i: number) => {
      const data = randomBytes(32 * 1024 + i);
      const s = await node.dial("echo.web-1");
      const chunks: Buffer[] = [];
      s.on("data", (d: Buffer) => chunks.push(d));
      const done = new Promise<void>((resolve, reject) => { s.on("end", resolve); s.on("error", reject); });
      s.end(data);
      await done;
      return createHash("sha256").update(Buffer.concat(chunks)).digest("hex") === createHash("sha256").update(data).digest("hex");
    };
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => one(i)));
    expect(results.filter((ok) => !ok)).toEqual([]);
    const st = (node as any).daemon.flows.stats();
    expect(st.peers["web-1"].streamsOpened).toBeGreaterThanOrEqual(200);
  }, 120_000);

  it("a stalled reader holds the service's writes to about a window: nothing buffers without bound", async () => {
    let written = 0;
    const firehose = createTcpServer((sock) => {
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const pump = () => { while (sock.writable && written < 512 * 1024 * 1024) { written += chunk.length; if (!sock.write(chunk)) return void sock.once("drain", pump); } };
      sock.on("error", () => undefined);
      pump();
    });
    await new Promise<void>((r) => firehose.listen(0, "127.0.0.1", r));
    try {
      const fport = (firehose.address() as { port: number }).port;
      expect(ember(["serve", "firehose", "--to", `127.0.0.1:${fport}`, "--port", "7001", "--state", web.dir]).code).toBe(0);
      const { node } = await sdkNode("sleeper", "acme", ["eng"]);
      await eventually(() => (node.peers().find((p) => p.name === "web-1")?.services.some((x) => x.name === "firehose") ? true : undefined), 10_000, "firehose announced");
      const rssBefore = rssKiB(web.proc!.pid!);
      const s = await node.dial("firehose.web-1");
      s.pause(); // never read
      await new Promise((r) => setTimeout(r, 4_000));
      const held = written;
      await new Promise((r) => setTimeout(r, 2_000));
      const rssAfter = rssKiB(web.proc!.pid!);
      // The firehose stopped: the socket buffers, the daemon's send buffer and the reader's window filled, then nothing more.
      expect(written).toBe(held);
      expect(written).toBeLessThan(24 * 1024 * 1024);
      expect(rssAfter - rssBefore).toBeLessThan(48 * 1024);
      console.log(`stalled reader: service wrote ${(written / 1048576).toFixed(1)} MiB then stopped; web-1 RSS ${rssBefore} -> ${rssAfter} KiB`);
      s.destroy();
    } finally {
      firehose.close();
    }
  }, 60_000);

  it("a policy change that removes a flow cuts the live stream within 1 s", async () => {
    const { node } = await sdkNode("worker-2", "acme", ["eng"]);
    const s = await node.dial("echo.web-1");
    s.write("ping");
    await new Promise((r) => s.once("data", r));
    const closed = new Promise<number>((resolve) => s.once("close", () => resolve(Date.now())));
    s.on("error", () => undefined);
    const t0 = Date.now();
    try {
      await mesh.admin().setPolicy(POLICY.replace("ports: [8080, 7000, 7001]", "ports: [8080, 7001]"));
      const cutMs = (await closed) - t0;
      console.log(`policy change: live stream cut ${cutMs} ms after the policy was set`);
      expect(cutMs).toBeLessThan(1_000);
      await eventually(() => (/"event":"flow_cut","flow":"worker-2.acme -> web-1.acme:7000\/tcp","reason":"default deny"/.test(logOf(web)) ? true : undefined), 5_000, "web-1 logs the cut");
    } finally {
      await mesh.admin().setPolicy(POLICY);
    }
  }, 60_000);

  it("a revoked node's open stream is cut within 1 s", async () => {
    const { node } = await sdkNode("worker-3", "acme", ["eng"]);
    await eventually(async () => ((await mesh.request<any[]>(web, "peers")).some((p) => p.name === "worker-3") ? true : undefined), 10_000, "web-1 knows worker-3");
    let serverSide: Socket | undefined;
    const accepted = new Promise<void>((r) => echo.once("connection", (c: Socket) => { serverSide = c; r(); }));
    const s = await node.dial("echo.web-1");
    s.on("error", () => undefined);
    s.write("x");
    await accepted;
    const cut = new Promise<number>((resolve) => serverSide!.once("close", () => resolve(Date.now())));
    const t0 = Date.now();
    await mesh.admin().revoke("worker-3");
    const cutMs = (await cut) - t0;
    console.log(`revocation: web-1 cut the revoked node's stream ${cutMs} ms after the revocation`);
    expect(cutMs).toBeLessThan(1_000);
    await eventually(() => (/"event":"flows_cut","peer":"worker-3","streams":1,"reason":"(certificate revoked|left the peer map)/.test(logOf(web)) ? true : undefined), 5_000, "web-1 logs the cut");
  }, 60_000);

  it("UDP through the mesh: ember forward /udp to a UDP service answers request/response datagrams", async () => {
    const udp = createSocket("udp4");
    udp.on("message", (m, r) => udp.send(Buffer.concat([Buffer.from("echo:"), m]), r.port, r.address));
    await new Promise<void>((r) => udp.bind(0, "127.0.0.1", () => r()));
    try {
      expect(ember(["serve", "dns", "--to", `127.0.0.1:${udp.address().port}`, "--protocol", "udp", "--port", "5353", "--state", web.dir]).code).toBe(0);
      await eventually(async () => ((await mesh.request<any[]>(laptop, "peers")).find((p) => p.name === "web-1")?.services.some((x: any) => x.name === "dns") ? true : undefined), 10_000, "dns announced");
      const f = ember(["forward", "0", "dns.web-1/udp", "--detach", "--json", "--state", laptop.dir]);
      expect(f.code, f.stderr).toBe(0);
      const port = Number(JSON.parse(f.stdout).listen.split(":").pop());
      const client = createSocket("udp4");
      await new Promise<void>((r) => client.bind(0, "127.0.0.1", () => r()));
      const answers: string[] = [];
      client.on("message", (m) => answers.push(m.toString()));
      for (const q of ["q1", "q2", "q3"]) {
        client.send(q, port, "127.0.0.1");
        await eventually(() => (answers.includes(`echo:${q}`) ? true : undefined), 5_000, `answer to ${q}`);
      }
      client.close();
      expect(ember(["forward", String(port), "x", "--remove", "--state", laptop.dir]).code).toBe(0);

      // The same service through the proxy's SOCKS5 UDP ASSOCIATE (RFC 1928 section 7), as a DNS client would.
      const ctl = connect(proxyPort, "127.0.0.1");
      await new Promise((r) => ctl.once("connect", r));
      ctl.write(Buffer.from([5, 1, 0]));
      await readN(ctl, 2);
      const u = createSocket("udp4");
      await new Promise<void>((r) => u.bind(0, "127.0.0.1", () => r()));
      const me = u.address().port;
      ctl.write(Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, me >> 8, me & 0xff]));
      const reply = await readN(ctl, 10);
      expect([reply[0], reply[1]]).toEqual([5, 0]);
      const relayPort = reply.readUInt16BE(8);
      const name = Buffer.from("dns.web-1");
      const got = new Promise<Buffer>((resolve) => u.once("message", resolve));
      u.send(Buffer.concat([Buffer.from([0, 0, 0, 3, name.length]), name, Buffer.from([0x14, 0xe9]), Buffer.from("dnsq")]), relayPort, "127.0.0.1");
      const answer = await got;
      expect(answer.subarray(7 + name.length).toString()).toBe("echo:dnsq");
      u.close();
      ctl.destroy();
    } finally {
      udp.close();
    }
  }, 60_000);

  it("a flood of stream opens past the limit is refused and counted; the node keeps serving", async () => {
    const { node } = await sdkNode("flooder", "acme", ["eng"]);
    const flows = (node as any).daemon.flows;
    const mux = flows.muxFor("web-1");
    // Raw opens without waiting for answers: past the peer's stream limit they are refused there, not held.
    const streams = [];
    for (let i = 0; i < 1500; i++) {
      try { streams.push(mux.open(Buffer.from([0x81, 0xa1, 0x76, 0x01]))); } catch { break; } // our own limit stops us too
    }
    for (const st of streams) st.on("error", () => undefined);
    await eventually(async () => {
      const st = await mesh.request<any>(web, "status");
      return st.flows.refused + (st.flows.peers.flooder?.opensRefused ?? 0) > 0 ? st : undefined;
    }, 15_000, "web-1 refused the flood");
    for (const st of streams) st.destroy();
    // web-1 still serves others at once.
    const a = await curl(["--socks5-hostname", `127.0.0.1:${proxyPort}`, "http://web.web-1/after-flood"]);
    expect(a.stdout).toBe("hello from web-1: GET /after-flood\n");
  }, 60_000);
});

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}