// A bounded flood of handshake datagrams at a node's UDP port, from its own process (so that crafting and
// sending them is not charged to the node the tests measure). Usage (tests only):
//   node --import tsx test/security/init-flood-child.ts '<InitFloodOptions as JSON>'
// With cookieAware it first takes a cookie for each source address. Crafts every datagram, prints {"event":"ready"}; on a line on stdin it sends them, paced evenly over
// durationMs from the given loopback source addresses, then listens 500 ms more and prints
// {"event":"done", sent, sendMs, received: {<first byte>: count}} and exits. Every loop is bounded by `count`.
import { createSocket, type Socket } from "node:dgram";
import { createHash, createPrivateKey, randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import {
  PACKET, encodeHandshake, encodeInitMessage, initMacs, mac1Key, openCookieReply, parseCookieReply, responderKey, sealClaim, signClaim,
  writeInitMacs,
} from "../../src/session/crypto-adapter.js";

export type FloodKind =
  /** valid mac1, a claim signed by claimKeyPem's key in claimName's name, fresh timestamps (a stolen peer key). */
  | "signed"
  /** valid mac1, the claim random bytes. */
  | "junk-claim"
  /** random bytes with an EmberNet type byte. */
  | "junk"
  /** valid mac1, the first of three fragments of an INIT that never completes. */
  | "half"
  /** one signed INIT, sent again and again. */
  | "replay"
  /** RESP and FINAL fragments and cookie replies with random indexes. */
  | "stray";

export interface InitFloodOptions {
  host: string;
  port: number;
  sources: string[];
  durationMs: number;
  items: { kind: FloodKind; count: number }[];
  rootDerHex: string;
  responder: string;
  claimName?: string;
  claimKeyPem?: string;
  /** The claimed peer's certificate (DER, hex): sent in the claim, as a static peer does. */
  claimCertHex?: string;
  /** First timestamp of the signed claims (they must be newer than any the node accepted from that name). */
  tsBase?: number;
  /**
   * Play a smarter attacker: first get the node under load and take a cookie for every source address, then
   * put mac2 on every INIT, so the node's deeper bounds (rate limits, reassembly, pending handshakes) are hit.
   */
  cookieAware?: boolean;
}

const o = JSON.parse(process.argv[2]) as InitFloodOptions;
const rk = responderKey(createHash("sha256").update(Buffer.from(o.rootDerHex, "hex")).digest(), o.responder);
const mk = mac1Key(rk);
const claimKey = o.claimKeyPem ? createPrivateKey(o.claimKeyPem) : undefined;
let ts = o.tsBase ?? Date.now();

function signedInit(cookie?: Uint8Array): Buffer[] {
  const e = randomBytes(32);
  const t = ++ts;
  const claim = { name: o.claimName!, ts: t, sig: signClaim(claimKey!, o.responder, e, t), chain: o.claimCertHex ? [Buffer.from(o.claimCertHex, "hex")] : undefined };
  const frags = encodeHandshake(PACKET.HANDSHAKE_INIT, randomBytes(4).readUInt32LE(0), undefined, encodeInitMessage(e, sealClaim(rk, e, claim)));
  for (const f of frags) writeInitMacs(f, mk, cookie);
  return frags;
}

function craft(kind: FloodKind, cookie?: Uint8Array): Buffer[] {
  switch (kind) {
    case "signed": return signedInit(cookie);
    case "junk-claim": {
      const frags = encodeHandshake(PACKET.HANDSHAKE_INIT, randomBytes(4).readUInt32LE(0), undefined, encodeInitMessage(randomBytes(32), randomBytes(120)));
      for (const f of frags) writeInitMacs(f, mk, cookie);
      return frags;
    }
    case "junk": {
      const d = randomBytes(1 + (randomBytes(1)[0] % 200) * 6);
      d[0] = 0x10 + (d[0] % 16);
      return [d];
    }
    case "half": {
      const [first] = encodeHandshake(PACKET.HANDSHAKE_INIT, randomBytes(4).readUInt32LE(0), undefined, randomBytes(3_000));
      writeInitMacs(first, mk, cookie);
      return [first];
    }
    case "replay": return [];
    case "stray": {
      if (randomBytes(1)[0] % 4 === 0) { const c = randomBytes(64); c[0] = PACKET.COOKIE_REPLY; c.fill(0, 1, 4); return [c]; }
      const t = [PACKET.HANDSHAKE_RESP, PACKET.HANDSHAKE_FINAL][randomBytes(1)[0] % 2] as typeof PACKET.HANDSHAKE_RESP;
      return [encodeHandshake(t, randomBytes(4).readUInt32LE(0), randomBytes(4).readUInt32LE(0), randomBytes(100 + (randomBytes(1)[0] % 4) * 300))[0]];
    }
  }
}

const sockets: Socket[] = [];
const received: Record<string, number> = {};
const cookies: (Uint8Array | undefined)[] = [];
/** mac1 of the INITs sent to get cookies, by sender index: the cookie reply's associated data. */
const probes = new Map<number, Uint8Array>();
for (const src of o.sources) {
  const s = createSocket("udp4");
  const i = sockets.length;
  s.on("message", (m) => {
    const k = "0x" + m[0].toString(16);
    received[k] = (received[k] ?? 0) + 1;
    const r = parseCookieReply(m);
    if (r.ok && !cookies[i] && probes.has(r.receiverIndex)) cookies[i] = openCookieReply(r, rk, probes.get(r.receiverIndex)!);
  });
  s.on("error", () => {});
  await new Promise<void>((r) => s.bind(0, src, () => r()));
  sockets.push(s);
}

if (o.cookieAware) {
  // Trip the node's load meter, then take one cookie per source address (bounded: 20 rounds).
  for (let round = 0; round < 20 && cookies.filter(Boolean).length < sockets.length; round++) {
    for (let i = 0; i < sockets.length; i++) {
      if (cookies[i]) continue;
      for (let k = 0; k < 8; k++) {
        const [f] = craft("junk-claim");
        probes.set(f.readUInt32LE(4), Buffer.from(initMacs(f).mac1));
        sockets[i].send(f, o.port, o.host);
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const k of Object.keys(received)) delete received[k];
}

// Interleave the kinds, then craft in sending order (signed claims carry increasing timestamps, as a thief of
// the key would send them: the node refuses a claim older than the last it accepted from that name).
const kinds: FloodKind[] = o.items.flatMap(({ kind, count }) => Array.from({ length: count }, () => kind));
for (let i = kinds.length - 1; i > 0; i--) {
  const j = randomBytes(4).readUInt32LE(0) % (i + 1);
  [kinds[i], kinds[j]] = [kinds[j], kinds[i]];
}
const datagrams: { sock: number; data: Buffer }[] = [];
let replayed: Buffer[] | undefined;
kinds.forEach((kind, n) => {
  const sock = n % sockets.length;
  if (kind === "replay") {
    replayed ??= signedInit(cookies[0]); // replayed from the address that made it (its mac2 holds there)
    for (const d of replayed) datagrams.push({ sock: 0, data: d });
  } else for (const d of craft(kind, cookies[sock])) datagrams.push({ sock, data: d });
});

const out = (x: object) => process.stdout.write(JSON.stringify(x) + "\n");
out({ event: "ready", datagrams: datagrams.length, cookies: cookies.filter(Boolean).length });

await new Promise<void>((r) => createInterface({ input: process.stdin }).once("line", () => r()));
const t0 = performance.now();
const batches = Math.max(1, Math.floor(o.durationMs / 10));
const perBatch = Math.ceil(datagrams.length / batches);
let sent = 0;
for (let b = 0; b < batches && sent < datagrams.length; b++) {
  for (let i = 0; i < perBatch && sent < datagrams.length; i++, sent++) {
    sockets[datagrams[sent].sock].send(datagrams[sent].data, o.port, o.host);
  }
  const due = t0 + ((b + 1) * o.durationMs) / batches;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
const sendMs = Math.round(performance.now() - t0);
await new Promise((r) => setTimeout(r, 500));
out({ event: "done", sent, sendMs, received });
for (const s of sockets) s.close();
process.exit(0);
