// The link emulator proves itself with ping and iperf3 through it (issue 26): one-way delay per direction to
// within a millisecond, jitter that keeps order (and reorders only when asked), random loss at its rate, the
// rate limit with its drop-tail queue, scheduled outages of the asked length, and headroom well past 30 Mbit/s.
// Each router below has its own emulated WAN link; one server host runs iperf3.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab, type Host, type Router, type ServerHost } from "./lab.js";
import { linkEmulatorAvailable } from "./link-emulator.js";
import { GEO, queueFor, type LinkProfile } from "./link-profiles.js";
import { ResultTable } from "./table.js";

const labAvail = Lab.available();
const avail = labAvail.ok ? linkEmulatorAvailable() : labAvail;
if (!avail.ok) console.log(`natlab link emulator tests skipped: ${avail.why}`);

const IPERF_PORT = 5201;
const PROFILES: Record<string, LinkProfile> = {
  delay: { name: "delay", up: { delayMs: 40 }, down: { delayMs: 60 } },
  jitter: { name: "jitter", up: { delayMs: 5 }, down: { delayMs: 30, jitterMs: 20 } },
  reorder: { name: "reorder", up: { delayMs: 5 }, down: { delayMs: 30, jitterMs: 20, reorder: true } },
  loss: { name: "loss", up: { delayMs: 1 }, down: { delayMs: 1, lossPercent: 5 } },
  rate: { name: "rate", up: { delayMs: 5 }, down: { delayMs: 5, rateKbit: 20_000, queueBytes: queueFor(20_000, 100) } },
  outage: { name: "outage", up: { delayMs: 5 }, down: { delayMs: 5 }, outageEveryMs: 2_000, outageMs: 300 },
  open: { name: "open", up: { delayMs: 1 }, down: { delayMs: 1 } },
  geo: GEO,
};

