// EmberNet over IPv6 in the NAT lab (issue 26, test/natlab/ipv6-scenarios.ts): a dual-stack pair behind stateful
// IPv6 firewalls goes direct over IPv6 within 2 s; an IPv6-only node behind NAT64/DNS64 enrolls by name, reaches
// the IPv4-only relay and every peer. The lab's own IPv6 pieces are checked first (firewall, DNS64, NAT64).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { Lab } from "./lab.js";
import { ResultTable } from "./table.js";
import { buildIpv6Lab, firewallRow, IPV6_SCENARIOS, type Ipv6Lab } from "./ipv6-scenarios.js";
import { firewallDrops } from "./ipv6.js";
import { labName } from "./names.js";
import { nat64Address } from "./nat64.js";
import { tempDir } from "../helpers/pki.js";

function missingTools(): string | undefined {
  for (const [tool, pkg] of [["tayga", "tayga"], ["unbound", "unbound"], ["socat", "socat"]]) {
    try { execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "pipe" }); } catch { return `\`${tool}\` is not installed (Debian package ${pkg})`; }
  }
  return undefined;
}

const avail = Lab.available();
const missing = avail.ok ? missingTools() : avail.why;
if (missing) console.log(`natlab IPv6 tests skipped: ${missing}`);

describe.skipIf(!!missing)("IPv6 and NAT64/DNS64 in the lab", () => {
  let lab: Lab;
  let tmp: ReturnType<typeof tempDir>;
  let t: Ipv6Lab;
  const table = new ResultTable();

  beforeAll(async () => {
    tmp = tempDir("ember-natlab-v6-");
    lab = await Lab.create();
    t = await buildIpv6Lab(lab, tmp.dir);
  }, 120_000);

  afterAll(async () => {
    console.log(`\nIPv6 and NAT64 scenarios\n${table.render()}\n`);
    await lab?.destroy();
    if (lab) expect(lab.existingNamespaces()).toEqual([]);
    tmp?.cleanup();
  }, 60_000);

  it("the lab: the v6 firewall drops new inbound and passes replies; DNS64 synthesizes; NAT64 reaches IPv4", async () => {
    const a = t.hosts6.a;
    const server = t.m.coordHost;
    const before = firewallDrops(lab, t.sites.a);
    // Unsolicited: a datagram from the server to a's host never arrives.
    const listener = lab.spawn(a.host, ["socat", "-T3", "-u", "UDP6-RECV:40600", "STDOUT"]);
    let heard = "";
    listener.stdout!.on("data", (d) => { heard += d.toString(); });
    await new Promise((r) => setTimeout(r, 300));
    await lab.run(server, ["sh", "-c", `echo unsolicited | socat -u STDIN UDP6-SENDTO:[${a.address}]:40600`]);
    await new Promise((r) => setTimeout(r, 500));
    listener.kill("SIGKILL");
    expect(heard).toBe("");
    expect(firewallDrops(lab, t.sites.a)).toBeGreaterThan(before);
    // Solicited: a's host asks the server, the answer comes back through the firewall.
    const echo = lab.spawn(server, ["socat", "-T3", "UDP6-RECVFROM:40601", "EXEC:cat"]);
    await new Promise((r) => setTimeout(r, 300));
    const r = await lab.run(a.host, ["sh", "-c", `echo hello | socat -T2 STDIO UDP6:[${t.coord6.address}]:40601`]);
    echo.kill("SIGKILL");
    expect(r.stdout.trim()).toBe("hello");
    // The IPv6-only host: no IPv4 address, names resolve to synthesized AAAA, which NAT64 carries to IPv4.
    const m = t.hosts6.m.host;
    expect(lab.exec(m, ["ip", "-4", "addr", "show", "scope", "global"]).trim()).toBe("");
    const resolved = lab.exec(m, ["getent", "ahosts", labName("relay-1")]);
    expect(resolved).toContain(nat64Address(t.m.relayHosts[0].address));
    expect((await lab.run(m, ["ping", "-c1", "-W2", labName("coord")])).code).toBe(0);
  });

  for (const sc of IPV6_SCENARIOS) {
    it(sc.name, async () => {
      const nodes = Object.values(t.nodes);
      await t.m.diagnosed(nodes, async () => {
        for (const row of await sc.run(t)) {
          table.add(row);
          console.log(`${row.scenario}: ${row.observed} (${row.ms ?? "-"} ms)`);
          expect(row.ok, `${row.scenario}: expected ${row.expected}, observed ${row.observed}`).toBe(true);
        }
      });
    }, 90_000);
  }

  it("records the firewalls' drops", () => {
    const row = table.add(firewallRow(t));
    expect(row.ok).toBe(true);
  });
});
