// Streams between two muxes over the simulated network: opening, refusing, half-close, reset, and data
// arriving byte-exact under loss, reordering, duplication and a shrinking MTU.
import { describe, expect, it } from "vitest";
import { ERROR_CODE } from "../../src/transport/constants.js";
import { StreamRefusedError, StreamResetError } from "../../src/transport/errors.js";
import type { Stream } from "../../src/transport/stream.js";
import { errorOf, randomData, readAll, sha256, writeAll } from "./helpers.js";
import { simPair } from "./sim-link.js";

describe("stream basics", () => {
  it("opens, accepts, and echoes a request both ways with half-close", async () => {
    const incoming: { s: Stream; req: string }[] = [];
    const p = simPair({}, {}, {
      onIncoming: (s, req) => {
        incoming.push({ s, req: Buffer.from(req).toString() });
        s.accept();
        const r = readAll(s);
        s.on("end", () => {
          s.end(Buffer.concat(r.chunks).toString().toUpperCase());
        });
      },
    });
    const s = p.a.open(Buffer.from("svc=echo"));
    let accepted = false;
    s.on("accepted", () => (accepted = true));
    const r = readAll(s);
    s.end("hello over the mesh");
    expect(await p.clock.run(() => r.ended)).toBe(true);
    expect(accepted).toBe(true);
    expect(incoming.map((i) => i.req)).toEqual(["svc=echo"]);
    expect(Buffer.concat(r.chunks).toString()).toBe("HELLO OVER THE MESH");
    expect(r.error).toBeNull();
    await p.clock.run(() => p.a.stats().openStreams === 0 && p.b.stats().openStreams === 0, 5_000);
    expect(p.a.stats().openStreams).toBe(0);
    expect(p.b.stats().openStreams).toBe(0);
  });

  it("a refused open fails with StreamRefusedError carrying the code and reason", async () => {
    const p = simPair({}, {}, { onIncoming: (s) => s.refuse(0x41, "policy: @eng may not reach db-1:5432") });
    const s = p.a.open(Buffer.from("db-1:5432"));
    const e = errorOf(s);
    s.write("never delivered");
    await p.clock.run(() => e.error !== null);
    expect(e.error).toBeInstanceOf(StreamRefusedError);
    expect((e.error as StreamRefusedError).code).toBe(0x41);
    expect((e.error as StreamRefusedError).reason).toBe("policy: @eng may not reach db-1:5432");
    expect(p.b.stats().opensRefused).toBe(1);
    await p.clock.run(() => p.a.stats().openStreams === 0, 5_000);
    expect(p.a.stats().openStreams).toBe(0);
    expect(p.b.stats().streamBytesReceived).toBe(0);
  });

  it("moves 1 MB byte-exact without loss", async () => {
    const data = randomData(1 << 20);
    let r!: ReturnType<typeof readAll>;
    const p = simPair({}, {}, { onIncoming: (s) => { s.accept(); r = readAll(s); } });
    const s = p.a.open();
    void writeAll(s, data);
    expect(await p.clock.run(() => r?.ended)).toBe(true);
    expect(r.hash()).toBe(sha256(data));
  });
});
