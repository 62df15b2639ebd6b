// Users on devices (issue 15) through real processes on loopback: a coordination server, a relay, a web node
// serving echo and HTTP with `ember serve`, two laptops and a machine named like the user. A person logs in on
// a laptop (password, and the console's device-code approval), reaches what their group and user:NAME allow,
// is refused what another group or the laptop's machine rule allows (logged with user and device), keeps the
// same access on a second laptop, and loses every live flow within 1 s when disabled.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect, createServer as createTcpServer, type Server as TcpServer, type Socket } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { LocalMesh, freeTcpPort, type DemoNode } from "../../src/cli/demo-mesh.js";
import { eventually } from "../helpers/nodes.js";
import { ember, EMBER } from "../helpers/cli.js";
import { tempDir } from "../helpers/pki.js";

const POLICY = `rules:
  - allow: {source: "@eng", target: web-1, protocol: tcp, ports: [8080, 8081]}
  - allow: {source: "@ops", target: web-1, protocol: tcp, ports: [9090]}
  - allow: {source: "user:alice", target: web-1, protocol: tcp, ports: [7070]}
  - allow: {source: laptop-1, target: web-1, protocol: tcp, ports: [6060]}
  - allow: {source: alice, target: web-1, protocol: tcp, ports: [6060]}
`;
const PASSWORD = "correct horse battery";

function curlVia(proxyPort: number, url: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn("curl", ["-sS", "--max-time", "10", "-x", `http://127.0.0.1:${proxyPort}`, "-i", url], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** An echo connection through `ember forward`'s local port; resolves when it echoed once. */
function echoConnection(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const c = connect(port, "127.0.0.1", () => c.write("ping\n"));
    c.once("data", () => resolve(c));
    c.once("error", reject);
  });
}