/** Round-trip times of the pings answered, by icmp_seq. */
function pingTimes(out: string): Map<number, number> {
  const m = new Map<number, number>();
  for (const x of out.matchAll(/icmp_seq=(\d+) ttl=\d+ time=([\d.]+) ms/g)) m.set(Number(x[1]), Number(x[2]));
  return m;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

describe.skipIf(!avail.ok)("natlab link emulator", () => {
  let lab: Lab;
  let srv: ServerHost;
  const hosts: Record<string, Host> = {};
  const routers: Record<string, Router> = {};
  const table = new ResultTable();

  beforeAll(async () => {
    lab = await Lab.create();
    srv = await lab.addServerHost("srv");
    lab.spawn(srv, ["iperf3", "-s", "-p", String(IPERF_PORT)]);
    for (const [name, profile] of Object.entries(PROFILES)) {
      routers[name] = await lab.addRouter(`r${name.slice(0, 5)}`, "eim", { link: profile });
      hosts[name] = await lab.addHost(`h${name.slice(0, 5)}`, routers[name]);
    }
  }, 60_000);

  afterAll(async () => {
    console.log(`\nnatlab link emulator\n${table.render()}\n`);
    await lab?.destroy();
    if (lab) expect(lab.existingNamespaces()).toEqual([]);
  }, 30_000);

  async function ping(name: string, count: number, intervalS: number): Promise<Map<number, number>> {
    const r = await lab.run(hosts[name], ["ping", "-n", "-c", String(count), "-i", String(intervalS), "-W", "2", srv.address],
      { timeoutMs: count * intervalS * 1000 + 10_000 });
    return pingTimes(r.stdout);
  }

  /** iperf3 from the server down to the host (-R): the emulated link's downlink carries the data. */
  async function iperfDown(name: string, args: string[], seconds: number): Promise<any> {
    const r = await lab.run(hosts[name], ["iperf3", "-c", srv.address, "-p", String(IPERF_PORT), "-R", "-J", "-t", String(seconds), ...args],
      { timeoutMs: seconds * 1000 + 20_000 });
    if (r.code !== 0) throw new Error(`iperf3 failed (${r.code}): ${r.stdout.slice(0, 400)} ${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  it("one-way delay per direction: 40 ms up + 60 ms down = a 100 ms round trip, the emulator late by over 1 ms for at most 2% of frames", async () => {
    const times = [...(await ping("delay", 60, 0.05)).values()];
    expect(times.length).toBe(60);
    const median = quantile(times, 0.5), p90 = quantile(times, 0.9), min = Math.min(...times);
    const s = await routers.delay.link!.stats();
    const late = s.up.lateOver1ms + s.down.lateOver1ms, sent = s.up.delivered + s.down.delivered;
    table.add({ scenario: "delay 40 up / 60 down", expected: "RTT 100 ms, median < +2 ms, p90 < +4 ms",
      observed: `min ${min}, median ${median}, p90 ${p90} ms; ${late} of ${sent} frames > 1 ms late (latest ${Math.max(s.up.lateMaxUs, s.down.lateMaxUs)} us)`,
      ms: null, ok: true });
    // The emulator's own timing is its lateness count; ping's figures add the two hosts' scheduling, which on the
    // 2-core CI host (the day-in-the-life test runs beside this file) was once 101 ms at the median.
    expect(late).toBeLessThanOrEqual(sent / 50);
    expect(min).toBeGreaterThanOrEqual(100);
    expect(median).toBeLessThan(102);
    expect(p90).toBeLessThan(104);
  });

  it("jitter spreads the delay and keeps order; reordering only when asked", async () => {
    const times = [...(await ping("jitter", 60, 0.05)).values()];
    const spread = Math.max(...times) - Math.min(...times);
    // Down 30 +- 20 ms, up 5: every RTT within 15..56 ms, and the draws cover most of the 40 ms range.
    expect(Math.min(...times)).toBeGreaterThanOrEqual(15);
    expect(Math.max(...times)).toBeLessThan(57);
    expect(spread).toBeGreaterThan(25);
    const ordered = (await iperfDown("jitter", ["-u", "-b", "8M"], 3)).end.streams[0].udp;
    const shuffled = (await iperfDown("reorder", ["-u", "-b", "8M"], 3)).end.streams[0].udp;
    table.add({ scenario: "jitter +-20 ms (8 Mbit/s UDP)", expected: "RTT 15-56 ms, in order; reordered only with reorder",
      observed: `RTT spread ${spread.toFixed(1)} ms; out of order ${ordered.out_of_order} of ${ordered.packets}, with reorder ${shuffled.out_of_order}`, ms: null, ok: true });
    expect(ordered.out_of_order).toBe(0);
    expect(ordered.lost_packets).toBe(0);
    expect(shuffled.out_of_order).toBeGreaterThan(ordered.packets / 20);
  });

  it("random loss at its rate: 5% of the downlink", async () => {
    const before = await routers.loss.link!.stats();
    const udp = (await iperfDown("loss", ["-u", "-b", "8M"], 3)).end.streams[0].udp;
    const after = await routers.loss.link!.stats();
    const lost = after.down.lost - before.down.lost;
    table.add({ scenario: "loss 5% down (8 Mbit/s UDP)", expected: "3.5-6.5% lost",
      observed: `${udp.lost_packets} of ${udp.packets} (${udp.lost_percent.toFixed(2)}%); emulator dropped ${lost}`, ms: null, ok: true });
    expect(udp.packets).toBeGreaterThan(1500);
    expect(udp.lost_percent).toBeGreaterThan(3.5);
    expect(udp.lost_percent).toBeLessThan(6.5);
    // The emulator also dropped a few of iperf3's TCP control segments.
    expect(lost).toBeGreaterThanOrEqual(udp.lost_packets);
    expect(lost).toBeLessThanOrEqual(udp.lost_packets + 10);
  });

  it("rate limit with a drop-tail queue: 20 Mbit/s down, TCP near it, 40 Mbit/s of UDP cut to it", async () => {
    const before = await routers.rate.link!.stats();
    const udp = (await iperfDown("rate", ["-u", "-b", "40M"], 3)).end.streams[0].udp;
    const after = await routers.rate.link!.stats();
    const received = (udp.packets - udp.lost_packets) * (udp.bytes / udp.packets) * 8 / udp.seconds / 1e6;
    const tcp = (await iperfDown("rate", [], 4)).end.sum_received.bits_per_second / 1e6;
    const queueDrops = after.down.queueDrops - before.down.queueDrops;
    table.add({ scenario: "rate 20 Mbit/s down, 100 ms queue", expected: "UDP 18.5-21.5, TCP 16-20 Mbit/s",
      observed: `UDP 40M offered: ${received.toFixed(1)} Mbit/s through, ${queueDrops} queue drops, max queue ${after.down.maxQueueBytes} B; TCP ${tcp.toFixed(1)} Mbit/s`,
      ms: null, ok: true });
    expect(received).toBeGreaterThan(18.5);
    expect(received).toBeLessThan(21.5);
    expect(queueDrops).toBeGreaterThan(1000);
    expect(after.down.maxQueueBytes).toBeLessThanOrEqual(queueFor(20_000, 100));
    expect(tcp).toBeGreaterThan(16);
    expect(tcp).toBeLessThanOrEqual(20);
  });

  it("outages: 300 ms dark every 2 s, nothing lost between them", async () => {
    const start = await routers.outage.link!.stats();
    // 6 s of 20 ms pings spans three outages; -D stamps each reply, so a gap is measured in time, not in
    // pings (a busy host sends pings late).
    const r = await lab.run(hosts.outage, ["ping", "-n", "-D", "-c", "300", "-i", "0.02", "-W", "2", srv.address], { timeoutMs: 20_000 });
    const replies = [...r.stdout.matchAll(/^\[([\d.]+)\] .*icmp_seq=(\d+) /gm)].map((x) => ({ at: Number(x[1]) * 1000, seq: Number(x[2]) }));
    const gaps: { ms: number; pings: number }[] = [];
    for (let i = 1; i < replies.length; i++) {
      const pings = replies[i].seq - replies[i - 1].seq - 1;
      if (pings > 0) gaps.push({ ms: Math.round(replies[i].at - replies[i - 1].at), pings });
    }
    const end = await routers.outage.link!.stats();
    const begun = end.outagesBegun - start.outagesBegun;
    table.add({ scenario: "outage 300 ms every 2 s (20 ms pings)", expected: "a 290-400 ms gap per outage, no other loss",
      observed: `gaps ${gaps.map((g) => `${g.ms} ms (${g.pings} pings)`).join(", ")}; ${begun} outages began`, ms: null, ok: true });
    // Inside the run every outage shows (the first or last may fall before or after the pings), and each gap
    // between the replies around it lasts the outage plus at most a ping interval and a late wake-up.
    expect(gaps.length).toBeGreaterThanOrEqual(Math.max(2, begun - 1));
    expect(gaps.length).toBeLessThanOrEqual(begun);
    for (const g of gaps) {
      expect(g.ms).toBeGreaterThanOrEqual(290);
      expect(g.ms).toBeLessThanOrEqual(400);
    }
  });

  it("headroom: an unlimited link carries TCP well past 30 Mbit/s with the emulator in the path", async () => {
    const tcp = (await iperfDown("open", [], 4)).end.sum_received.bits_per_second / 1e6;
    const s = await routers.open.link!.stats();
    table.add({ scenario: "unlimited link, 1 ms each way", expected: ">= 100 Mbit/s TCP", observed: `${tcp.toFixed(0)} Mbit/s, ${s.down.writeErrors} write errors`, ms: null, ok: tcp >= 100 });
    expect(tcp).toBeGreaterThanOrEqual(100);
  });

  it("the geostationary profile: a 600 ms round trip", async () => {
    const times = [...(await ping("geo", 20, 0.1)).values()];
    const median = quantile(times, 0.5);
    table.add({ scenario: "geo: ping", expected: "RTT 600 ms", observed: `${times.length}/20 answered, median ${median} ms`, ms: null, ok: true });
    expect(times.length).toBeGreaterThanOrEqual(17);
    expect(median).toBeGreaterThanOrEqual(600);
    expect(median).toBeLessThan(602);
  });
});
