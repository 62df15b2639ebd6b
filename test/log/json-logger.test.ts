// The daemons' JSON-lines logger writes pino's line format (tests and operators' tools read it).
import { describe, expect, it } from "vitest";
import { createJsonLogger } from "../../src/log/json-logger.js";

function capture(opts: Parameters<typeof createJsonLogger>[0] = {}) {
  const lines: string[] = [];
  const log = createJsonLogger({ ...opts, destination: (l) => lines.push(l) });
  return { log, lines: () => lines.map((l) => JSON.parse(l)), raw: lines };
}

describe("json logger", () => {
  it("writes pino's fields in pino's order: level number, time, base, bindings, fields, msg", () => {
    const { log, lines, raw } = capture({ base: { svc: "relay" }, isoTime: true, level: "debug" });
    log.child({ peer: "b1" }).info({ event: "connected", n: 2 }, "node connected");
    log.debug("just a message");
    log.trace("not shown");
    const [a, b] = lines();
    expect(Object.keys(a)).toEqual(["level", "time", "svc", "peer", "event", "n", "msg"]);
    expect(a).toMatchObject({ level: 30, svc: "relay", peer: "b1", event: "connected", n: 2, msg: "node connected" });
    expect(typeof a.time).toBe("string");
    expect(b).toMatchObject({ level: 20, msg: "just a message" });
    expect(raw).toHaveLength(2);
    expect(raw[0].endsWith("\n")).toBe(true);
  });

  it("levels filter, errors serialize like pino's, unserializable fields do not throw", () => {
    const { log, lines } = capture({ level: "warn" });
    log.info("dropped");
    log.warn({ err: new Error("boom") }, "failed");
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    log.error(circular, "odd");
    const [w, e] = lines();
    expect(w.level).toBe(40);
    expect(w.err).toMatchObject({ type: "Error", message: "boom" });
    expect(typeof w.time).toBe("number");
    expect(e).toMatchObject({ level: 50, msg: "odd", logError: "unserializable log fields" });
    expect(lines()).toHaveLength(2);
    const silent = capture({ level: "silent" });
    silent.log.fatal("nothing");
    expect(silent.raw).toHaveLength(0);
  });
});
