// The SOCKS5 and HTTP head codecs on their own: every prefix of a valid message asks for more, and each
// bad one says what is wrong.
import { describe, expect, it } from "vitest";
import {
  checkRequestLine, errorResponse, headForOrigin, parseAbsoluteTarget, parseAuthority, parseRequestHead, statusForDialError,
} from "../../src/access/http-head.js";
import {
  encodeReply, encodeUdpReply, parseGreeting, parseRequest, parseUdpRequest, replyForDialError,
} from "../../src/access/socks5-wire.js";

const hex = (s: string) => Buffer.from(s.replace(/ /g, ""), "hex");

describe("SOCKS5 wire", () => {
  it("parses a greeting and a domain request, asking for more on every prefix", () => {
    const greeting = hex("05 02 00 02");
    for (let i = 0; i < greeting.length; i++) expect(parseGreeting(greeting.subarray(0, i)).kind).toBe("more");
    expect(parseGreeting(greeting)).toEqual({ kind: "ok", size: 4, methods: [0, 2] });
    const req = Buffer.concat([hex("05 01 00 03 06"), Buffer.from("db-1.x"), hex("1538")]);
    for (let i = 0; i < req.length; i++) expect(parseRequest(req.subarray(0, i)).kind).toBe("more");
    expect(parseRequest(Buffer.concat([req, hex("ff")]))).toEqual({ kind: "ok", size: req.length, cmd: 1, atyp: 3, host: "db-1.x", port: 5432 });
  });

  it("parses IPv4 and IPv6 destinations, and refuses bad ones with the reply to send", () => {
    expect(parseRequest(hex("05 01 00 01 7f000001 0050"))).toMatchObject({ kind: "ok", atyp: 1, host: "127.0.0.1", port: 80 });
    expect(parseRequest(hex("05 01 00 04 00000000000000000000000000000001 0050"))).toMatchObject({ kind: "ok", atyp: 4, host: "0:0:0:0:0:0:0:1" });
    expect(parseRequest(hex("05 01 00 09 00"))).toEqual({ kind: "bad", reason: "address type 9 is not one RFC 1928 defines", reply: 8 });
    expect(parseRequest(hex("05 01 00 03 00 0050"))).toEqual({ kind: "bad", reason: "empty domain name", reply: 1 });
    expect(parseRequest(hex("04 01 00 03"))).toMatchObject({ kind: "bad", reason: "request version 4, not 5" });
    expect(parseGreeting(hex("05 00"))).toMatchObject({ kind: "bad", reason: "greeting offers no authentication methods" });
  });

  it("encodes replies with IPv4 and IPv6 bound addresses", () => {
    expect(encodeReply(0).toString("hex")).toBe("05000001000000000000");
    expect(encodeReply(0, { host: "127.0.0.1", port: 1080 }).toString("hex")).toBe("050000017f0000010438");
    expect(encodeReply(0, { host: "::1", port: 1080 }).toString("hex")).toBe("0500000400000000000000000000000000000001" + "0438");
  });

  it("maps each dial failure to its reply code", () => {
    expect(["denied", "unknown_name", "unreachable", "refused", "timeout", "bad_request", "failed"].map((c) => replyForDialError(c as "denied")))
      .toEqual([2, 4, 4, 5, 6, 1, 1]);
  });

  it("parses UDP request headers and refuses malformed ones", () => {
    const d = Buffer.concat([hex("0000 00 03 04"), Buffer.from("a.bc"), hex("0035"), Buffer.from("payload")]);
    const r = parseUdpRequest(d);
    expect(r.ok && r.value).toMatchObject({ frag: 0, atyp: 3, host: "a.bc", port: 53 });
    expect(r.ok && r.value.data.toString()).toBe("payload");
    expect(r.ok && r.value.header.length).toBe(11);
    expect(parseUdpRequest(hex("0000 00 01 7f000001 00"))).toEqual({ ok: false, reason: "9-byte datagram, shorter than a SOCKS5 UDP header" });
    expect(parseUdpRequest(hex("0100 00 01 7f000001 0035"))).toEqual({ ok: false, reason: "reserved bytes are not zero" });
    expect(parseUdpRequest(hex("0000 00 03 20 61626364 6566"))).toEqual({ ok: false, reason: "header truncated" });
    expect(parseUdpRequest(hex("0000 00 07 7f000001 0035"))).toMatchObject({ ok: false, reason: "address type 7 is not one RFC 1928 defines" });
    const header = hex("0000 05 03 01 61 0035");
    expect(encodeUdpReply(header, Buffer.from("x")).toString("hex")).toBe("0000000301610035" + "78");
  });
});

