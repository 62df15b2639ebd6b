// Property-based fuzzing of the public edge's HTTP handling (issue 28): over real TLS, any server name, and a
// request head made of arbitrary bytes, arbitrary header lines and Authorization fields (no token, junk tokens,
// tokens cut or padded, several fields, oversized heads), at an open publication and at one behind bearer
// tokens. Properties: every answer the edge gives is an HTTP status below 500 (or the connection closes, at the
// latest at its 1 s deadline here), the edge never throws, and it serves a valid request afterwards. Plus the head parsers on their own, on any text.
// Bounded: a fixed seed, a few hundred cases.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { bearerOf, withoutAuthorization } from "../../src/edge/bearer.js";
import { OPEN_HOST, startEdge, TIMED_OUT, TOKEN_HOST, type EdgeFixture } from "../edge/fixture.js";

const SEED = 2_828;
let fx: EdgeFixture;

beforeAll(async () => { fx = await startEdge({ ratePerSource: 100_000, burstPerSource: 100_000, handshakeTimeoutMs: 1_000 }); }, 60_000);
afterAll(async () => { await fx?.close(); });

const token = () => fx.token;
const authLine = fc.oneof(
  fc.constant(""),
  fc.constant("__TOKEN__").map(() => `Authorization: Bearer ${token()}\r\n`),
  fc.string({ maxLength: 80 }).map((s) => `Authorization: Bearer ${s.replace(/[\r\n]/g, "")}\r\n`),
  fc.nat({ max: 200 }).map((n) => `Authorization: Bearer ${token().slice(0, n)}\r\n`),
  fc.constantFrom("authorization:bearer", "Authorization: Basic dXNlcjpwYXNz", "AUTHORIZATION: BEARER a.b.c", "Authorization: Bearer  ", "Authorization:\tBearer\tx.y.z")
    .map((l) => `${l}\r\n`),
  fc.constant("").map(() => `Authorization: Bearer junk\r\nAuthorization: Bearer ${token()}\r\n`),
);
const headerLine = fc.oneof(
  fc.tuple(fc.stringMatching(/^[A-Za-z-]{1,20}$/), fc.string({ maxLength: 60 })).map(([k, v]) => `${k}: ${v.replace(/[\r\n]/g, "")}\r\n`),
  fc.string({ maxLength: 60 }).map((s) => `${s.replace(/\r\n/g, "")}\r\n`),
);
const head = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom("GET", "POST", "BREW", "get", ""), fc.constantFrom("/", "/x?y", "*", "http://a/", "%ZZ", "/" + "a".repeat(300)),
    fc.constantFrom("HTTP/1.1", "HTTP/1.0", "HTTP/9", ""), authLine, fc.array(headerLine, { maxLength: 6 }))
    .map(([m, p, v, a, hs]) => Buffer.from(`${m} ${p} ${v}\r\n${a}${hs.join("")}\r\n`, "latin1")) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: fc.nat({ max: 20_000 }).map((n) => Buffer.from(`GET / HTTP/1.1\r\nX: ${"a".repeat(n)}`)) },
);
const host = fc.oneof({ weight: 5, arbitrary: fc.constantFrom(TOKEN_HOST, OPEN_HOST) }, { weight: 1, arbitrary: fc.constantFrom("nope.example.test", "a", "BILLING.example.test") });

describe("edge HTTP fuzzing", () => {
  it("answers below 500 or closes, for any head at any publication", async () => {
    const statuses = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(host, head, async (h, bytes) => {
        const answer = await fx.request(h, bytes.toString("latin1"), { timeoutMs: 2_500 });
        // An open publication is spliced to its service once TLS is up: with nothing sent, the service waits (its idle
        // timeout, not the edge's). Everywhere else the edge answers or closes by its deadline.
        if (answer === TIMED_OUT && h === OPEN_HOST && bytes.length === 0) return;
        expect(answer, "the edge closes by its deadline").not.toBe(TIMED_OUT);
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(answer);
        const key = m ? m[1] : answer ? "other" : "closed";
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        if (m) expect(Number(m[1])).toBeLessThan(500);
        else expect(answer).toBe("");
      }),
      { seed: SEED, numRuns: 300, interruptAfterTimeLimit: 20_000, markInterruptAsFailure: false },
    );
    console.log(`edge fuzz: answers ${JSON.stringify(Object.fromEntries(statuses))}`);
    // Both kinds of answer were reached: the service (200 with a good token) and the edge's own 401.
    expect(statuses.get("200") ?? 0).toBeGreaterThan(0);
    expect(statuses.get("401") ?? 0).toBeGreaterThan(0);
  }, 60_000);

  it("still serves, with and without a token, afterwards", async () => {
    expect(await fx.request(OPEN_HOST, `GET / HTTP/1.1\r\nHost: ${OPEN_HOST}\r\n\r\n`)).toMatch(/marker:status-page/);
    expect(await fx.request(TOKEN_HOST, `GET / HTTP/1.1\r\nAuthorization: Bearer ${fx.token}\r\n\r\n`)).toMatch(/marker:billing/);
  });

  it("the head parsers take any text without throwing, and never leave an Authorization field", () => {
    fc.assert(fc.property(fc.string({ maxLength: 400 }), fc.array(fc.constantFrom("\r\n", "Authorization: Bearer x", "authorization:", ":", " "), { maxLength: 8 }), (s, bits) => {
      const text = s + bits.join("");
      const t = bearerOf(text);
      expect(t === undefined || (typeof t === "string" && !/[ \t\r\n]/.test(t))).toBe(true);
      const cleaned = withoutAuthorization(text).split("\r\n").slice(1);
      expect(cleaned.some((l) => /^authorization:/i.test(l))).toBe(false);
    }), { seed: SEED, numRuns: 2_000 });
  });
});
