// One verified node connection on the relay: frame reading, its rate bucket, and the bounded set of
// nodes that sent to it recently (told PEER_GONE when it leaves).
import type { TLSSocket } from "node:tls";
import type { Identity } from "../src/pki/index.js";
import { encodeRelayError, PEER_GONE_MEMORY, RelayFrameReader } from "../src/wire/relay.js";
import { TokenBucket } from "./token-bucket.js";

export class NodeConnection {
  readonly reader = new RelayFrameReader();
  readonly recentSenders = new Set<string>();
  readonly connectedAt = Date.now();
  closed = false;
  /** The relay pinged this silent connection and waits for any frame (RELAY_DEFAULTS.idleTimeoutMs; protocol 1). */
  idlePinged = false;
  corked = false;
  closeReason?: string;

  constructor(readonly socket: TLSSocket, readonly identity: Identity, readonly bucket: TokenBucket, readonly remote: string) {}

  get name(): string {
    return this.identity.name;
  }

  noteSender(name: string): void {
    if (this.recentSenders.has(name)) return;
    if (this.recentSenders.size >= PEER_GONE_MEMORY) this.recentSenders.delete(this.recentSenders.values().next().value!);
    this.recentSenders.add(name);
  }

  /** Sends ERROR (reason code + detail) and closes; the socket is destroyed if the peer does not finish in time. */
  close(code: string, detail: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = code;
    if (this.corked) { this.corked = false; this.socket.uncork(); }
    if (!this.socket.destroyed) {
      this.socket.end(encodeRelayError(code, detail));
      setTimeout(() => this.socket.destroy(), 2_000).unref();
    }
  }
}
