// The operators' console in a real browser (Debian's chromium driven by playwright-core) against a real mesh
// on loopback (coordination server, relay, three enrolled daemons sending telemetry): both logins, the
// mesh with paths and latencies, a certificate's rotation time moving after a rotation, a flow tested
// against policy, a denied flow found in the decisions, the node page naming its problem; a page without a
// session redirects to login, and forged or expired session cookies are refused. Screenshots go to
// test-artifacts/dashboard/ (gitignored).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { freeTcpPort, LocalMesh, type DemoNode } from "../../src/cli/demo-mesh.js";
import { JwtKey } from "../../src/crypto/jwt.js";
import { SESSION_AUDIENCE, SESSION_ISSUER, SESSION_TYP } from "../../src/coord/console.js";
import { eventually } from "../helpers/nodes.js";
import { EMBER } from "../helpers/cli.js";
import { tempDir } from "../helpers/pki.js";

const CHROMIUM = "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.log(`dashboard browser test skipped: ${CHROMIUM} is not installed (.ci/run installs Debian's chromium)`);
const ARTIFACTS = join(import.meta.dirname, "..", "..", "test-artifacts", "dashboard");
const PASSWORD = "correct horse battery staple";
const POLICY = `version: 1
groups: [web, ops]
rules:
  - allow: {source: "@ops", target: "@web", protocol: tcp, ports: [443, 8443]}
  - allow: {source: "@web", target: "@ops", protocol: tcp, ports: [22]}
  - allow: {source: alpha, target: gamma, protocol: any}
`;