describe("users log in on devices", () => {
  let tmp: ReturnType<typeof tempDir>;
  let mesh: LocalMesh;
  const servers: (HttpServer | TcpServer)[] = [];
  const web: DemoNode = { name: "web-1", groups: ["web"], dir: "", socket: "" };
  const laptop1: DemoNode = { name: "laptop-1", groups: ["laptops"], dir: "", socket: "" };
  const laptop2: DemoNode = { name: "laptop-2", groups: ["laptops"], dir: "", socket: "" };
  const machineAlice: DemoNode = { name: "alice", groups: ["laptops"], dir: "", socket: "" };
  const proxy = new Map<string, number>();
  const logOf = (n: DemoNode) => readFileSync(join(n.dir, "..", `${n.name}.log`), "utf8");
  const admin = () => ["--coord", mesh.coordUrl, "--cert", mesh.adminFlags.cert, "--key", mesh.adminFlags.key, "--ca", mesh.adminFlags.ca];
  const fetchOk = (n: DemoNode, port: number) =>
    eventually(async () => { const r = await curlVia(proxy.get(n.name)!, `http://web-1:${port}/`); return r.stdout.includes(`web-1 port ${port}`) ? r : undefined; }, 15_000, `${n.name} -> web-1:${port}`);

  beforeAll(async () => {
    tmp = tempDir("ember-users-");
    const ports: Record<string, number> = {};
    for (const p of [8080, 9090, 7070, 6060]) {
      const s = createHttpServer((_req, res) => res.end(`hello from web-1 port ${p}\n`));
      await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
      servers.push(s);
      ports[p] = (s.address() as { port: number }).port;
    }
    const echo = createTcpServer((s: Socket) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    servers.push(echo);
    mesh = new LocalMesh(tmp.dir, () => undefined);
    await mesh.init("users.test");
    const relay = await mesh.startRelay("relay-1");
    await mesh.startCoord([{ name: "relay-1", port: relay.port, stunPort: relay.stunPort }]);
    await mesh.start("relay", ["relay", "--name", "relay-1", "--listen", `127.0.0.1:${relay.port}`, "--stun", `127.0.0.1:${relay.stunPort}`,
      "--cert", relay.certFlags.cert, "--key", relay.certFlags.key, "--ca", relay.certFlags.ca, "--coord", mesh.coordUrl], /listen/);
    for (const n of [web, laptop1, laptop2, machineAlice]) Object.assign(n, { dir: join(tmp.dir, n.name), socket: join(tmp.dir, n.name, "ember.sock") });
    await mesh.startNode(web, "acme");
    for (const n of [laptop1, laptop2, machineAlice]) {
      proxy.set(n.name, await freeTcpPort());
      await mesh.startNode(n, "acme", ["--proxy", String(proxy.get(n.name))]);
    }
    const add = ember(["users", "add", "alice", "--tenant", "acme", "--groups", "eng", "--password-stdin", ...admin()], { input: `${PASSWORD}\n` });
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/added user alice \(tenant acme, groups eng\)/);
    expect(ember(["users", "add", "olga", "--tenant", "acme", "--groups", "ops", "--password-stdin", ...admin()], { input: `${PASSWORD}\n` }).code).toBe(0);
    // Groups only people hold are groups a policy may name.
    await mesh.admin().setPolicy(POLICY);
    for (const [name, p] of [["dash", 8080], ["ops", 9090], ["mine", 7070], ["kiosk", 6060]] as const) {
      expect(ember(["serve", name, "--to", `127.0.0.1:${ports[p]}`, "--port", String(p), "--state", web.dir]).code).toBe(0);
    }
    expect(ember(["serve", "echo", "--to", `127.0.0.1:${(echo.address() as { port: number }).port}`, "--port", "8081", "--state", web.dir]).code).toBe(0);
    await fetchOk(laptop1, 6060); // the laptop's machine rule works before anyone logs in
  }, 120_000);

  afterAll(async () => {
    await mesh?.stop();
    for (const s of servers) s.close();
    if (process.env.KEEP_TMP) console.log("kept", tmp.dir); else tmp?.cleanup();
  }, 30_000);

  it("a wrong password is refused with the reason; the right one logs alice in on laptop-1", async () => {
    const bad = ember(["login", "--user", "alice", "--password-stdin", "--state", laptop1.dir], { input: "wrong password here\n" });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/unknown user or wrong password/);
    const before = await curlVia(proxy.get(laptop1.name)!, "http://web-1:8080/");
    expect(before.stdout).toMatch(/^HTTP\/1\.1 403/);
    const ok = ember(["login", "--user", "alice", "--password-stdin", "--state", laptop1.dir], { input: `${PASSWORD}\n` });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/logged in as alice \(tenant acme, groups eng\) on laptop-1 until/);
    await eventually(async () => (JSON.parse(ember(["status", "--json", "--state", laptop1.dir]).stdout).user?.name === "alice" ? true : undefined), 5_000, "status shows alice");
  }, 30_000);

  it("alice reaches her group's service and her user: service, and is refused another group's and the laptop's machine rule", async () => {
    await fetchOk(laptop1, 8080);
    await fetchOk(laptop1, 7070);
    const ops = await curlVia(proxy.get(laptop1.name)!, "http://web-1:9090/");
    expect(ops.stdout).toMatch(/^HTTP\/1\.1 403/);
    const kiosk = await curlVia(proxy.get(laptop1.name)!, "http://web-1:6060/");
    expect(kiosk.stdout).toMatch(/^HTTP\/1\.1 403/);
    const log = logOf(laptop1);
    expect(log).toMatch(/"event":"flow_denied","side":"sender","flow":"user:alice\.acme@laptop-1 -> web-1\.acme:9090\/tcp","user":"alice","device":"laptop-1","reason":"default deny"/);
    // ember logs reads a person's flow like any other: the peer is the node on the other end.
    const events = ember(["logs", "--policy", "--json", "--state", laptop1.dir]).stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(events.find((e: any) => /^user:alice\.acme@laptop-1 -> web-1\.acme:9090/.test(e.flow ?? ""))).toMatchObject({ verdict: "deny", peer: "web-1" });
    // The receiving node decided the allowed flows on alice's identity too, and logged who and where.
    expect(logOf(web)).toMatch(/"event":"flow_allowed","side":"receiver","flow":"user:alice\.acme@laptop-1 -> web-1\.acme:7070\/tcp","user":"alice","device":"laptop-1"/);
  }, 60_000);

  it("ember policy check answers for a person as user:NAME and for the machine of the same name apart", () => {
    const asUser = JSON.parse(ember(["policy", "check", "--from", "user:alice", "--to", "web-1:7070/tcp", "--json", ...admin()]).stdout);
    expect(asUser).toMatchObject({ allow: true, from: "user:alice" });
    const asMachine = JSON.parse(ember(["policy", "check", "--from", "alice", "--to", "web-1:7070/tcp", "--json", ...admin()]).stdout);
    expect(asMachine).toMatchObject({ allow: false, reason: "default deny" });
    const nobody = ember(["policy", "check", "--from", "user:nobody", "--to", "web-1:7070/tcp", ...admin()]);
    expect(nobody.code).not.toBe(0);
    expect(nobody.stderr + nobody.stdout).toMatch(/no user of the mesh named "nobody"/);
  });

  it("a machine named alice never satisfies user:alice", async () => {
    await fetchOk(machineAlice, 6060);
    const r = await curlVia(proxy.get(machineAlice.name)!, "http://web-1:7070/");
    expect(r.stdout).toMatch(/^HTTP\/1\.1 403/);
    await eventually(() => (/"flow":"alice\.acme -> web-1\.acme:7070\/tcp","reason":"default deny"/.test(logOf(machineAlice)) ? true : undefined), 5_000, "the machine alice's denial in its log");
  }, 30_000);

  it("alice approves a device code in the console for laptop-2 and has the same access there", async () => {
    const login = spawn(process.execPath, [EMBER, "login", "--state", laptop2.dir], { stdio: ["ignore", "pipe", "pipe"] });
    const code = await new Promise<string>((resolve, reject) => {
      createInterface({ input: login.stderr! }).on("line", (l) => { const m = /enter the code ([A-Z]{4}-[A-Z]{4})/.exec(l); if (m) resolve(m[1]); });
      login.once("exit", (c) => reject(new Error(`ember login exited ${c}`)));
    });
    const out = new Promise<string>((resolve) => { let s = ""; login.stdout!.on("data", (d) => (s += d)); login.once("exit", () => resolve(s)); });
    const cookie = await consoleLogin(mesh, "alice", PASSWORD);
    // A person's console session approves devices and does nothing else.
    expect((await consoleCall(mesh, "GET", "/ui/api/overview", cookie)).status).toBe(403);
    const approved = await consoleCall(mesh, "POST", "/ui/api/device", cookie, { code });
    expect(approved, JSON.stringify(approved)).toMatchObject({ status: 200, body: { user: "alice", device: "laptop-2" } });
    expect(await out).toMatch(/logged in as alice \(tenant acme, groups eng\) on laptop-2/);
    await fetchOk(laptop2, 8080);
    await fetchOk(laptop2, 7070);
    expect((await curlVia(proxy.get(laptop2.name)!, "http://web-1:9090/")).stdout).toMatch(/^HTTP\/1\.1 403/);
  }, 60_000);

  it("disabling alice cuts her live flows on both laptops within 1 s, and new ones are refused", async () => {
    const conns: Socket[] = [];
    for (const n of [laptop1, laptop2]) {
      const f = ember(["forward", "0", "echo.web-1", "--detach", "--json", "--state", n.dir]);
      expect(f.code, f.stderr).toBe(0);
      conns.push(await echoConnection(Number(JSON.parse(f.stdout).listen.split(":").pop())));
    }
    const closed = conns.map((c) => new Promise<number>((resolve) => c.once("close", () => resolve(Date.now()))));
    const t0 = Date.now();
    const r = await mesh.admin().setUserDisabled("alice", true);
    expect(r).toMatchObject({ username: "alice", disabled: true });
    expect([...r.loggedOut].sort()).toEqual(["laptop-1", "laptop-2"]);
    const cutMs = Math.max(...(await Promise.all(closed))) - t0;
    console.log(`disable: both of alice's live streams cut ${cutMs} ms after the disable request`);
    expect(cutMs).toBeLessThan(1_000);
    await eventually(() => (/"event":"flow_cut","flow":"user:alice\.acme@laptop-1 -> web-1\.acme:8081\/tcp","user":"alice","device":"laptop-1"/.test(logOf(web)) ? true : undefined), 5_000, "web-1 logs the cut");
    await eventually(async () => ((await curlVia(proxy.get(laptop1.name)!, "http://web-1:8080/")).stdout.startsWith("HTTP/1.1 403") ? true : undefined), 5_000, "laptop-1 refused again");
    const list = ember(["users", "list", ...admin()]);
    expect(list.stdout).toMatch(/alice\s+acme\s+eng\s+disabled\s+-/);
    const again = ember(["login", "--user", "alice", "--password-stdin", "--state", laptop1.dir], { input: `${PASSWORD}\n` });
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/user "alice" is disabled/);
    await fetchOk(laptop1, 6060); // the laptop is its machine again
  }, 60_000);

  it("logout and the login's expiry each cut the person's live flow within 1 s", async () => {
    expect((await mesh.admin().setUserDisabled("alice", false)).disabled).toBe(false);
    const forward = (n: DemoNode) => Number(JSON.parse(ember(["forward", "0", "echo.web-1", "--detach", "--json", "--state", n.dir]).stdout).listen.split(":").pop());

    const login = ember(["login", "--user", "alice", "--password-stdin", "--state", laptop1.dir], { input: `${PASSWORD}\n` });
    expect(login.code, login.stderr).toBe(0);
    await fetchOk(laptop1, 8080);
    const c1 = await echoConnection(forward(laptop1));
    const closed1 = new Promise<number>((resolve) => c1.once("close", () => resolve(Date.now())));
    const t0 = Date.now();
    const out = await mesh.request<{ loggedOut: string }>(laptop1, "logout");
    expect(out.loggedOut).toBe("alice");
    const logoutMs = (await closed1) - t0;
    console.log(`logout: alice's live stream cut ${logoutMs} ms after the logout request`);
    expect(logoutMs).toBeLessThan(1_000);

    const short = ember(["login", "--user", "alice", "--password-stdin", "--ttl", "4s", "--json", "--state", laptop2.dir], { input: `${PASSWORD}\n` });
    expect(short.code, short.stderr).toBe(0);
    const notAfter = Date.parse(JSON.parse(short.stdout).notAfter);
    await fetchOk(laptop2, 8080);
    const c2 = await echoConnection(forward(laptop2));
    const closedAt = await new Promise<number>((resolve) => c2.once("close", () => resolve(Date.now())));
    console.log(`expiry: alice's live stream cut ${closedAt - notAfter} ms after her certificate's notAfter`);
    expect(closedAt - notAfter).toBeLessThan(1_000);
    expect(closedAt).toBeGreaterThanOrEqual(notAfter - 50);
  }, 60_000);
});

/** Logs into the console with a password; the session cookie. */
async function consoleLogin(mesh: LocalMesh, username: string, password: string): Promise<string> {
  const r = await consoleCall(mesh, "POST", "/ui/api/login", "", { username, password });
  if (r.status !== 200) throw new Error(`console login: ${r.status} ${JSON.stringify(r.body)}`);
  return r.cookie!;
}

function consoleCall(mesh: LocalMesh, method: string, path: string, cookie: string, body?: unknown): Promise<{ status: number; body: any; cookie?: string }> {
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = httpsRequest(mesh.coordUrl + path, {
      method, ca: readFileSync(mesh.adminFlags.ca), checkServerIdentity: () => undefined,
      headers: { "x-ember-console": "1", ...(cookie ? { cookie } : {}), ...(data ? { "content-type": "application/json", "content-length": data.length } : {}) },
    }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => {
        const set = res.headers["set-cookie"]?.[0]?.split(";")[0];
        let parsed: any = text;
        try { parsed = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, body: parsed, ...(set ? { cookie: set } : {}) });
      });
    });
    req.on("error", reject);
    req.end(data);
  });
}
