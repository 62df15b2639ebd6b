// Proves the NAT lab itself with real UDP/TCP probes: each NAT kind maps as claimed, loss and cuts act, cleanup holds.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab } from "./lab.js";
import { REPO_ROOT } from "./tools.js";
import {
  buildStandardLab, checkCut, checkEdm, checkEim, checkLoss, checkNone, checkStunClient, checkUdpBlocked, type StandardLab,
} from "./selfchecks.js";

const avail = Lab.available();
if (!avail.ok) console.log(`natlab tests skipped: ${avail.why}`);

describe.skipIf(!avail.ok)("natlab topology", () => {
  let s: StandardLab;
  beforeAll(async () => { s = await buildStandardLab(); });
  afterAll(async () => {
    if (!s) return;
    await s.lab.destroy();
    expect(s.lab.existingNamespaces()).toEqual([]);
  });

  it("none: the reflector sees the host's own address and port", async () => {
    const r = await checkNone(s);
    expect(r.data.seen).toEqual([0, 1, 2].map(() => ({ address: s.hosts.none.address, port: 40100 })));
  });

  it("eim: the router's WAN address, and one public port for every destination", async () => {
    const r = await checkEim(s);
    for (const x of r.data.seen) expect(x?.address).toBe(s.routers.eim.wanAddress);
    expect(new Set(r.data.seen.map((x) => x?.port)).size).toBe(1);
    expect(r.ok).toBe(true);
  });

  it("edm: a different public port towards each destination (fully-random)", async () => {
    const r = await checkEdm(s);
    for (const x of r.data.seen) expect(x?.address).toBe(s.routers.edm.wanAddress);
    expect(new Set(r.data.seen.map((x) => x?.port)).size).toBe(3);
  });

  it("udp-blocked: no UDP answer, TCP 443 connects through the NAT, TCP 8443 does not", async () => {
    const r = await checkUdpBlocked(s);
    expect(r.data.udp.seen[0]).toBeNull();
    expect(r.data.tcp443.connected).toBe(true);
    expect(r.data.tcp443.seen?.address).toBe(s.routers.blocked.wanAddress);
    expect(r.data.tcpOther.connected).toBe(false);
  });

  it("loss: 10% each way drops a plausible share of 500 round trips; cleared, all pass", async () => {
    const r = await checkLoss(s, 10, 500);
    console.log(`loss: ${r.observed}`);
    const frac = r.data.withLoss.received / r.data.withLoss.sent;
    expect(frac).toBeGreaterThanOrEqual(0.7);
    expect(frac).toBeLessThanOrEqual(0.95);
    expect(r.data.dropped.in).toBeGreaterThan(0);
    expect(r.data.dropped.out).toBeGreaterThan(0);
    expect(r.data.cleared.received).toBe(r.data.cleared.sent);
  }, 40_000);

  it("cut/restore: UDP between hosts behind two routers stops at the core and comes back", async () => {
    const r = await checkCut(s);
    expect([r.data.before, r.data.during, r.data.after]).toEqual([r.data.count, 0, r.data.count]);
  });

  it("interop: coturn's turnutils_stunclient gets the EIM router's WAN address from turnserver", async () => {
    const r = await checkStunClient(s);
    console.log(`turnutils_stunclient: ${r.observed}`);
    expect(r.data.mapped).toMatch(new RegExp(`^${s.routers.eim.wanAddress.replaceAll(".", "\\.")}:\\d+$`));
  });

  it("refuses bad input with a clear error", async () => {
    await expect(s.lab.addRouter("x", "cone" as never)).rejects.toThrow(/unknown NAT kind "cone"/);
    await expect(s.lab.addHost("Bad Name", s.routers.eim)).rejects.toThrow(/node name "Bad Name"/);
    await expect(s.lab.addHost("a1", s.routers.eim)).rejects.toThrow(/already used/);
    await expect(s.lab.setLoss(s.routers.eim, 101)).rejects.toThrow(/0\.\.100/);
    await expect(s.lab.cutUdp(s.hosts.eim, s.routers.eim)).rejects.toThrow(/share public address/);
    await expect(Lab.create({ prefix: "Bad-Prefix" })).rejects.toThrow(/prefix/);
  });
});

describe.skipIf(!avail.ok)("natlab cleanup", () => {
  it("destroy kills spawned processes and deletes every namespace, and is idempotent", async () => {
    const lab = await Lab.create();
    const r = await lab.addRouter("a", "eim");
    const h = await lab.addHost("a1", r);
    const child = lab.spawn(h, ["sleep", "60"]);
    // A process the lab did not spawn itself, started inside one of its namespaces.
    const stray = execFileSync("ip", ["netns", "exec", r.ns, "sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], { encoding: "utf8" }).trim();
    expect(lab.existingNamespaces().length).toBe(3);
    await lab.destroy();
    await lab.destroy();
    expect(lab.existingNamespaces()).toEqual([]);
    await new Promise((res) => setTimeout(res, 100));
    expect(child.exitCode !== null || child.signalCode !== null).toBe(true);
    expect(running(Number(stray))).toBe(false);
    expect(() => lab.spawn(h, ["true"])).toThrow(/destroyed/);
  });

  it("a lab whose process dies is destroyed by the exit hook", () => {
    const prefix = `x${process.pid.toString(36)}`;
    const script = `import { Lab } from "./test/natlab/lab.ts";
      const lab = await Lab.create({ prefix: "${prefix}" }); await lab.addRouter("a", "edm");
      console.log(lab.existingNamespaces().length); process.exit(3);`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000, cwd: REPO_ROOT });
    expect(r.status).toBe(3);
    expect(r.stdout.trim()).toBe("2");
    expect(listNs().filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
  });

  it("the crash sweep removes only namespaces recorded for a dead process", () => {
    const tag = process.pid.toString(36);
    const dead = `d${tag}`, alive = `l${tag}`, unrecorded = `u${tag}`;
    const deadPid = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim(); // has exited
    mkdirSync("/run/natlab", { recursive: true });
    writeFileSync(`/run/natlab/${dead}.owner`, `${deadPid}\n`);
    writeFileSync(`/run/natlab/${alive}.owner`, `${process.pid}\n`);
    const made = [`${dead}-core`, `${alive}-core`, `${unrecorded}-core`];
    for (const ns of made) execFileSync("ip", ["netns", "add", ns]);
    try {
      const removed = Lab.sweepOrphans(); // (a parallel lab's create may have swept `dead` first)
      expect(removed).not.toContain(`${alive}-core`);
      expect(removed).not.toContain(`${unrecorded}-core`);
      const left = listNs();
      expect(left).not.toContain(`${dead}-core`);
      expect(left).toContain(`${alive}-core`);
      expect(left).toContain(`${unrecorded}-core`);
      expect(existsSync(`/run/natlab/${dead}.owner`)).toBe(false);
    } finally {
      for (const ns of made) spawnSync("ip", ["netns", "del", ns]);
      spawnSync("rm", ["-f", `/run/natlab/${alive}.owner`, `/run/natlab/${dead}.owner`]);
    }
  });
});

/** Alive and not a zombie (a killed orphan may wait for its reaper). */
function running(pid: number): boolean {
  try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8")); } catch { return false; }
}

function listNs(): string[] {
  return execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).split("\n").map((l) => l.split(" ")[0]!).filter(Boolean);
}
