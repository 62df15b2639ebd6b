// Issue 14, item 1: TCP connections that never finish TLS (no credentials needed to open them) must not
// exhaust the relay's file descriptors or lock valid nodes out. They are counted against --max-conns, held in
// a bounded budget of their own (oldest evicted first), limited per source address, and destroyed at the
// handshake deadline.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RelayClient } from "../../src/nat/relay-client.js";
import { connected, makePki, nodeClient, relayStatus, startRelay, waitFor, type IdentityFiles, type Pki, type RelayProc } from "../relay/helpers.js";
import { captureClientHello, fdCount, Flood, loopbackSources, sampleMax } from "./helpers.js";

let pki: Pki;
let relayId: IdentityFiles;
let hello: Buffer;
const relays: RelayProc[] = [];
const clients: RelayClient[] = [];
const floods: Flood[] = [];

beforeAll(async () => {
  pki = await makePki();
  relayId = await pki.identity("relay-p", { roles: ["relay"] });
  hello = await captureClientHello();
});

afterAll(async () => {
  for (const f of floods) f.stop();
  await Promise.all(clients.map((c) => c.stop()));
  await Promise.all(relays.map((r) => r.stop()));
  pki?.cleanup();
});

async function relayWith(flags: string[], nofile?: number): Promise<RelayProc> {
  const r = await startRelay(pki, relayId, flags, { nofile });
  relays.push(r);
  return r;
}

function flood(relay: RelayProc, count: number, sources: string[]): Flood {
  const f = new Flood({ host: "127.0.0.1", port: relay.info.listen.port, count, sources, kinds: ["idle"], clientHello: hello });
  floods.push(f);
  return f;
}

/** Two valid nodes connect and one frame goes from the first to the second. */
async function validPairWorks(relay: RelayProc, tag: string): Promise<void> {
  const a = nodeClient(pki, relay, await pki.identity(`${tag}-a`));
  const b = nodeClient(pki, relay, await pki.identity(`${tag}-b`));
  clients.push(a, b);
  a.start();
  b.start();
  await Promise.all([connected(a), connected(b)]);
  const got = new Promise<string>((r) => b.once("packet", (_from: string, p: Buffer) => r(p.toString())));
  expect(a.send(`${tag}-b`, Buffer.from(`hello from ${tag}`))).toBe(true);
  expect(await got).toBe(`hello from ${tag}`);
  await Promise.all([a.stop(), b.stop()]);
}

describe("relay: connections that never start TLS (issue 14.1)", () => {
  it("300 held plain TCP connections under ulimit -n 256 leave room for a valid node, and are destroyed at the handshake deadline", async () => {
    const relay = await relayWith([], 256);
    const pid = relay.proc.pid!;
    const fds = sampleMax(100, () => fdCount(pid));
    const f = flood(relay, 300, loopbackSources(30));
    await f.start();
    const heldAt = Date.now();
    // The reproduction: before the fix the relay hit EMFILE here and a valid node got EOF.
    await validPairWorks(relay, "fd-valid");
    // Every connection that never started TLS is gone by the 10 s handshake deadline (plus scheduling slack).
    await waitFor(() => f.closedByServer + f.failed >= 300, "the relay to close every pre-TLS connection", 16_000);
    const closedAfterMs = Date.now() - heldAt;
    expect(closedAfterMs).toBeLessThan(16_000);
    const peakFds = fds.stop();
    console.log(`relay under ulimit -n 256: 300 plain TCP connections held, valid pair worked; all closed ${closedAfterMs} ms after they were open; peak fds ${peakFds}`);
    expect(peakFds).toBeLessThan(256);
    expect(relay.stderr()).not.toMatch(/EMFILE/);
    const st = await relayStatus(relay);
    expect(st.connections.pending).toBe(0);
    expect(st.connections.maxConnections).toBeLessThanOrEqual(256 - 32); // clamped below the descriptor limit
  }, 45_000);

  it("counts pre-TLS connections against --max-conns: the relay holds no more than the limit, and a valid node still gets in", async () => {
    const relay = await relayWith(["--max-conns", "40"]);
    const pid = relay.proc.pid!;
    const base = fdCount(pid);
    const f = flood(relay, 100, loopbackSources(10, 100));
    await f.start();
    await waitFor(() => f.open <= 40, "the relay to shed connections over --max-conns", 5_000);
    expect(fdCount(pid) - base).toBeLessThanOrEqual(40 + 4);
    const st = await relayStatus(relay);
    expect(st.connections.connections).toBeLessThanOrEqual(40);
    expect(st.connections.pending).toBeLessThanOrEqual(st.connections.maxPending);
    await validPairWorks(relay, "cap-valid");
    f.stop();
  }, 30_000);

  it("limits pre-TLS connections per source address: one address cannot take the whole budget", async () => {
    const relay = await relayWith([]);
    const f = flood(relay, 60, ["127.0.0.77"]);
    await f.start();
    const st = await waitFor(async () => { const s = await relayStatus(relay); return f.open <= s.connections.maxPendingPerSource ? s : undefined; },
      "the relay to refuse connections over the per-source limit", 5_000);
    expect(st.connections.maxPendingPerSource).toBeLessThan(60);
    expect(st.counters.refused.per_source_limit).toBeGreaterThanOrEqual(60 - st.connections.maxPendingPerSource);
    await validPairWorks(relay, "src-valid");
    f.stop();
  }, 30_000);
});
