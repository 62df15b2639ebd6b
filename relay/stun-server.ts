// The relay's STUN responder (RFC 8489 Binding): answers with the source address it saw, as
// XOR-MAPPED-ADDRESS and MAPPED-ADDRESS. RFC 3489 clients (no magic cookie) get MAPPED-ADDRESS only,
// built by hand (the codec in src/nat/stun-codec.ts speaks RFC 8489). Everything else is dropped silently.
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { isIP, type AddressInfo } from "node:net";
import { decodeStun, encodeBindingResponse, STUN_BINDING_REQUEST } from "../src/nat/stun.js";
import { STUN_HEADER_SIZE } from "../src/wire/constants.js";
import { TokenBucket } from "./token-bucket.js";
import { sourceKey } from "../src/addr/source-key.js";
import { bindAnyFamily } from "../src/net/any-address.js";
import type { RelayCounters } from "./metrics.js";

const ATTR_MAPPED_ADDRESS = 0x0001;
const BINDING_RESPONSE = 0x0101;
const MAX_STUN_REQUEST = 548; // RFC 8489: a Binding request without credentials is far smaller

/** Sources with a bucket of their own; past this the oldest is forgotten (it starts again with a full burst). */
const MAX_TRACKED_SOURCES = 16_384;

export interface StunLimits { perSec: number; perSourcePerSec: number; perSourceBurst: number; recvBufferBytes: number }

export class StunResponder {
  private socket?: Socket;
  private readonly bucket: TokenBucket;
  private readonly perSource = new Map<string, TokenBucket>();

  constructor(private readonly counters: RelayCounters, private readonly limits: StunLimits) {
    this.bucket = new TokenBucket(limits.perSec, limits.perSec);
  }

  /** On "::" one dual-stack socket answers both families (IPv4 clients arrive v4-mapped and are answered as IPv4). */
  listen(host: string, port: number): Promise<AddressInfo> {
    return bindAnyFamily(host, (h) => this.bind(h, port));
  }

  private async bind(host: string, port: number): Promise<AddressInfo> {
    const socket = createSocket({ type: isIP(host) === 6 ? "udp6" : "udp4", recvBufferSize: this.limits.recvBufferBytes });
    socket.on("message", (msg, rinfo) => this.onMessage(msg, rinfo));
    socket.on("error", () => { /* ICMP errors and the like: a responder has nothing to do about them */ });
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, host, () => { socket.off("error", reject); resolve(); });
    }).catch((err) => { socket.close(); throw err; });
    this.socket = socket;
    return socket.address();
  }

  close(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    return new Promise((resolve) => (s ? s.close(() => resolve()) : resolve()));
  }

  /** The bucket of a source address (IPv6 by /64), created on first use; past MAX_TRACKED_SOURCES the oldest is forgotten. */
  private sourceBucket(address: string): TokenBucket {
    const key = sourceKey(address);
    let b = this.perSource.get(key);
    if (!b) {
      if (this.perSource.size >= MAX_TRACKED_SOURCES) this.perSource.delete(this.perSource.keys().next().value!);
      b = new TokenBucket(this.limits.perSourcePerSec, this.limits.perSourceBurst);
      this.perSource.set(key, b);
    }
    return b;
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    // Source port 0 is forgeable with raw sockets and would make send() throw: never answer it.
    if (rinfo.port === 0 || msg.length < STUN_HEADER_SIZE || msg.length > MAX_STUN_REQUEST || msg.readUInt16BE(0) !== STUN_BINDING_REQUEST) return;
    this.counters.stunRequests++;
    if (!this.sourceBucket(rinfo.address).take(1) || !this.bucket.take(1)) { this.counters.stunDropped++; return; }
    const mapped = { address: rinfo.address.startsWith("::ffff:") ? rinfo.address.slice(7) : rinfo.address, port: rinfo.port };
    let answer: Buffer | undefined;
    const decoded = decodeStun(msg);
    if (decoded) answer = encodeBindingResponse(decoded.transactionId, mapped);
    else if (msg.readUInt32BE(4) !== 0x2112a442 && STUN_HEADER_SIZE + msg.readUInt16BE(2) === msg.length && isIP(mapped.address) === 4) {
      answer = legacyResponse(msg.subarray(4, 20), mapped);
    }
    if (!answer) { this.counters.stunDropped++; return; }
    try {
      this.socket?.send(answer, rinfo.port, rinfo.address, (err) => { if (!err) this.counters.stunAnswered++; });
    } catch {
      this.counters.stunDropped++;
    }
  }
}

/** RFC 3489 Binding response: 128-bit transaction ID, MAPPED-ADDRESS (IPv4) only. */
function legacyResponse(tid: Buffer, mapped: { address: string; port: number }): Buffer {
  const out = Buffer.alloc(STUN_HEADER_SIZE + 12);
  out.writeUInt16BE(BINDING_RESPONSE, 0);
  out.writeUInt16BE(12, 2);
  tid.copy(out, 4);
  out.writeUInt16BE(ATTR_MAPPED_ADDRESS, 20);
  out.writeUInt16BE(8, 22);
  out.writeUInt8(0, 24);
  out.writeUInt8(0x01, 25);
  out.writeUInt16BE(mapped.port, 26);
  mapped.address.split(".").forEach((o, i) => out.writeUInt8(Number(o), 28 + i));
  return out;
}
