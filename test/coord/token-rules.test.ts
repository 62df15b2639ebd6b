// The one token-refusal rule (src/coord/tokens.ts checkToken) that the server and both stores apply: each case
// once, at its boundaries. The stores' use of it is proven by the Store contract (store.test.ts) on both backends.
import { describe, expect, it } from "vitest";
import { checkToken } from "../../src/coord/tokens.js";

const NOW = Date.UTC(2030, 0, 1);
const live = { expiresAt: NOW + 1, usesLeft: 1, usesTotal: 3 };

describe("checkToken", () => {
  it("accepts a token with uses left before its expiry, and hands back that token", () => {
    const v = checkToken(live, NOW);
    expect(v).toEqual({ ok: true, token: live });
  });

  it("refuses a missing (or mismatched) token as unknown", () => {
    expect(checkToken(undefined, NOW)).toEqual({ ok: false, reason: "token_unknown", detail: "unknown token (never issued by this server, or mistyped)" });
  });

  it("refuses at the expiry instant, naming it", () => {
    expect(checkToken({ ...live, expiresAt: NOW }, NOW)).toEqual({ ok: false, reason: "token_expired", detail: "token expired at 2030-01-01T00:00:00.000Z" });
  });

  it("refuses a spent token, naming its uses; expiry is judged first", () => {
    expect(checkToken({ ...live, usesLeft: 0 }, NOW)).toEqual({ ok: false, reason: "token_used", detail: "token already used (3 of 3 uses); ask for a new one" });
    expect(checkToken({ ...live, usesLeft: 0, expiresAt: NOW - 1 }, NOW)).toMatchObject({ reason: "token_expired" });
  });
});
