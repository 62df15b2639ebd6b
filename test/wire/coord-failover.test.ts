// Which failures send a coordination request on to the next replica, and the loop over the replicas: pure
// decisions tested without sockets (the replica tests in test/coord and test/relay run them against real servers).
import { describe, expect, it } from "vitest";
import { RequestError, ServerNotTrusted } from "../../src/pki/mtls-client.js";
import { acrossReplicas, goesToNextReplica, MAX_RETRY_AFTER_MS, ReplicasFailed, retryAfterMs } from "../../src/wire/coord-failover.js";

const errno = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code });
const unavailable = (retryAfterS = 1) => new RequestError(503, "store_unavailable", "the coordination store (PostgreSQL at ...) is unavailable", { retryAfterS });

describe("goesToNextReplica", () => {
  it("moves on for a 503, a refused connection or an untrusted server; an answer is the answer", () => {
    for (const idempotent of [true, false]) {
      expect(goesToNextReplica(unavailable(), idempotent)).toBe(true);
      expect(goesToNextReplica(errno("ECONNREFUSED"), idempotent)).toBe(true);
      expect(goesToNextReplica(errno("EHOSTUNREACH"), idempotent)).toBe(true);
      expect(goesToNextReplica(new ServerNotTrusted("coordination server certificate refused (expired)"), idempotent)).toBe(true);
      for (const status of [400, 401, 403, 404, 409, 500]) expect(goesToNextReplica(new RequestError(status, "x", "y"), idempotent)).toBe(false);
    }
  });

  it("repeats a request that may have reached the server (reset, timeout) only when that is harmless", () => {
    expect(goesToNextReplica(errno("ECONNRESET"), true)).toBe(true);
    expect(goesToNextReplica(errno("ECONNRESET"), false)).toBe(false);
    expect(goesToNextReplica(new Error("request to https://c1/v1/admin/tokens timed out"), false)).toBe(false);
  });

  it("reads the 503's retry hint, bounded", () => {
    expect(retryAfterMs(unavailable(1))).toBe(1_000);
    expect(retryAfterMs(unavailable(3600))).toBe(MAX_RETRY_AFTER_MS);
    expect(retryAfterMs(new RequestError(503, "policy_busy", "busy"))).toBeUndefined();
    expect(retryAfterMs(errno("ECONNREFUSED"))).toBeUndefined();
  });
});

describe("acrossReplicas", () => {
  const origins = ["https://a", "https://b", "https://c"];

  it("asks in order from `start` and stops at the first answer, success or refusal", async () => {
    const asked: string[] = [];
    const r = await acrossReplicas(origins, async (o) => { asked.push(o); if (o === "https://b") throw errno("ECONNREFUSED"); return o; }, { idempotent: false, start: 1 });
    expect(r).toBe("https://c");
    expect(asked).toEqual(["https://b", "https://c"]);
    asked.length = 0;
    await expect(acrossReplicas(origins, async (o) => { asked.push(o); throw new RequestError(403, "token_used", "used"); }, { idempotent: true })).rejects.toThrow(/token_used/);
    expect(asked).toEqual(["https://a"]);
  });

  it("names every replica's failure when none could answer; one replica rethrows its own error", async () => {
    const err = await acrossReplicas(origins, async (o) => { throw errno(o === "https://b" ? "ECONNRESET" : "ECONNREFUSED"); }, { idempotent: true }).catch((e) => e);
    expect(err).toBeInstanceOf(ReplicasFailed);
    expect(err.message).toMatch(/https:\/\/a: connect ECONNREFUSED.*https:\/\/b: connect ECONNRESET.*https:\/\/c: connect ECONNREFUSED/);
    await expect(acrossReplicas(["https://a"], async () => { throw errno("ECONNREFUSED"); }, { idempotent: true })).rejects.toThrow(/^connect ECONNREFUSED/);
  });

  it("takes a second pass after the retry hint only when a replica gave one", async () => {
    let calls = 0;
    const t0 = Date.now();
    const r = await acrossReplicas(["https://a", "https://b"], async (o) => {
      calls++;
      if (calls <= 2) throw o === "https://a" ? unavailable(0.2) : errno("ECONNREFUSED");
      return o;
    }, { idempotent: false });
    expect(r).toBe("https://a");
    expect(calls).toBe(3);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    calls = 0;
    await expect(acrossReplicas(["https://a", "https://b"], async () => { calls++; throw errno("ECONNREFUSED"); }, { idempotent: true })).rejects.toBeInstanceOf(ReplicasFailed);
    expect(calls).toBe(2);
  });

  it("ends at once on an error the caller calls final", async () => {
    const asked: string[] = [];
    class PinMismatch extends Error {}
    await expect(acrossReplicas(origins, async (o) => { asked.push(o); throw new PinMismatch("root does not match the pin"); },
      { idempotent: true, final: (e) => e instanceof PinMismatch })).rejects.toThrow(/pin/);
    expect(asked).toEqual(["https://a"]);
  });
});
