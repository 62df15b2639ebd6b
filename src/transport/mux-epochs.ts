// Epochs: which incarnation of each side a packet belongs to. Each side picks a random non-zero epoch when it
// starts, and a new one when it gives up on its peer (idle timeout); every packet carries the sender's epoch and
// the one it believes the receiver has (0 before it has heard from it). A packet for an earlier incarnation of
// us is stale; a new epoch from the peer means the peer restarted and remembers none of our streams.
// classify() decides from a packet's header alone; the mux acts on the verdict (mux.ts, receive step 2).
import { randomBytes } from "node:crypto";
import { RETIRED_EPOCHS } from "./constants.js";

export function randomEpoch(): number {
  for (;;) {
    const e = randomBytes(4).readUInt32LE(0);
    if (e !== 0) return e;
  }
}

export type EpochVerdict =
  /** Addressed to an earlier incarnation of us: dropped, and answered so the peer learns our epoch. */
  | "stale"
  /** From an incarnation of the peer that has since restarted (a late packet): dropped. */
  | "retired_peer"
  /** The first packet from the peer, or the first since we gave up on it. */
  | "first_contact"
  /** A new epoch from the peer: it restarted. */
  | "peer_restarted"
  | "current";

export class Epochs {
  /** Ours: random, non-zero, renewed when we give up on the peer. */
  private ours: number;
  /** The peer's, 0 until it is heard from. */
  private theirs = 0;
  /** The peer's earlier epochs, newest last, so a late packet from before a restart is not taken for another one. */
  private readonly retired: number[] = [];

  constructor(ours: number) {
    if (!Number.isInteger(ours) || ours <= 0 || ours > 0xffffffff) throw new RangeError("epoch must be a non-zero u32");
    this.ours = ours;
  }

  get mine(): number {
    return this.ours;
  }

  get peer(): number {
    return this.theirs;
  }

  /** What a packet's epochs say; nothing changes here. */
  classify(dstEpoch: number, srcEpoch: number): EpochVerdict {
    if (dstEpoch !== 0 && dstEpoch !== this.ours) return "stale";
    if (srcEpoch === this.theirs) return "current";
    if (this.retired.includes(srcEpoch)) return "retired_peer";
    return this.theirs === 0 ? "first_contact" : "peer_restarted";
  }

  /** The one setter of the peer's epoch: after a restart, the one it replaces is retired. */
  adoptPeer(epoch: number): void {
    if (this.theirs !== 0) {
      this.retired.push(this.theirs);
      if (this.retired.length > RETIRED_EPOCHS) this.retired.shift();
    }
    this.theirs = epoch;
  }

  /** We gave up on the peer: a new epoch of ours, and the peer's unknown until it is heard from again. */
  renew(): void {
    this.ours = randomEpoch();
    this.theirs = 0;
  }
}
