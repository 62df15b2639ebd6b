// Issue 28, fairness of the public edge: an attacker on 127.0.0.2 opens connections as fast as the edge lets it
// (bare TCP held idle, and TLS handshakes that name nothing published), each reopened as the edge closes it, while
// a client on 127.0.0.3 keeps reaching the published service within the stated latency. The per-source
// budgets (a bucket of new connections, a cap on concurrent ones) are the attacker's, not everyone's.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEdge, OPEN_HOST, type EdgeFixture } from "../edge/fixture.js";
import { ATTACKER, LEGIT, probeSeries, RefilledHold } from "./fairness.js";

/** The edge runs in this process, beside the attacker's own TLS churn, on a shared 2-core machine: a generous bound. */
const LATENCY_BOUND_MS = 2_000;
let fx: EdgeFixture;
const holds: RefilledHold[] = [];

beforeAll(async () => { fx = await startEdge(); }, 60_000);
afterAll(async () => {
  for (const h of holds) h.stop();
  await fx?.close();
});

describe("fairness: public edge (issue 28)", () => {
  it("an attacker at its per-source limits leaves another address served", async () => {
    for (const tls of [false, true]) {
      const h = new RefilledHold({ host: "127.0.0.1", port: fx.port, localAddress: ATTACKER, count: 200, tls, refillMs: 100 });
      holds.push(h);
      h.start();
    }
    await new Promise((r) => setTimeout(r, 1_500));
    const r = await probeSeries(8, 150, async () => {
      const a = await fx.request(OPEN_HOST, `GET / HTTP/1.1\r\nHost: ${OPEN_HOST}\r\n\r\n`, { localAddress: LEGIT });
      return a.includes("marker:status-page") || `answer ${JSON.stringify(a.slice(0, 40))}`;
    });
    const st = fx.edge.stats();
    for (const h of holds) h.stop();
    console.log(`fairness edge: attacker opened ${holds.reduce((s, h) => s + h.opened, 0)}, closed by the edge ${holds.reduce((s, h) => s + h.closedByServer, 0)}; `
      + `edge refused ${JSON.stringify(st.refusedBy)}; legit ${r.ok}/8, latencies ${r.latenciesMs.join(",")} ms`);
    expect(r.failed).toEqual([]);
    expect(r.slowestMs).toBeLessThan(LATENCY_BOUND_MS);
    expect(st.refusedBy.rate + st.refusedBy.source_concurrency).toBeGreaterThan(0);
  }, 30_000);
});