describe.skipIf(!haveChromium)("the console in a real browser", () => {
  let tmp: ReturnType<typeof tempDir>;
  let mesh: LocalMesh;
  let browser: import("playwright-core").Browser;
  let ui = "";
  const nodes: Record<string, DemoNode> = {};
  const shots: string[] = [];

  beforeAll(async () => {
    process.env.EMBER_TELEMETRY_INTERVAL_MS = "500";
    process.env.EMBER_COORD_MIN_CERT_TTL = "1s";
    tmp = tempDir("ember-dash-");
    mkdirSync(ARTIFACTS, { recursive: true });
    mesh = new LocalMesh(tmp.dir, () => undefined);
    await mesh.init("dash.test");
    const relay = await mesh.startRelay("relay-1");
    // The console on its own port: browsers need its ECDSA web certificate (Chromium speaks no Ed25519 TLS).
    const [port, cport] = [await freeTcpPort(), await freeTcpPort()];
    const { line } = await mesh.start("coordination server", ["coord", "--data", join(tmp.dir, "coord-data"), "--ca-dir", mesh.ca.dir, "--listen", `127.0.0.1:${port}`,
      "--relay", `relay-1=127.0.0.1:${relay.port}:${relay.stunPort}`, "--console-listen", `127.0.0.1:${cport}`], /coordination server https:\/\//);
    mesh.coordUrl = /(https:\/\/\S+)/.exec(line)![1];
    ui = `https://127.0.0.1:${cport}`;
    await mesh.start("relay", ["relay", "--name", "relay-1", "--listen", `127.0.0.1:${relay.port}`, "--stun", `127.0.0.1:${relay.stunPort}`,
      "--cert", relay.certFlags.cert, "--key", relay.certFlags.key, "--ca", relay.certFlags.ca, "--coord", mesh.coordUrl], /listen/);
    await mesh.admin().setPolicy(POLICY);
    for (const [name, groups] of [["alpha", ["ops"]], ["beta", ["web"]]] as const) {
      nodes[name] = { name, groups: [...groups], dir: join(tmp.dir, name), socket: join(tmp.dir, name, "ember.sock") };
      await mesh.startNode(nodes[name], "acme");
    }
    // gamma's certificate lives 30 s: it rotates at about 2/3 of that, while the test watches.
    nodes.gamma = { name: "gamma", groups: ["web"], dir: join(tmp.dir, "gamma"), socket: join(tmp.dir, "gamma", "ember.sock") };
    const token = (await mesh.admin().createToken({ tenant: "acme", groups: ["web"], roles: [], ttlMs: 600_000, uses: 1, certTtlMs: 30_000 })).token;
    nodes.gamma.proc = (await mesh.start("gamma", ["up", "--coord", mesh.coordUrl, "--token", token, "--name", "gamma", "--state", nodes.gamma.dir, "--listen", "127.0.0.1:0"], /"event":"up"/)).proc;
    // Sessions with latencies: alpha reaches beta and gamma.
    for (const to of ["beta", "gamma"]) await eventually(() => mesh.request(nodes.alpha, "ping", { name: to, timeoutMs: 2_000 }).catch(() => undefined), 30_000, `alpha -> ${to}`);
    // A console login made with the CLI, as an operator would.
    const r = spawnSync(process.execPath, [EMBER, "admin", "create", "alice", "--password-stdin", "--coord", mesh.coordUrl, "--cert", mesh.adminFlags.cert, "--key", mesh.adminFlags.key, "--ca", mesh.adminFlags.ca],
      { input: `${PASSWORD}\n`, encoding: "utf8", timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/created console login alice/);
    const { chromium } = await import("playwright-core");
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true, chromiumSandbox: false,
      args: ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  }, 150_000);

  afterAll(async () => {
    await browser?.close();
    await mesh?.stop();
    tmp?.cleanup();
    delete process.env.EMBER_TELEMETRY_INTERVAL_MS;
    delete process.env.EMBER_COORD_MIN_CERT_TTL;
    if (shots.length) console.log(`dashboard screenshots: ${shots.join(", ")}`);
  }, 30_000);

  const shot = async (page: import("playwright-core").Page, name: string) => {
    const file = join(ARTIFACTS, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    shots.push(`${name}.png`);
  };
  const context = (opts: Parameters<import("playwright-core").Browser["newContext"]>[0] = {}) => browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 }, ...opts });

  it("without a session every page redirects to the login page; forged and expired cookies are refused", async () => {
    const ctx = await context();
    const page = await ctx.newPage();
    await page.goto(`${ui}/ui/policy`);
    expect(new URL(page.url()).pathname).toBe("/ui/login");
    expect(new URL(page.url()).searchParams.get("reason")).toBe("no_session");
    await shot(page, "01-login");
    // A cookie signed by another key, and one signed by the server's own key but expired.
    const key = JwtKey.loadOrCreate(join(tmp.dir, "coord-data", "token-signing.key"));
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: SESSION_ISSUER, aud: SESSION_AUDIENCE, sub: "mallory", jti: "x1", amr: ["pwd"], auth_time: now - 3600 };
    const forged = JwtKey.generate().sign(SESSION_TYP, { ...claims, iat: now, exp: now + 900 });
    // The forger puts the server's kid in its header: the signature still fails.
    const [h, b, s] = forged.split(".");
    const withKid = `${Buffer.from(JSON.stringify({ alg: "EdDSA", typ: SESSION_TYP, kid: key.kid })).toString("base64url")}.${b}.${s}`;
    const expired = key.sign(SESSION_TYP, { ...claims, iat: now - 1200, exp: now - 300 });
    void h;
    for (const [cookie, reason] of [[forged, "unknown_key"], [withKid, "bad_signature"], [expired, "expired"]]) {
      await ctx.clearCookies();
      await ctx.addCookies([{ name: "ember_session", value: cookie, url: `${ui}/ui/`, secure: true, httpOnly: true, sameSite: "Strict" }]);
      await page.goto(`${ui}/ui/`);
      expect(new URL(page.url()).pathname, reason).toBe("/ui/login");
      expect(new URL(page.url()).searchParams.get("reason")).toBe(reason);
      const api = await page.evaluate(() => fetch("/ui/api/overview").then((r) => r.status));
      expect(api).toBe(401);
    }
    await shot(page, "02-login-after-forged-cookie");
    await ctx.close();
  }, 60_000);

  it("password login: the mesh with its nodes, paths and latencies; a flow tested; a denied flow in the decisions; the node page names it", async () => {
    const ctx = await context();
    const page = await ctx.newPage();
    await page.goto(`${ui}/ui/`);
    await page.fill("#username", "alice");
    await page.fill("#password", "wrong password!!");
    await page.click("#password-submit");
    await page.waitForSelector("#error:not([hidden])");
    expect(await page.textContent("#error")).toMatch(/wrong password/);
    await page.fill("#password", PASSWORD);
    await page.click("#password-submit");
    await page.waitForURL(`${ui}/ui/`);
    const cookie = (await ctx.cookies()).find((c) => c.name === "ember_session")!;
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: "Strict" });
    // The overview fills in as telemetry arrives (live updates): three nodes, alpha's paths with latencies.
    await page.waitForSelector("tr[data-node=gamma]");
    await page.waitForSelector("tr[data-link='alpha>beta'] td.num:not(:text('–'))", { timeout: 20_000 });
    const rows = await page.$$eval("table.nodes tbody tr", (trs) => trs.map((t) => (t as HTMLElement).innerText));
    expect(rows.length).toBe(3);
    expect(rows.every((r) => r.includes("online"))).toBe(true);
    const link = await page.$eval("tr[data-link='alpha>beta']", (t) => (t as HTMLElement).innerText);
    expect(link).toMatch(/direct|relay:relay-1/);
    expect(link).toMatch(/\d ms/);
    expect(await page.$$eval("svg.graph line.edge", (l) => l.length)).toBeGreaterThanOrEqual(2);
    expect(await page.textContent("td[data-pair='alpha>beta']")).toMatch(/^[DR] [\d.]+ ms$/);
    await shot(page, "03-mesh-overview");

    // The flow tester against the live policy.
    await page.click("nav a[data-page=policy]");
    await page.waitForSelector("#flow-test");
    await page.selectOption("#flow-from", "alpha");
    await page.selectOption("#flow-to", "beta");
    await page.fill("#flow-port", "443");
    await page.click("#flow-submit");
    await page.waitForSelector("#check-result [data-verdict]");
    expect(await page.getAttribute("#check-result [data-verdict]", "data-verdict")).toBe("allow");
    expect(await page.textContent("#check-result")).toMatch(/rule 1/);
    await page.selectOption("#flow-from", "gamma");
    await page.selectOption("#flow-to", "beta");
    await page.fill("#flow-port", "5432");
    await page.click("#flow-submit");
    await page.waitForSelector("#check-result [data-verdict=deny]");
    expect(await page.textContent("#check-result")).toMatch(/Nearest rule/);
    await shot(page, "04-policy-flow-test");

    // A real denied flow: beta opens a forward to alpha:5432; the policy lets beta reach alpha on 22 only. The page,
    // already open, shows it without a reload (live updates by server-sent events).
    await page.goto(`${ui}/ui/policy?verdict=deny`);
    await page.waitForSelector("#flow-test");
    expect(await page.$$("table.decisions tr[data-verdict=deny]")).toHaveLength(0);
    const f = await mesh.request<{ listen: string }>(nodes.beta, "forward", { listenPort: 0, host: "alpha", port: 5432, protocol: "tcp" });
    const port = Number(f.listen.split(":").pop());
    await new Promise<void>((resolve) => { const s = connect(port, "127.0.0.1"); s.on("close", () => resolve()); s.on("error", () => resolve()); s.setTimeout(5_000, () => s.destroy()); });
    const live = await page.waitForSelector("table.decisions tr[data-verdict=deny]", { timeout: 20_000 }).then(() => true, async () => {
      const state = await page.evaluate(() => ({ live: document.getElementById("live")!.className, rendered: document.body.dataset.rendered }));
      const api = await page.evaluate(() => fetch("/ui/api/decisions?verdict=deny").then((r) => r.json()));
      console.log(`live update missed: ${JSON.stringify(state)}; the API has ${JSON.stringify(api).slice(0, 300)}`);
      return false;
    });
    expect(live, "the denied flow appears on the open page by the live stream").toBe(true);
    const denied = await page.$$eval("table.decisions tbody tr", (trs) => trs.map((t) => (t as HTMLElement).innerText));
    expect(denied.some((r) => /beta\.acme -> alpha\.acme:5432\/tcp/.test(r))).toBe(true);
    await shot(page, "05-policy-denied-decisions");

    // The node page names the problem, with the nearest rule and the fix.
    await page.goto(`${ui}/ui/nodes/beta`);
    await page.waitForSelector(".problem[data-code=policy_missing]");
    const problem = await page.textContent(".problem[data-code=policy_missing]");
    expect(problem).toMatch(/nearest rule 2 .*port: the rule allows 22, the flow is to 5432/);
    expect(problem).toMatch(/ember policy check --from beta --to alpha:5432\/tcp/);
    await shot(page, "06-node-beta-problem");

    // Connection history, filtered to one pair.
    await page.goto(`${ui}/ui/connections?node=alpha&kind=handshake`);
    await page.waitForSelector("table.history tr[data-kind=handshake]");
    await shot(page, "07-connections");
    await ctx.close();
  }, 90_000);

  it("certificate login: an admin certificate presented by the browser; a rotation moves the next-rotation time", async () => {
    const ctx = await context({
      clientCertificates: [{ origin: ui, cert: readFileSync(mesh.adminFlags.cert), key: readFileSync(mesh.adminFlags.key) }],
    });
    const page = await ctx.newPage();
    await page.goto(`${ui}/ui/certificates`);
    expect(new URL(page.url()).pathname).toBe("/ui/login");
    await page.waitForSelector("#cert-login:not([disabled])");
    expect(await page.textContent("#cert-state")).toMatch(/ops-admin/);
    await page.click("#cert-login");
    await page.waitForURL(`${ui}/ui/certificates`);
    expect(await page.textContent("#who")).toMatch(/ops-admin \(certificate\)/);
    const rotation = () => page.getAttribute("tr[data-cert=gamma] td.rotation", "data-at");
    await page.waitForSelector("tr[data-cert=gamma]");
    const before = await rotation();
    await shot(page, "08-certificates-before-rotation");
    // gamma renews at ~2/3 of 30 s; the page follows live (or on reload).
    // (Reloaded: Playwright's client-certificate proxy holds back the server-sent events stream.)
    const after = await eventually(async () => {
      await page.waitForTimeout(2_000);
      await page.reload();
      await page.waitForSelector("tr[data-cert=gamma]");
      const now = await rotation();
      return now !== before ? now : undefined;
    }, 40_000, "gamma's next rotation to move");
    expect(Date.parse(after!)).toBeGreaterThan(Date.parse(before!));
    await shot(page, "09-certificates-after-rotation");
    await ctx.close();
  }, 60_000);
});
