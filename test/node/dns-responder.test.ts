// TUN mode's name responder on a real UDP socket, asked by Node's own resolver (c-ares) and by raw datagrams:
// A answers with the short TTL, NXDOMAIN for unknown names, NOERROR without data for AAAA, FORMERR/NOTIMP for
// malformed queries and other opcodes, silence for responses; and fuzzing (random bytes, truncated and bit-flipped
// real queries, pointer loops) never throws and never answers with much more than was asked.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { createSocket } from "node:dgram";
import { Resolver } from "node:dns/promises";
import { answerQuery, DnsResponder, DNS_MAX_RESPONSE_BYTES, DNS_TTL_S } from "../../src/node/dns-responder.js";
import { DNS_HEADER_BYTES, RCODE, readName } from "../../src/node/dns-wire.js";

const NAMES: Record<string, string> = {
  "db-1": "100.64.1.2", "db-1.acme": "100.64.1.2", "api.db-1": "100.64.1.2", "db-1.ember": "100.64.1.2", "web-1": "100.100.7.9",
};
const lookup = (n: string) => NAMES[n];

/** A query as resolvers write it: id, RD, one question, optionally an EDNS OPT record in additional. */
function query(name: string, type = 1, o: { id?: number; flags?: number; edns?: boolean; qclass?: number } = {}): Buffer {
  const labels = name === "" ? [] : name.split(".");
  const qname = Buffer.concat([...labels.flatMap((l) => [Buffer.from([l.length]), Buffer.from(l, "latin1")]), Buffer.from([0])]);
  const head = Buffer.alloc(12);
  head.writeUInt16BE(o.id ?? 0x1234, 0);
  head.writeUInt16BE(o.flags ?? 0x0100, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(o.edns ? 1 : 0, 10);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(o.qclass ?? 1, 2);
  const opt = o.edns ? Buffer.from([0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]) : Buffer.alloc(0);
  return Buffer.concat([head, qname, tail, opt]);
}

const rcode = (r: Buffer) => r[3] & 0xf;

let responder: DnsResponder;
let port: number;
let resolver: Resolver;

beforeAll(async () => {
  responder = new DnsResponder(lookup);
  port = (await responder.start({ host: "127.0.0.1", port: 0 })).port;
  resolver = new Resolver({ timeout: 1_000, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
});
afterAll(async () => {
  await responder?.close();
});

/** Sends one datagram from a fresh socket; the reply, or undefined after `waitMs`. */
function exchange(msg: Buffer, waitMs = 1_000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = createSocket("udp4");
    const done = (r: Buffer | undefined) => { clearTimeout(t); s.close(); resolve(r); };
    const t = setTimeout(() => done(undefined), waitMs);
    s.on("message", (m) => done(m));
    s.send(msg, port, "127.0.0.1");
  });
}

describe("dns responder, asked by Node's resolver", () => {
  it("answers A queries for mesh names in every form the lookup knows, with the short TTL", async () => {
    expect(await resolver.resolve4("db-1")).toEqual(["100.64.1.2"]);
    expect(await resolver.resolve4("db-1.acme")).toEqual(["100.64.1.2"]);
    expect(await resolver.resolve4("api.db-1")).toEqual(["100.64.1.2"]);
    expect(await resolver.resolve4("DB-1.Ember.")).toEqual(["100.64.1.2"]); // case-insensitive, trailing dot
    expect(await resolver.resolve4("web-1", { ttl: true })).toEqual([{ address: "100.100.7.9", ttl: DNS_TTL_S }]);
  });

  it("says NXDOMAIN (ENOTFOUND) for unknown names and no data (ENODATA) for AAAA of a known one", async () => {
    await expect(resolver.resolve4("nope-1")).rejects.toMatchObject({ code: "ENOTFOUND" });
    await expect(resolver.resolve4("example.com")).rejects.toMatchObject({ code: "ENOTFOUND" });
    await expect(resolver.resolve6("db-1")).rejects.toMatchObject({ code: "ENODATA" });
    await expect(resolver.resolveTxt("db-1")).rejects.toMatchObject({ code: "ENODATA" });
  });
});

describe("dns responder, raw datagrams", () => {
  it("echoes the id, question and RD; sets QR and AA, never RA; answers with a pointer to the question", async () => {
    const q = query("db-1", 1, { id: 0xbeef, edns: true });
    const r = (await exchange(q))!;
    expect(r.readUInt16BE(0)).toBe(0xbeef);
    const flags = r.readUInt16BE(2);
    expect(flags & 0x8000).toBeTruthy(); // QR
    expect(flags & 0x0400).toBeTruthy(); // AA
    expect(flags & 0x0100).toBeTruthy(); // RD copied
    expect(flags & 0x0080).toBe(0); // RA: no recursion
    expect(rcode(r)).toBe(RCODE.NOERROR);
    expect([r.readUInt16BE(4), r.readUInt16BE(6), r.readUInt16BE(8), r.readUInt16BE(10)]).toEqual([1, 1, 0, 0]);
    const qEnd = DNS_HEADER_BYTES + 6 + 4; // \x04db-1\x00 + type + class
    expect(r.subarray(DNS_HEADER_BYTES, qEnd)).toEqual(q.subarray(DNS_HEADER_BYTES, qEnd));
    expect(r.readUInt16BE(qEnd)).toBe(0xc00c);
    expect([...r.subarray(r.length - 4)]).toEqual([100, 64, 1, 2]);
    expect(r.length).toBe(qEnd + 16);
  });

  it("answers other opcodes NOTIMP, other classes REFUSED, malformed queries FORMERR, and responses not at all", async () => {
    const notify = query("db-1", 1, { flags: 4 << 11 });
    const r1 = (await exchange(notify))!;
    expect(rcode(r1)).toBe(RCODE.NOTIMP);
    expect((r1.readUInt16BE(2) >> 11) & 0xf).toBe(4); // opcode echoed
    expect(r1.length).toBe(DNS_HEADER_BYTES);
    expect(rcode((await exchange(query("db-1", 1, { qclass: 3 })))!)).toBe(RCODE.REFUSED); // CHAOS
    const two = query("db-1");
    two.writeUInt16BE(2, 4);
    expect(rcode((await exchange(two))!)).toBe(RCODE.FORMERR);
    expect(rcode((await exchange(query("db-1").subarray(0, 16)))!)).toBe(RCODE.FORMERR);
    // A pointer to itself: a loop, refused without hanging.
    const loop = Buffer.concat([query("").subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
    expect(rcode((await exchange(loop))!)).toBe(RCODE.FORMERR);
    expect(await exchange(query("db-1", 1, { flags: 0x8000 }), 300)).toBeUndefined(); // a response
    expect(await exchange(Buffer.from([1, 2, 3]), 300)).toBeUndefined(); // no header, no id to answer
    expect(responder.stats.ignored).toBeGreaterThanOrEqual(2);
  });

  it("keeps answering after a burst of junk", async () => {
    const s = createSocket("udp4");
    for (let i = 0; i < 200; i++) s.send(Buffer.from(Array.from({ length: (i * 7) % 600 }, (_, j) => (i * 31 + j * 17) & 0xff)), port, "127.0.0.1");
    await new Promise((r) => setTimeout(r, 100));
    s.close();
    expect(await resolver.resolve4("db-1")).toEqual(["100.64.1.2"]);
  });

  it("refuses to start twice and closes idempotently", async () => {
    const d = new DnsResponder(lookup);
    await d.start({ host: "127.0.0.1", port: 0 });
    await expect(d.start({ host: "127.0.0.1", port: 0 })).rejects.toThrow(/already started/);
    await d.close();
    await d.close();
    const busy = new DnsResponder(lookup);
    await expect(busy.start({ host: "127.0.0.1", port })).rejects.toThrow(/EADDRINUSE/);
    await busy.close();
  });
});

describe("readName", () => {
  it("follows backward pointers (as in answers), chains of them, and refuses any jump that could come back", () => {
    // 12: a.  15: x -> 12 (x.a)  19: y -> 15 (y.x.a)  23: z -> 23 (itself)  27: w -> 29 (forward)
    const m = Buffer.concat([Buffer.alloc(12), Buffer.from([1, 97, 0, 1, 120, 0xc0, 12, 1, 121, 0xc0, 15, 1, 122, 0xc0, 23, 1, 119, 0xc0, 29, 0])]);
    expect(readName(m, 12)).toEqual({ labels: ["a"], end: 15 });
    expect(readName(m, 15)).toEqual({ labels: ["x", "a"], end: 19 });
    expect(readName(m, 19)).toEqual({ labels: ["y", "x", "a"], end: 23 });
    expect(readName(m, 23)).toBeUndefined();
    expect(readName(m, 27)).toBeUndefined();
  });
});

describe("answerQuery on hostile input", () => {
  /** Never throws; never more than the bound, nor more than one A record beyond what was sent. */
  function safe(msg: Uint8Array, look = lookup): void {
    const r = answerQuery(msg, look);
    if (r === undefined) return;
    expect(r.length).toBeLessThanOrEqual(DNS_MAX_RESPONSE_BYTES);
    expect(r.length).toBeLessThanOrEqual(Math.max(msg.length, DNS_HEADER_BYTES) + 16);
    expect(r[2] & 0x80).toBeTruthy(); // always a response
    expect(r[3] & 0x80).toBe(0); // never RA
  }

  it("random bytes", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (b) => safe(b)), { numRuns: 3_000 });
    // Random bodies behind a plausible query header (one question), so the name parser sees most of them.
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => safe(Buffer.concat([Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), b]))), { numRuns: 3_000 });
  });

  it("every truncation and random bit flips of real queries", () => {
    for (const q of [query("db-1"), query("api.db-1", 28, { edns: true }), query("a".repeat(63) + ".b", 1), query("")]) {
      for (let n = 0; n <= q.length; n++) safe(q.subarray(0, n));
      fc.assert(fc.property(fc.array(fc.nat(q.length * 8 - 1), { minLength: 1, maxLength: 6 }), (bits) => {
        const m = Buffer.from(q);
        for (const bit of bits) m[bit >> 3] ^= 1 << (bit & 7);
        safe(m);
      }), { numRuns: 1_000 });
    }
  });

  it("names at the limits: 63-byte labels, 255-byte names, long pointer chains, a lookup that throws", () => {
    const ok = query(["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join("."));
    expect(rcode(answerQuery(ok, lookup)!)).toBe(RCODE.NXDOMAIN); // 255 bytes: parsed
    const long = query(["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(62)].join("."));
    expect(rcode(answerQuery(long, lookup)!)).toBe(RCODE.FORMERR); // 256 bytes
    const label64 = Buffer.from(query("x"));
    const bad = Buffer.concat([label64.subarray(0, 12), Buffer.from([64]), Buffer.alloc(64, 97), Buffer.from([0, 0, 1, 0, 1])]);
    expect(rcode(answerQuery(bad, lookup)!)).toBe(RCODE.FORMERR);
    // Pointers forward, into the header, and a chain: all refused in a question.
    for (const tail of [[0xc0, 20, 0, 0, 1, 0, 1], [0xc0, 2, 0, 1, 0, 1], [1, 97, 0xc0, 12, 0, 1, 0, 1]]) {
      const m = Buffer.concat([query("").subarray(0, 12), Buffer.from(tail)]);
      expect(rcode(answerQuery(m, lookup)!)).toBe(RCODE.FORMERR);
    }
    expect(rcode(answerQuery(query("db-1"), () => { throw new Error("boom"); })!)).toBe(RCODE.SERVFAIL);
    expect(rcode(answerQuery(query("db-1"), () => "not-an-ip")!)).toBe(RCODE.NXDOMAIN);
    expect(rcode(answerQuery(query("db 1"), (n) => (n === "db 1" ? "1.2.3.4" : undefined))!)).toBe(RCODE.NXDOMAIN); // never looked up
  });
});