describe("HTTP heads", () => {
  it("parses a head and rewrites it for the origin", () => {
    const p = parseRequestHead("GET http://node-a:8080/p?q=1 HTTP/1.1\r\nHost: node-a:8080\r\nUser-Agent: t\r\nProxy-Connection: Keep-Alive\r\n"
      + "Proxy-Authorization: Basic x\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nAccept: */*");
    if (!p.ok) throw new Error(p.reason);
    const t = parseAbsoluteTarget(p.head.target);
    if (!t.ok) throw new Error(t.reason);
    expect(headForOrigin(p.head, t.authority, t.path).toString("latin1"))
      .toBe("GET /p?q=1 HTTP/1.1\r\nHost: node-a:8080\r\nUser-Agent: t\r\nAccept: */*\r\nConnection: close\r\n\r\n");
  });

  it("reads the targets a proxy serves", () => {
    expect(parseAbsoluteTarget("http://web.node-a")).toEqual({ ok: true, host: "web.node-a", port: 80, authority: "web.node-a", path: "/" });
    expect(parseAbsoluteTarget("HTTP://x:81?a")).toEqual({ ok: true, host: "x", port: 81, authority: "x:81", path: "/?a" });
    expect(parseAbsoluteTarget("http://x:/a#frag")).toMatchObject({ ok: true, port: 80, path: "/a" });
    expect(parseAuthority("db-1:5432")).toMatchObject({ ok: true, host: "db-1", port: 5432 });
    expect(parseAuthority("[::1]:22")).toMatchObject({ ok: true, host: "::1", port: 22 });
    const bad: [string, string][] = [
      ["/index.html", "this is a proxy"], ["*", "this is a proxy"], ["https://x/", "go through CONNECT"], ["ftp://x/", `scheme "ftp"`],
      ["http://u:p@x/", "credentials"], ["http://x:99999/", "outside 1-65535"], ["http://x:0/", "outside 1-65535"], ["x:y:z", "bad request target"],
    ];
    for (const [target, why] of bad) expect(parseAbsoluteTarget(target), target).toMatchObject({ ok: false, reason: expect.stringContaining(why) });
    expect(parseAuthority("db-1")).toMatchObject({ ok: false, reason: expect.stringContaining("CONNECT needs HOST:PORT") });
  });

  it("refuses bad heads with a status and a reason", () => {
    const cases: [string, number, string][] = [
      ["hello", 400, "not an HTTP request line"],
      ["GET  http://x/ HTTP/1.1", 400, "not an HTTP request line"],
      ["G(T http://x/ HTTP/1.1", 400, "bad method"],
      ["GET http://x/ HTTP/2.0", 505, "HTTP/2.0 is not supported"],
      ["GET http://x/ HTTP/1.1\r\nNoColon", 400, "bad header line"],
      ["GET http://x/ HTTP/1.1\r\nA: b\r\n folded", 400, "folding"],
      ["GET http://x/ HTTP/1.1\r\nA: b\u0001", 400, "control characters"],
      ["GET http://x/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2", 400, "conflicting Content-Length"],
      ["GET http://x/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked", 400, "both Content-Length and Transfer-Encoding"],
      ["GET http://x/ HTTP/1.1\r\nContent-Length: -1", 400, "bad Content-Length"],
      [`GET http://x/ HTTP/1.1${"\r\nA: b".repeat(101)}`, 431, "over the limit of 100"],
    ];
    for (const [text, status, why] of cases) expect(parseRequestHead(text), text.slice(0, 40)).toMatchObject({ ok: false, status, reason: expect.stringContaining(why) });
    expect(checkRequestLine("\u0016\u0003\u0001")).toMatchObject({ status: 400, reason: expect.stringContaining("unprintable") });
  });

  it("answers errors with the reason in the body and a header-safe X-Ember-Reason", () => {
    const r = errorResponse(403, "denied: rule 2 says no\r\nInjected: yes", "denied").toString();
    expect(r).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(r).toContain("X-Ember-Reason: denied: rule 2 says no??Injected: yes\r\n");
    expect(r).not.toContain("\r\nInjected: yes\r\n");
    expect(r).toContain("Cache-Control: no-store\r\n");
    expect(r.endsWith("\r\n\r\ndenied: rule 2 says no\r\nInjected: yes\n")).toBe(true);
    const len = Number(/Content-Length: (\d+)/.exec(r)![1]);
    expect(len).toBe(Buffer.byteLength("denied: rule 2 says no\r\nInjected: yes\n"));
    expect(["denied", "unknown_name", "unreachable", "refused", "timeout", "bad_request", "failed"].map((c) => statusForDialError(c as "denied")))
      .toEqual([403, 502, 502, 502, 504, 400, 502]);
  });
});
